/**
 * A minimal interleaved 8-bit RGB(A) raster and the few operations the training pictures need:
 * filling, compositing, resizing, and conversion from the float CHW layout tensors use.
 */
import { channelsOf, hasChannels, type Raster, type RgbImage } from '@foliar/data';

export type { RgbImage, Raster, FloatRange } from '@foliar/data';
export { fromFloatCHW } from '@foliar/data';

/** An RGB colour, or RGBA where alpha (0-255) blends the colour over what is already there. */
export type Color = readonly [number, number, number] | readonly [number, number, number, number];

function checkSize(width: number, height: number, where: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`${where}: size must be positive integers, got ${width}x${height}`);
  }
}

export function createImage(width: number, height: number, channels: 3 | 4 = 3, background?: Color): Raster {
  checkSize(width, height, 'createImage');
  const img: Raster = { width, height, channels, data: new Uint8Array(width * height * channels) };
  if (background) fillImage(img, background);
  else if (channels === 4) fillImage(img, [0, 0, 0, 0]);
  return img;
}

const clampByte = (v: number): number => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v));

/**
 * Blends `color` into pixel (x, y) with coverage `alpha` in [0, 1] (times the colour's own alpha).
 * Out-of-bounds pixels are ignored so callers can draw shapes that cross the border.
 */
export function blendPixel(img: RgbImage, x: number, y: number, color: Color, alpha = 1): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const c = channelsOf(img);
  const a = alpha * (color.length === 4 ? color[3] / 255 : 1);
  if (a <= 0) return;
  const i = (y * img.width + x) * c;
  const d = img.data;
  if (a >= 1) {
    d[i] = color[0]; d[i + 1] = color[1]; d[i + 2] = color[2];
    if (c === 4) d[i + 3] = 255;
    return;
  }
  d[i] = clampByte(d[i]! + (color[0] - d[i]!) * a);
  d[i + 1] = clampByte(d[i + 1]! + (color[1] - d[i + 1]!) * a);
  d[i + 2] = clampByte(d[i + 2]! + (color[2] - d[i + 2]!) * a);
  if (c === 4) d[i + 3] = clampByte(d[i + 3]! + (255 - d[i + 3]!) * a);
}

/** Reads pixel (x, y) as [r, g, b, a] (a = 255 for RGB images). */
export function getPixel(img: RgbImage, x: number, y: number): [number, number, number, number] {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) {
    throw new RangeError(`getPixel: (${x}, ${y}) outside ${img.width}x${img.height} image`);
  }
  const c = channelsOf(img);
  const i = (y * img.width + x) * c;
  const d = img.data;
  return [d[i]!, d[i + 1]!, d[i + 2]!, c === 4 ? d[i + 3]! : 255];
}

/** Fills the whole image with an opaque colour (alpha of `color` is written, not blended). */
export function fillImage<T extends RgbImage>(img: T, color: Color): T {
  const data = img.data, channels = channelsOf(img);
  const a = color.length === 4 ? color[3] : 255;
  for (let i = 0; i < data.length; i += channels) {
    data[i] = color[0]; data[i + 1] = color[1]; data[i + 2] = color[2];
    if (channels === 4) data[i + 3] = a;
  }
  return img;
}

/** Fills (blends, for RGBA colours) an axis-aligned rectangle, clipped to the image. */
export function fillRect(img: RgbImage, x: number, y: number, w: number, h: number, color: Color): void {
  const x0 = Math.max(0, Math.round(x)), y0 = Math.max(0, Math.round(y));
  const x1 = Math.min(img.width, Math.round(x + w)), y1 = Math.min(img.height, Math.round(y + h));
  for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) blendPixel(img, xx, yy, color);
}

/** Draws a 1-pixel rectangle outline. */
export function strokeRect(img: RgbImage, x: number, y: number, w: number, h: number, color: Color): void {
  fillRect(img, x, y, w, 1, color);
  fillRect(img, x, y + h - 1, w, 1, color);
  fillRect(img, x, y + 1, 1, h - 2, color);
  fillRect(img, x + w - 1, y + 1, 1, h - 2, color);
}

/**
 * Copies `src` into `dst` with its top-left corner at (x, y), clipped. RGBA sources are
 * alpha-blended; RGB sources overwrite.
 */
