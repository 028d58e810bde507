// Image transforms on small 8-bit RGB images, in plain JS over typed arrays.
//
// Where augmentations run: decode+resize happens once per file in sharp (and can be cached);
// random augmentations run here in JS on the small raw image. Measurements at `trainTransform`.
import type { RgbImage } from './image.js';
import { assertRgbImage } from './image.js';
import type { Rng } from './rng.js';

export type { RgbImage } from './image.js';

/** A (possibly random) image transform. It must draw randomness only from `rng`. */
export type ImageTransform = (img: RgbImage, rng: Rng) => RgbImage;

export {
  IMAGENET_MEAN, IMAGENET_STD, IMAGENET_NORMALIZATION, normalizeToChw, type Normalization,
} from '@foliar/data';

// ---------- geometry ----------

export function crop(img: RgbImage, x: number, y: number, w: number, h: number): RgbImage {
  if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > img.width || y + h > img.height) {
    throw new Error(`crop: box (${x},${y},${w}x${h}) outside ${img.width}x${img.height} image`);
  }
  const data = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    const s = ((y + r) * img.width + x) * 3;
    data.set(img.data.subarray(s, s + w * 3), r * w * 3);
  }
  return { width: w, height: h, data };
}

export function centerCrop(img: RgbImage, w: number, h = w): RgbImage {
  return crop(img, Math.floor((img.width - w) / 2), Math.floor((img.height - h) / 2), w, h);
}

/**
 * Triangle-filter weights for one axis. Widening the filter when shrinking gives antialiasing, and
 * taps outside the image are dropped and the rest renormalized, as PIL's bilinear resize does.
 */
function axisWeights(inSize: number, outSize: number, start: number, extent: number): { idx: Int32Array; w: Float32Array; taps: number } {
  const scale = extent / outSize;
  const fscale = Math.max(scale, 1);
  const support = fscale;
  const taps = Math.ceil(support) * 2 + 1;
  const idx = new Int32Array(outSize * taps);
  const w = new Float32Array(outSize * taps);
  for (let o = 0; o < outSize; o++) {
    const center = start + (o + 0.5) * scale;
    const lo = Math.floor(center - support);
    let sum = 0;
    for (let t = 0; t < taps; t++) {
      const i = lo + t;
      const d = Math.abs(i + 0.5 - center) / fscale;
      const wt = d < 1 && i >= 0 && i < inSize ? 1 - d : 0;
      idx[o * taps + t] = Math.min(inSize - 1, Math.max(0, i)); // any in-range index; weight is 0 outside
      w[o * taps + t] = wt;
      sum += wt;
    }
    if (sum === 0) throw new Error(`resize: empty filter window at output ${o} (box outside the image?)`);
    for (let t = 0; t < taps; t++) w[o * taps + t] /= sum;
  }
  return { idx, w, taps };
}

/**
 * Resize the box `(x, y, w, h)` of `img` (default: whole image, fractional boxes allowed) to
 * `outW x outH` with an antialiased bilinear filter.
 */
export function resizeBilinear(
  img: RgbImage,
  outW: number,
  outH: number,
  box: { x: number; y: number; w: number; h: number } = { x: 0, y: 0, w: img.width, h: img.height },
): RgbImage {
  const W = img.width;
  if (box.x < 0 || box.y < 0 || box.w <= 0 || box.h <= 0 || box.x + box.w > W + 1e-9 || box.y + box.h > img.height + 1e-9) {
    throw new Error(`resizeBilinear: box (${box.x},${box.y},${box.w}x${box.h}) outside ${W}x${img.height} image`);
  }
  if (!(Number.isInteger(outW) && Number.isInteger(outH) && outW > 0 && outH > 0)) throw new Error(`resizeBilinear: invalid size ${outW}x${outH}`);
  const ax = axisWeights(W, outW, box.x, box.w);
  const ay = axisWeights(img.height, outH, box.y, box.h);
  // Only the rows the vertical filter touches need the horizontal pass.
  const rowMin = ay.idx.reduce((a, b) => Math.min(a, b), Infinity);
  const rowMax = ay.idx.reduce((a, b) => Math.max(a, b), -Infinity);
  const tmp = new Float32Array((rowMax - rowMin + 1) * outW * 3);
  const src = img.data;
  for (let r = rowMin; r <= rowMax; r++) {
    const rowBase = r * W * 3;
    const tBase = (r - rowMin) * outW * 3;
    for (let o = 0; o < outW; o++) {
      let a = 0, b = 0, c = 0;
      for (let t = 0; t < ax.taps; t++) {
        const k = o * ax.taps + t;
        const wt = ax.w[k];
        if (wt === 0) continue;
        const s = rowBase + ax.idx[k] * 3;
        a += src[s] * wt; b += src[s + 1] * wt; c += src[s + 2] * wt;
      }
      const d = tBase + o * 3;
      tmp[d] = a; tmp[d + 1] = b; tmp[d + 2] = c;
    }
  }
  const data = new Uint8Array(outW * outH * 3);
  const rowLen = outW * 3;
  const acc = new Float32Array(rowLen);
  for (let o = 0; o < outH; o++) {
    acc.fill(0);
    for (let t = 0; t < ay.taps; t++) {
      const k = o * ay.taps + t;
      const wt = ay.w[k];
      if (wt === 0) continue;
      const sBase = (ay.idx[k] - rowMin) * rowLen;
      for (let j = 0; j < rowLen; j++) acc[j] += tmp[sBase + j] * wt;
    }
    // Weights are non-negative and sum to 1, so acc is within [0, 255]: +0.5 then truncation rounds.
    const dBase = o * rowLen;
    for (let j = 0; j < rowLen; j++) data[dBase + j] = acc[j] + 0.5;
  }
  return { width: outW, height: outH, data };
}

