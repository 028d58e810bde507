// HWC bytes ↔ CHW floats: what goes into a model ([N, 3, H, W] in [-1, 1], or normalized per channel)
// and what comes out of one ([C, H, W] in [0, 1] or [-1, 1] → an image).
import { assertRgbImage, type Raster, type RgbImage } from './rgb-image.js';

/** The value range of float pixel data: `'[-1,1]'` (diffusion models) or `'[0,1]'`. */
export type FloatRange = '[-1,1]' | '[0,1]';

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

export const IMAGENET_NORMALIZATION: Normalization = { mean: IMAGENET_MEAN, std: IMAGENET_STD };

/**
 * Convert to float CHW: `(x / 255 - mean[c]) / std[c]`, written into `out` at `offset`
 * (allocated when omitted). Returns `out`.
 */
export function normalizeToChw(
  img: RgbImage,
  out?: Float32Array,
  offset = 0,
  norm: Normalization = IMAGENET_NORMALIZATION,
): Float32Array {
  assertRgbImage(img);
  if (norm.mean.length !== 3 || norm.std.length !== 3) throw new Error('normalizeToChw: mean and std need 3 values (R, G, B)');
  const hw = img.width * img.height;
  const dst = out ?? new Float32Array(3 * hw);
  if (offset + 3 * hw > dst.length) throw new Error(`normalizeToChw: output too small (${dst.length} < ${offset + 3 * hw})`);
  const src = img.data;
  for (let c = 0; c < 3; c++) {
    const s = 1 / (255 * norm.std[c]!);
    const b = -norm.mean[c]! / norm.std[c]!;
    const base = offset + c * hw;
    for (let p = 0; p < hw; p++) dst[base + p] = src[p * 3 + c]! * s + b;
  }
  return dst;
}

/** Images of one size (RGB or RGBA: alpha ignored) → NCHW floats in [-1, 1] (what a VAE encoder expects). */
export function imagesToChw(imgs: readonly RgbImage[]): { data: Float32Array; shape: [number, number, number, number] } {
  const { width: w, height: h } = imgs[0]!;
  const out = new Float32Array(imgs.length * 3 * h * w);
  imgs.forEach((img, n) => {
    const ch = img.channels ?? 3;
    if (img.width !== w || img.height !== h) throw new RangeError(`image ${n} is ${img.width}x${img.height}, expected ${w}x${h}`);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++) out[((n * 3 + c) * h + y) * w + x] = (img.data[(y * w + x) * ch + c]! / 255) * 2 - 1;
  });
  return { data: out, shape: [imgs.length, 3, h, w] };
}

const clampByte = (v: number): number => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v));

/**
 * Converts float pixels in CHW layout (a tensor's `[C, H, W]` data) to an image. C may be 1
 * (grey, replicated), 3 or 4. Values outside `range` are clipped; NaN becomes 0.
 */
export function fromFloatCHW(data: ArrayLike<number>, c: number, h: number, w: number, range: FloatRange = '[0,1]'): Raster {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w <= 0 || h <= 0) {
    throw new RangeError(`fromFloatCHW: size must be positive integers, got ${w}x${h}`);
  }
  if (c !== 1 && c !== 3 && c !== 4) throw new RangeError(`fromFloatCHW: channels must be 1, 3 or 4, got ${c}`);
  if (data.length !== c * h * w) {
    throw new RangeError(`fromFloatCHW: expected ${c}x${h}x${w} = ${c * h * w} values, got ${data.length}`);
  }
  if (range !== '[0,1]' && range !== '[-1,1]') throw new RangeError(`fromFloatCHW: unknown range '${String(range)}'`);
  const signed = range === '[-1,1]';
  const channels = c === 4 ? 4 : 3;
  const out: Raster = { width: w, height: h, channels, data: new Uint8Array(w * h * channels) };
  const plane = h * w;
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < channels; k++) {
      let v = data[(c === 1 ? 0 : k) * plane + p]!;
      if (signed) v = (v + 1) / 2;
      out.data[p * channels + k] = Number.isNaN(v) ? 0 : clampByte(v * 255);
    }
  }
  return out;
}
