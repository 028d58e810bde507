// Image files → RgbImage with sharp (libvips): the classifier's decoder (sRGB, strict, optional
// resize) and the diffusion trainers' square loader.
import sharp from 'sharp';
import type { RgbImage } from './rgb-image.js';

export { ImageDecodeError, type DecodeOptions, type ResizeMode } from './decode-types.js';
import { ImageDecodeError, type DecodeOptions } from './decode-types.js';

/**
 * Decode an image file (or encoded bytes) into RGB. Alpha is dropped, greyscale is expanded
 * to three channels. EXIF orientation is ignored, as PIL/torchvision do by default.
 * Truncated or corrupt files fail (sharp's `failOn: 'warning'`) instead of decoding half-grey.
 */
export async function decodeImage(input: string | Uint8Array, options: DecodeOptions = {}): Promise<RgbImage> {
  const file = typeof input === 'string' ? input : options.name ?? '<buffer>';
  try {
    let pipeline = sharp(input, { failOn: 'warning' }).removeAlpha().toColourspace('srgb');
    if (options.size !== undefined) {
      const [w, h] = typeof options.size === 'number' ? [options.size, options.size] : options.size;
      if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) {
        throw new Error(`invalid target size ${JSON.stringify(options.size)}`);
      }
      pipeline = pipeline.resize(w, h, {
        fit: (options.mode ?? 'cover') === 'cover' ? 'cover' : 'fill',
        position: 'centre',
        kernel: 'lanczos3',
      });
    }
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    throw new ImageDecodeError(file, e);
  }
}

/** Decodes (JPEG/PNG/WebP…), resizes the short side and centre-crops to size×size, RGB. Errors name the file. */
export async function loadImageSquare(path: string, size: number): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(path).removeAlpha().resize(size, size, { fit: 'cover', position: 'centre' }).raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    throw new Error(`cannot decode image ${path}: ${(e as Error).message}`);
  }
}

/** `img` as a size×size RGB image (short side resized, centre crop); returned as is when it already is one. */
export async function resizeSquare(img: RgbImage, size: number): Promise<RgbImage> {
  if (img.width === size && img.height === size && (img.channels ?? 3) === 3) return img;
  const { data, info } = await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: img.channels ?? 3 } })
    .removeAlpha()
    .resize(size, size, { fit: 'cover' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}