export function horizontalFlip(img: RgbImage): RgbImage {
  const { width: W, height: H } = img;
  const data = new Uint8Array(img.data.length);
  for (let y = 0; y < H; y++) {
    const row = y * W * 3;
    for (let x = 0; x < W; x++) {
      const s = row + x * 3;
      const d = row + (W - 1 - x) * 3;
      data[d] = img.data[s]; data[d + 1] = img.data[s + 1]; data[d + 2] = img.data[s + 2];
    }
  }
  return { width: W, height: H, data };
}

export function verticalFlip(img: RgbImage): RgbImage {
  const { width: W, height: H } = img;
  const data = new Uint8Array(img.data.length);
  const rowLen = W * 3;
  for (let y = 0; y < H; y++) data.set(img.data.subarray(y * rowLen, (y + 1) * rowLen), (H - 1 - y) * rowLen);
  return { width: W, height: H, data };
}

/** Rotate by `k * 90°` counter-clockwise (any integer k; negative = clockwise). Exact, no resampling. */
export function rotate90(img: RgbImage, k: number): RgbImage {
  const q = ((k % 4) + 4) % 4;
  if (q === 0) return { width: img.width, height: img.height, data: img.data.slice() };
  const { width: W, height: H } = img;
  const outW = q === 2 ? W : H;
  const outH = q === 2 ? H : W;
  const data = new Uint8Array(img.data.length);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      // Source pixel for output (x, y).
      let sx: number, sy: number;
      if (q === 1) { sx = W - 1 - y; sy = x; }        // CCW 90: top-right goes to top-left
      else if (q === 2) { sx = W - 1 - x; sy = H - 1 - y; }
      else { sx = y; sy = H - 1 - x; }                // CCW 270 = CW 90
      const s = (sy * W + sx) * 3;
      const d = (y * outW + x) * 3;
      data[d] = img.data[s]; data[d + 1] = img.data[s + 1]; data[d + 2] = img.data[s + 2];
    }
  }
  return { width: outW, height: outH, data };
}

/**
 * Rotate by `degrees` counter-clockwise about the image center (torchvision's convention), same
 * output size, bilinear sampling; pixels that fall outside the source get `fill`.
 */
