/**
 * The browser side of @foliar/data's platform port (package.json `imports` "#platform", condition
 * `browser`): files are URLs (fetch), images are decoded by the browser (createImageBitmap) and
 * resized on an OffscreenCanvas. Same functions and results as ./node.ts; resampling differs from
 * sharp's lanczos3 by a few levels per channel.
 */
import type * as NodePlatform from './node.js';
import { ImageDecodeError } from '../decode-types.js';
import type { RgbImage } from '../rgb-image.js';

export const PLATFORM = 'browser' as const;

async function fetchOk(url: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`cannot fetch ${url}: HTTP ${res.status}${res.status === 404 ? ' (file not found)' : ''}`);
  return res;
}

/** A text file (UTF-8) by URL. */
export const readText: typeof NodePlatform.readText = async (url) => (await fetchOk(url)).text();

/** Draws `src` (w×h) onto a width×height canvas, cropped to `crop` of the source, and reads RGB back. */
function rasterize(src: CanvasImageSource, crop: [number, number, number, number], width: number, height: number): RgbImage {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('no 2d context on OffscreenCanvas');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src, crop[0], crop[1], crop[2], crop[3], 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    data[j] = rgba[i]!;
    data[j + 1] = rgba[i + 1]!;
    data[j + 2] = rgba[i + 2]!;
  }
  return { width, height, channels: 3, data };
}

/** The source rectangle that 'cover' keeps (short side fitted, centred) for a w×h target. */
function coverCrop(sw: number, sh: number, w: number, h: number): [number, number, number, number] {
  const scale = Math.max(w / sw, h / sh);
  const cw = w / scale, ch = h / scale;
  return [(sw - cw) / 2, (sh - ch) / 2, cw, ch];
}

/**
 * Decodes an image URL or encoded bytes (PNG, JPEG, WebP: whatever the browser reads) into RGB,
 * alpha dropped, EXIF orientation ignored (as in Node), optionally resized ('cover' centre-crops).
 */
export const decodeImage: typeof NodePlatform.decodeImage = async (input, options = {}) => {
  const file = typeof input === 'string' ? input : options.name ?? '<buffer>';
  try {
    const blob = typeof input === 'string' ? await (await fetchOk(input)).blob() : new Blob([input as Uint8Array<ArrayBuffer>]);
    const bitmap = await createImageBitmap(blob, { imageOrientation: 'none', colorSpaceConversion: 'default', premultiplyAlpha: 'none' });
    try {
      const sw = bitmap.width, sh = bitmap.height;
      let w = sw, h = sh;
      if (options.size !== undefined) {
        [w, h] = typeof options.size === 'number' ? [options.size, options.size] : options.size;
        if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) throw new Error(`invalid target size ${JSON.stringify(options.size)}`);
      }
      const crop: [number, number, number, number] = (options.mode ?? 'cover') === 'cover' ? coverCrop(sw, sh, w, h) : [0, 0, sw, sh];
      const img = rasterize(bitmap, crop, w, h);
      return { width: img.width, height: img.height, data: img.data };
    } finally {
      bitmap.close();
    }
  } catch (e) {
    throw new ImageDecodeError(file, e);
  }
};

/** Decodes an image URL, resizes the short side and centre-crops to size×size, RGB. */
export const loadImageSquare: typeof NodePlatform.loadImageSquare = async (url, size) => {
  const img = await decodeImage(url, { size, mode: 'cover' });
  return { ...img, channels: 3 };
};

/** `img` as a size×size RGB image (short side resized, centre crop); returned as is when it already is one. */
export const resizeSquare: typeof NodePlatform.resizeSquare = async (img, size) => {
  const c = img.channels ?? 3;
  if (img.width === size && img.height === size && c === 3) return img;
  const rgba = new Uint8ClampedArray(img.width * img.height * 4);
  for (let i = 0, j = 0; j < img.width * img.height * c; i += 4, j += c) {
    rgba[i] = img.data[j]!;
    rgba[i + 1] = img.data[j + 1]!;
    rgba[i + 2] = img.data[j + 2]!;
    rgba[i + 3] = 255;
  }
  const bitmap = await createImageBitmap(new ImageData(rgba, img.width, img.height));
  try {
    return rasterize(bitmap, coverCrop(img.width, img.height, size, size), size, size);
  } finally {
    bitmap.close();
  }
};