export function blit<T extends RgbImage>(dst: T, src: RgbImage, x: number, y: number): T {
  x = Math.round(x); y = Math.round(y);
  const sx0 = Math.max(0, -x), sy0 = Math.max(0, -y);
  const sx1 = Math.min(src.width, dst.width - x), sy1 = Math.min(src.height, dst.height - y);
  const sc = channelsOf(src), dc = channelsOf(dst), s = src.data, d = dst.data;
  for (let sy = sy0; sy < sy1; sy++) {
    for (let sx = sx0; sx < sx1; sx++) {
      const si = (sy * src.width + sx) * sc;
      const di = ((sy + y) * dst.width + sx + x) * dc;
      const a = sc === 4 ? s[si + 3]! / 255 : 1;
      if (a >= 1) {
        d[di] = s[si]!; d[di + 1] = s[si + 1]!; d[di + 2] = s[si + 2]!;
        if (dc === 4) d[di + 3] = 255;
      } else if (a > 0) {
        for (let k = 0; k < 3; k++) d[di + k] = clampByte(d[di + k]! + (s[si + k]! - d[di + k]!) * a);
        if (dc === 4) d[di + 3] = clampByte(d[di + 3]! + (255 - d[di + 3]!) * a);
      }
    }
  }
  return dst;
}

/** Nearest-neighbour resize: keeps hard pixel edges (for enlarging small samples). */
export function resizeNearest(img: RgbImage, width: number, height: number): Raster {
  checkSize(width, height, 'resizeNearest');
  const c = channelsOf(img);
  const out = createImage(width, height, c);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / width));
      const si = (sy * img.width + sx) * c, di = (y * width + x) * c;
      for (let k = 0; k < c; k++) out.data[di + k] = img.data[si + k]!;
    }
  }
  return out;
}

/**
 * Bilinear resize with half-pixel centres (as PIL/torch `align_corners=False`). When shrinking by
 * more than 2x it first box-averages, so thin details blur instead of aliasing.
 */
export function resizeBilinear(img: RgbImage, width: number, height: number): Raster {
  checkSize(width, height, 'resizeBilinear');
  let src = img;
  while (src.width >= width * 2 && src.height >= height * 2) src = halve(src);
  const c = channelsOf(src);
  const out = createImage(width, height, c);
  const sw = src.width, sh = src.height, s = src.data;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max(((y + 0.5) * sh) / height - 0.5, 0), sh - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, sh - 1), wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max(((x + 0.5) * sw) / width - 0.5, 0), sw - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, sw - 1), wx = fx - x0;
      const i00 = (y0 * sw + x0) * c, i01 = (y0 * sw + x1) * c, i10 = (y1 * sw + x0) * c, i11 = (y1 * sw + x1) * c;
      const di = (y * width + x) * c;
      for (let k = 0; k < c; k++) {
        const top = s[i00 + k]! + (s[i01 + k]! - s[i00 + k]!) * wx;
        const bot = s[i10 + k]! + (s[i11 + k]! - s[i10 + k]!) * wx;
        out.data[di + k] = clampByte(top + (bot - top) * wy);
      }
    }
  }
  return out;
}

/** 2x2 box downsample (odd trailing row/column dropped). */
function halve(img: RgbImage): Raster {
  const w = img.width >> 1, h = img.height >> 1, c = channelsOf(img);
  const out = createImage(w, h, c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const a = ((2 * y) * img.width + 2 * x) * c, b = a + img.width * c;
      for (let k = 0; k < c; k++) {
        out.data[(y * w + x) * c + k] = (img.data[a + k]! + img.data[a + c + k]! + img.data[b + k]! + img.data[b + c + k]! + 2) >> 2;
      }
    }
  }
  return out;
}

/** Drops the alpha channel (compositing over `background`), or returns an RGB image unchanged. */
export function toRgb(img: RgbImage, background: Color = [255, 255, 255]): Raster {
  if (hasChannels(img) && img.channels === 3) return img;
  if (img.channels === undefined) return { width: img.width, height: img.height, channels: 3, data: img.data };
  const out = createImage(img.width, img.height, 3, background);
  return blit(out, img, 0, 0);
}