export function rotate(img: RgbImage, degrees: number, fill: readonly [number, number, number] = [0, 0, 0]): RgbImage {
  const { width: W, height: H } = img;
  if (fill.some((v) => !(v >= 0 && v <= 255))) throw new Error(`rotate: fill values must be in [0, 255], got ${fill.join(',')}`);
  const th = (degrees * Math.PI) / 180;
  const cos = Math.cos(th), sin = Math.sin(th);
  const cx = W / 2, cy = H / 2;
  const src = img.data;
  const data = new Uint8Array(src.length);
  const [f0, f1, f2] = fill;
  for (let y = 0; y < H; y++) {
    const oy = y + 0.5 - cy;
    for (let x = 0; x < W; x++) {
      const ox = x + 0.5 - cx;
      // Inverse map (image y axis points down): source = R(-θ) · output.
      const fx = cos * ox - sin * oy + cx - 0.5;
      const fy = sin * ox + cos * oy + cy - 0.5;
      const x0 = Math.floor(fx), y0 = Math.floor(fy);
      const ax = fx - x0, ay = fy - y0;
      let r = 0, g = 0, b = 0;
      for (let j = 0; j < 2; j++) {
        const yy = y0 + j;
        const wy = j === 0 ? 1 - ay : ay;
        if (wy === 0) continue;
        for (let i = 0; i < 2; i++) {
          const xx = x0 + i;
          const w = (i === 0 ? 1 - ax : ax) * wy;
          if (w === 0) continue;
          if (xx >= 0 && yy >= 0 && xx < W && yy < H) {
            const s = (yy * W + xx) * 3;
            r += src[s] * w; g += src[s + 1] * w; b += src[s + 2] * w;
          } else {
            r += f0 * w; g += f1 * w; b += f2 * w;
          }
        }
      }
      const d = (y * W + x) * 3;
      // Bilinear weights are non-negative and sum to 1: values stay in [0, 255]; +0.5 rounds.
      data[d] = r + 0.5; data[d + 1] = g + 0.5; data[d + 2] = b + 0.5;
    }
  }
  return { width: W, height: H, data };
}

// ---------- random resized crop ----------

export interface RandomResizedCropOptions {
  /** Output size: square side or `[width, height]`. */
  size: number | [number, number];
  /** Range of the crop's area as a fraction of the image (default [0.08, 1], as torchvision). */
  scale?: [number, number];
  /** Range of the crop's aspect ratio w/h (default [3/4, 4/3]), sampled log-uniformly. */
  ratio?: [number, number];
}

/** torchvision's `RandomResizedCrop.get_params`: 10 tries, then a central crop clamped to `ratio`. */
export function randomResizedCropBox(
  width: number,
  height: number,
  rng: Rng,
  scale: [number, number] = [0.08, 1],
  ratio: [number, number] = [3 / 4, 4 / 3],
): { x: number; y: number; w: number; h: number } {
  const area = width * height;
  const logLo = Math.log(ratio[0]), logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const y = rng.int(height - h + 1);
      const x = rng.int(width - w + 1);
      return { x, y, w, h };
    }
  }
  const inRatio = width / height;
  let w: number, h: number;
  if (inRatio < Math.min(...ratio)) { w = width; h = Math.round(w / Math.min(...ratio)); }
  else if (inRatio > Math.max(...ratio)) { h = height; w = Math.round(h * Math.max(...ratio)); }
  else { w = width; h = height; }
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), w, h };
}

export function randomResizedCrop(img: RgbImage, rng: Rng, options: RandomResizedCropOptions): RgbImage {
  const [outW, outH] = typeof options.size === 'number' ? [options.size, options.size] : options.size;
  const box = randomResizedCropBox(img.width, img.height, rng, options.scale, options.ratio);
  return resizeBilinear(img, outW, outH, box);
}

// ---------- colour ----------

export interface ColorJitterOptions {
  /** Brightness factor drawn from [max(0, 1-b), 1+b]. */
  brightness?: number;
  /** Contrast factor drawn from [max(0, 1-c), 1+c]. */
  contrast?: number;
  /** Saturation factor drawn from [max(0, 1-s), 1+s]. */
  saturation?: number;
  /** Hue shift drawn from [-h, h], in turns (0 ≤ h ≤ 0.5). */
  hue?: number;
}

const GRAY_R = 0.2989, GRAY_G = 0.587, GRAY_B = 0.114; // torchvision's rgb_to_grayscale weights

// Colour adjustments on floats in [0, 1] (HWC), each clamped as torchvision does.
// Ternary clamps: measurably faster than Math.min/Math.max in these hot loops.
function adjustBrightness(f: Float32Array, k: number): void {
  for (let i = 0; i < f.length; i++) {
    const v = f[i] * k;
    f[i] = v > 1 ? 1 : v;
  }
}

