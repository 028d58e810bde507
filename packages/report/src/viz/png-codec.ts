/** PNG encoding/decoding in memory (via fast-png): no file system, so browsers bundle it too. */
import { decode, encode } from 'fast-png';
import { channelsOf, type Raster, type RgbImage } from '@foliar/data';

export function encodePng(img: RgbImage): Uint8Array {
  const channels = channelsOf(img);
  if (img.data.length !== img.width * img.height * channels) {
    throw new RangeError(
      `encodePng: data has ${img.data.length} bytes, expected ${img.width}x${img.height}x${channels}`);
  }
  return encode({ width: img.width, height: img.height, channels, depth: 8, data: img.data });
}

/**
 * Decodes PNG bytes to an 8-bit RGB or RGBA image (grey, palette and 16-bit files are converted).
 * `name` only labels error messages.
 */
export function decodePng(bytes: Uint8Array, name = 'PNG data'): Raster {
  let png;
  try {
    png = decode(bytes);
  } catch (e) {
    throw new Error(`${name}: not a readable PNG (${(e as Error).message})`);
  }
  const { width, height } = png;
  const n = width * height;
  const trns = png.palette ? png.transparency : undefined;
  const hasAlpha = png.channels === 2 || png.channels === 4 || (png.palette?.[0]?.length ?? 3) === 4 || trns !== undefined;
  const channels: 3 | 4 = hasAlpha ? 4 : 3;
  const out = new Uint8Array(n * channels);
  const src = png.data;
  const shift = png.depth === 16 ? 8 : 0;
  for (let p = 0; p < n; p++) {
    let rgba: number[];
    const packed = png.depth < 8 ? readPacked(src, p % width, Math.floor(p / width), width, png.depth) : -1;
    if (png.palette) {
      const idx = packed >= 0 ? packed : src[p]!;
      const entry = png.palette[idx];
      if (!entry) throw new Error(`${name}: palette index ${idx} out of range at pixel ${p}`);
      rgba = trns ? [entry[0]!, entry[1]!, entry[2]!, trns[idx] ?? 255] : entry;
    } else if (png.channels <= 2) {
      const g = scaleTo8(packed >= 0 ? packed : src[p * png.channels]!, png.depth);
      rgba = [g, g, g, png.channels === 2 ? scaleTo8(src[p * 2 + 1]!, png.depth) : 255];
    } else {
      const i = p * png.channels;
      rgba = [src[i]! >> shift, src[i + 1]! >> shift, src[i + 2]! >> shift, png.channels === 4 ? src[i + 3]! >> shift : 255];
    }
    for (let k = 0; k < channels; k++) out[p * channels + k] = rgba[k] ?? 255;
  }
  return { width, height, channels, data: out };
}

/** Sub-byte grey/palette samples stay packed MSB-first, each row starting on a byte boundary. */
function readPacked(src: ArrayLike<number>, x: number, y: number, width: number, depth: number): number {
  const rowBytes = Math.ceil((width * depth) / 8);
  const bit = x * depth;
  return (src[y * rowBytes + (bit >> 3)]! >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
}

function scaleTo8(v: number, depth: number): number {
  if (depth === 16) return v >> 8;
  if (depth === 8) return v;
  return Math.round((v * 255) / ((1 << depth) - 1));
}
