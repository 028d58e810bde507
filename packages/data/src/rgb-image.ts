// The one 8-bit image type of foliar: decoded files (sharp), the classifier's transforms and loaders,
// the diffusion trainers' instance images, the pictures @foliar/report draws and writes as PNG.

/**
 * An 8-bit RGB(A) image, row-major and interleaved (HWC): `data.length === width * height * channels`.
 * `channels` absent means 3 (RGB): decoders and the classifier's transforms make RGB images without it.
 */
export interface RgbImage {
  width: number;
  height: number;
  channels?: 3 | 4;
  data: Uint8Array;
}

/** An RgbImage whose channel count is stated (what the drawing and PNG functions return). */
export type Raster = RgbImage & { channels: 3 | 4 };

/** The channel count of `img` (3 when not stated). */
export function channelsOf(img: RgbImage): 3 | 4 {
  return img.channels ?? 3;
}

/** Whether `img` states its channel count. */
export function hasChannels(img: RgbImage): img is Raster {
  return img.channels !== undefined;
}

/** Throws unless `img` is a well-formed RGB image (3 channels, positive integer size, matching data). */
export function assertRgbImage(img: RgbImage, what = 'image'): void {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width <= 0 || img.height <= 0) {
    throw new Error(`${what}: invalid size ${img.width}x${img.height}`);
  }
  if (img.data.length !== img.width * img.height * 3) {
    throw new Error(`${what}: data has ${img.data.length} bytes, expected ${img.width}*${img.height}*3 = ${img.width * img.height * 3}`);
  }
}