function adjustContrast(f: Float32Array, k: number): void {
  let mean = 0;
  for (let i = 0; i < f.length; i += 3) mean += GRAY_R * f[i] + GRAY_G * f[i + 1] + GRAY_B * f[i + 2];
  mean /= f.length / 3;
  const b = (1 - k) * mean;
  for (let i = 0; i < f.length; i++) {
    const v = k * f[i] + b;
    f[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
}

function adjustSaturation(f: Float32Array, k: number): void {
  const k1 = 1 - k;
  for (let i = 0; i < f.length; i += 3) {
    const g = k1 * (GRAY_R * f[i] + GRAY_G * f[i + 1] + GRAY_B * f[i + 2]);
    const r = k * f[i] + g, gg = k * f[i + 1] + g, b = k * f[i + 2] + g;
    f[i] = r < 0 ? 0 : r > 1 ? 1 : r;
    f[i + 1] = gg < 0 ? 0 : gg > 1 ? 1 : gg;
    f[i + 2] = b < 0 ? 0 : b > 1 ? 1 : b;
  }
}

function adjustHue(f: Float32Array, shift: number): void {
  for (let i = 0; i < f.length; i += 3) {
    const r = f[i], g = f[i + 1], b = f[i + 2];
    const max = r > g ? (r > b ? r : b) : (g > b ? g : b);
    const min = r < g ? (r < b ? r : b) : (g < b ? g : b);
    const delta = max - min;
    if (delta === 0) continue; // grey: hue undefined, unchanged
    let h: number;
    if (max === r) h = ((g - b) / delta) / 6;
    else if (max === g) h = ((b - r) / delta + 2) / 6;
    else h = ((r - g) / delta + 4) / 6;
    h = h + shift;
    h -= Math.floor(h);
    const s = delta / max, v = max;
    const h6 = h * 6;
    const sector = Math.floor(h6) % 6;
    const frac = h6 - Math.floor(h6);
    const p = v * (1 - s), q = v * (1 - s * frac), t = v * (1 - s * (1 - frac));
    let R: number, G: number, B: number;
    switch (sector) {
      case 0: R = v; G = t; B = p; break;
      case 1: R = q; G = v; B = p; break;
      case 2: R = p; G = v; B = t; break;
      case 3: R = p; G = q; B = v; break;
      case 4: R = t; G = p; B = v; break;
      default: R = v; G = p; B = q; break;
    }
    f[i] = R; f[i + 1] = G; f[i + 2] = B;
  }
}

export interface ColorAdjustment {
  brightness?: number;
  contrast?: number;
  saturation?: number;
  hue?: number;
}

/**
 * Apply fixed colour adjustments in the given order (factor 1 / hue 0 = identity).
 * Works in float and rounds to 8 bits once at the end.
 */
export function adjustColor(img: RgbImage, adj: ColorAdjustment, order: readonly (keyof ColorAdjustment)[] = ['brightness', 'contrast', 'saturation', 'hue']): RgbImage {
  const f = new Float32Array(img.data.length);
  for (let i = 0; i < f.length; i++) f[i] = img.data[i] / 255;
  for (const op of order) {
    const v = adj[op];
    if (v === undefined) continue;
    if (op === 'brightness') adjustBrightness(f, v);
    else if (op === 'contrast') adjustContrast(f, v);
    else if (op === 'saturation') adjustSaturation(f, v);
    else adjustHue(f, v);
  }
  const data = new Uint8Array(f.length);
  for (let i = 0; i < f.length; i++) data[i] = f[i] * 255 + 0.5; // f in [0, 1]: truncation rounds
  return { width: img.width, height: img.height, data };
}

/** torchvision ColorJitter: random factors, applied in a random order. */
export function colorJitter(img: RgbImage, rng: Rng, options: ColorJitterOptions): RgbImage {
  const order: (keyof ColorAdjustment)[] = ['brightness', 'contrast', 'saturation', 'hue'];
  rng.shuffle(order);
  const adj: ColorAdjustment = {};
  const factor = (x: number | undefined): number | undefined =>
    x === undefined || x === 0 ? undefined : rng.uniform(Math.max(0, 1 - x), 1 + x);
  adj.brightness = factor(options.brightness);
  adj.contrast = factor(options.contrast);
  adj.saturation = factor(options.saturation);
  if (options.hue !== undefined && options.hue !== 0) {
    if (options.hue < 0 || options.hue > 0.5) throw new Error(`colorJitter: hue must be in [0, 0.5], got ${options.hue}`);
    adj.hue = rng.uniform(-options.hue, options.hue);
  }
  return adjustColor(img, adj, order);
}

// ---------- degradations (blur, resampling, pixel noise) ----------
//
// What a VAE's reconstruction or a generator's sample does to a leaf: a softer image with a little
// noise. A classifier that never saw either in training can read them as another class
// (docs/generator-recipe.md); training on these makes it judge such images by their content.

/** Normalized Gaussian taps of radius max(1, ceil(3σ)) (σ → 0 gives the identity kernel [0, 1, 0]). */
export function gaussianKernel(sigma: number): Float32Array {
  if (!(sigma >= 0 && Number.isFinite(sigma))) throw new Error(`gaussianKernel: sigma must be a non-negative number, got ${sigma}`);
  const r = Math.max(1, Math.ceil(sigma * 3));
  const k = new Float32Array(2 * r + 1);
  if (sigma === 0) { k[r] = 1; return k; }
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** Separable Gaussian blur of σ pixels, edges clamped (no dark border), rounded to 8 bits once. */
export function gaussianBlur(img: RgbImage, sigma: number): RgbImage {
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) >> 1;
  const { width: W, height: H } = img;
  const src = img.data;
  const tmp = new Float32Array(src.length);
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let x = 0; x < W; x++) {
      let a = 0, b = 0, c = 0;
      for (let t = -r; t <= r; t++) {
        const xx = x + t;
        const s = (row + (xx < 0 ? 0 : xx >= W ? W - 1 : xx)) * 3;
        const w = k[t + r];
        a += src[s] * w; b += src[s + 1] * w; c += src[s + 2] * w;
      }
      const d = (row + x) * 3;
      tmp[d] = a; tmp[d + 1] = b; tmp[d + 2] = c;
    }
  }
  const data = new Uint8Array(src.length);
  const rowLen = W * 3;
  for (let y = 0; y < H; y++) {
    for (let j = 0; j < rowLen; j++) {
      let a = 0;
      for (let t = -r; t <= r; t++) {
        const yy = y + t;
        a += tmp[(yy < 0 ? 0 : yy >= H ? H - 1 : yy) * rowLen + j] * k[t + r];
      }
      // non-negative weights summing to 1 keep a within [0, 255] up to rounding error
      data[y * rowLen + j] = a > 255 ? 255 : a + 0.5;
    }
  }
  return { width: W, height: H, data };
}

/**
 * Shrink by `factor` (≥ 1) with the antialiased bilinear filter, then enlarge back: the detail a
 * lossy codec or a VAE's downsampling path drops.
 */
export function downUpsample(img: RgbImage, factor: number): RgbImage {
  if (!(factor >= 1 && Number.isFinite(factor))) throw new Error(`downUpsample: factor must be ≥ 1, got ${factor}`);
  const w = Math.max(1, Math.round(img.width / factor)), h = Math.max(1, Math.round(img.height / factor));
  if (w === img.width && h === img.height) return img;
  return resizeBilinear(resizeBilinear(img, w, h), img.width, img.height);
}

export type PixelNoiseKind = 'gaussian' | 'uniform';

/** Adds independent noise of standard deviation `std` (8-bit units) to every channel value, clamped to [0, 255]. */
export function addPixelNoise(img: RgbImage, rng: Rng, std: number, kind: PixelNoiseKind = 'gaussian'): RgbImage {
  if (!(std >= 0 && Number.isFinite(std))) throw new Error(`addPixelNoise: std must be a non-negative number, got ${std}`);
  const src = img.data;
  const data = new Uint8Array(src.length);
  const half = std * Math.sqrt(3); // uniform on [-half, half] has this std
  for (let i = 0; i < src.length; i++) {
    const v = src[i] + (kind === 'gaussian' ? std * rng.normal() : rng.uniform(-half, half)) + 0.5;
    data[i] = v < 0 ? 0 : v > 255 ? 255 : v; // truncation of v (+0.5 above) rounds
  }
  return { width: img.width, height: img.height, data };
}

/** Each degradation is applied with probability `p`, its strength drawn uniformly from its range. */
export interface DegradationOptions {
  /** Downsample by a factor in `factor` (≥ 1), then upsample back. */
  resample?: { p: number; factor: [number, number] };
  /** Gaussian blur of σ in `sigma` pixels. */
  blur?: { p: number; sigma: [number, number] };
  /** Additive pixel noise of std in `std` (8-bit units), Gaussian unless `kind` says uniform. */
  noise?: { p: number; std: [number, number]; kind?: PixelNoiseKind };
}

/**
 * Random degradations in a fixed order: resample, blur (the optics / the decoder), then noise (the
 * sensor / the sampler). Each present one draws its coin (and its strength when it fires) from `rng`;
 * absent ones draw nothing.
 */
export const randomDegradation = (options: DegradationOptions): ImageTransform => (img, rng) => {
  let out = img;
  const { resample, blur, noise } = options;
  if (resample && rng.bernoulli(resample.p)) out = downUpsample(out, rng.uniform(resample.factor[0], resample.factor[1]));
  if (blur && rng.bernoulli(blur.p)) {
    out = gaussianBlur(out, rng.uniform(blur.sigma[0], blur.sigma[1]));
  }
  if (noise && rng.bernoulli(noise.p)) out = addPixelNoise(out, rng, rng.uniform(noise.std[0], noise.std[1]), noise.kind ?? 'gaussian');
  return out;
};

// ---------- composition ----------

export function compose(...ts: ImageTransform[]): ImageTransform {
  return (img, rng) => ts.reduce((acc, t) => t(acc, rng), img);
}

export const randomHorizontalFlip = (p = 0.5): ImageTransform => (img, rng) => (rng.bernoulli(p) ? horizontalFlip(img) : img);
export const randomVerticalFlip = (p = 0.5): ImageTransform => (img, rng) => (rng.bernoulli(p) ? verticalFlip(img) : img);
/** Rotate by a uniformly chosen multiple of 90° (0, 90, 180, 270). Non-square images change shape at 90/270. */
export const randomRotate90 = (): ImageTransform => (img, rng) => rotate90(img, rng.int(4));
/** Rotate by an angle drawn from [-maxDegrees, maxDegrees]. */
export const randomRotation = (maxDegrees: number, fill?: readonly [number, number, number]): ImageTransform =>
  (img, rng) => rotate(img, rng.uniform(-maxDegrees, maxDegrees), fill);
export const randomResizedCropTransform = (options: RandomResizedCropOptions): ImageTransform =>
  (img, rng) => randomResizedCrop(img, rng, options);
export const colorJitterTransform = (options: ColorJitterOptions): ImageTransform => (img, rng) => colorJitter(img, rng, options);

export interface TrainTransformOptions {
  /** Output side. */
  size: number;
  /** RandomResizedCrop area range (default [0.08, 1]); `null` = no crop, just resize to `size`. */
  cropScale?: [number, number] | null;
  cropRatio?: [number, number];
  horizontalFlip?: boolean;
  verticalFlip?: boolean;
  /** Random multiples of 90° (leaves have no canonical orientation). */
  rotate90?: boolean;
  /** Small random rotation, ± degrees (0 = off). */
  rotationDegrees?: number;
  colorJitter?: ColorJitterOptions;
}

/**
 * Standard training augmentation: random resized crop → flips → rotations → colour jitter.
 *
 * Measured (2-core x86 VM, Node 20, sharp 0.35.5, 128x128 leaf JPEGs → 112x112, per image,
 * warm, sequential): sharp decode to raw ~1.0 ms; the whole augmentation in sharp from the JPEG
 * (extract+resize+flop+flip+rotate(90)+modulate+linear) ~3.7 ms; in JS on the cached raw image:
 * random resized crop ~0.5 ms, colour jitter (4 ops) ~0.9 ms, flips/rot90 < 0.1 ms, all of this
 * pipeline ~1.1 ms; normalization ~0.2 ms. So images are decoded+resized once by sharp (cached)
 * and augmented here in JS, about 3x cheaper than re-running sharp per sample.
 */
export function trainTransform(options: TrainTransformOptions): ImageTransform {
  const ts: ImageTransform[] = [];
  const size = options.size;
  if (options.cropScale === null) ts.push((img) => (img.width === size && img.height === size ? img : resizeBilinear(img, size, size)));
  else ts.push(randomResizedCropTransform({ size, scale: options.cropScale ?? [0.08, 1], ratio: options.cropRatio ?? [3 / 4, 4 / 3] }));
  if (options.horizontalFlip ?? true) ts.push(randomHorizontalFlip());
  if (options.verticalFlip ?? false) ts.push(randomVerticalFlip());
  if (options.rotate90 ?? false) ts.push(randomRotate90());
  if (options.rotationDegrees) ts.push(randomRotation(options.rotationDegrees));
  if (options.colorJitter) ts.push(colorJitterTransform(options.colorJitter));
  return compose(...ts);
}

/** Evaluation transform: resize the shorter side to `resize` (default = size), then center-crop `size`. */
export function evalTransform(size: number, resize = size): ImageTransform {
  return (img) => {
    const s = resize / Math.min(img.width, img.height);
    const w = Math.max(size, Math.round(img.width * s));
    const h = Math.max(size, Math.round(img.height * s));
    const r = w === img.width && h === img.height ? img : resizeBilinear(img, w, h);
    return r.width === size && r.height === size ? r : centerCrop(r, size);
  };
}
