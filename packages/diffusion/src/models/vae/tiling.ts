/**
 * Tiled VAE decode and encode (diffusers' `enable_vae_tiling`, issue 16).
 *
 * At Stable Diffusion's size the VAE's full-resolution activations outgrow one WebGPU storage binding
 * ([1, 256, 512, 512] f32 is 256 MiB; lavapipe binds 128 MiB), and the runtime refuses a kernel that
 * would bind one whole. The model is convolutional, so it can run on overlapping tiles whose outputs
 * are cross-faded over the overlap. The result differs from the untiled one (GroupNorm statistics and
 * the mid-block attention are per tile), which is why tiling is used only when needed.
 *
 * How this differs from diffusers, on purpose:
 * - tiles are spread evenly so that every tile has the full size (diffusers' last tile in a row is
 *   whatever is left, sometimes a sliver; full tiles give the last tile as much context as the rest and
 *   one shape for every tile);
 * - each output pixel is a normalised weighted sum of the tiles covering it (weights that ramp linearly
 *   across each actual overlap and sum to one), accumulated as each tile finishes, so only one tile's
 *   activations are alive at a time; diffusers keeps every decoded tile, then crops and blends pairs.
 */
import { tidy, tensor, cat, type Tensor } from '@foliar/tensor';
import type { AutoencoderKLConfig } from './autoencoder-kl.js';

/** 'auto': split only when the untiled run would exceed the backend's binding limit; 'on': also tile whenever the input exceeds the tile; 'off': never split. */
export type VaeTilingMode = 'auto' | 'on' | 'off';

export interface VaeTilingOptions {
  /** Tile edge in pixels (image space). Default: the config's sample_size (512 for SD1.5). Rounded down to a multiple of the VAE's scale factor. */
  tileSampleSize?: number;
  /** Fraction of a tile shared with its neighbour, in [0, 0.5). Default 0.25, as diffusers. */
  overlap?: number;
}

/** How the last decode or encode ran (for tests, logs and the bench). */
export interface VaeTilingInfo {
  op: 'decode' | 'encode';
  mode: VaeTilingMode;
  /** 'whole': one run; 'batch-split': one image (untiled) at a time; 'tiled': overlapping tiles. */
  strategy: 'whole' | 'batch-split' | 'tiled';
  /** Estimated largest binding (bytes) of the untiled run over the whole batch. */
  estimateBytes: number;
  /** The backend's binding limit at the time (Infinity on the CPU). */
  limitBytes: number;
  /** Images per run (the batch, or 1 when split). */
  chunk: number;
  /** Tile size in latent units [h, w]; null unless tiled. */
  tileLatent: [number, number] | null;
  /** Tiles per image ([rows, cols]); [1, 1] unless tiled. */
  grid: [number, number];
  /** Estimated largest binding (bytes) of one tile's run (or one chunk's, when not tiled). */
  tileEstimateBytes: number;
}

const F32 = 4;

/** The VAE's spatial scale: 2 per down/up block but the last. */
export function vaeScaleFactor(c: AutoencoderKLConfig): number {
  return 2 ** (c.block_out_channels.length - 1);
}

/**
 * Largest tensor (bytes) the decoder binds for a batch of `b` latents of h×w: the largest channel
 * count present at each resolution times its pixels. The mid-block attention's [L, L] scores are not
 * counted: scaledDotProductAttention's 'auto' keeps them only while they fit one binding and takes the
 * fused kernel (memory linear in L) otherwise.
 */
export function vaeDecodePeakBytes(c: AutoencoderKLConfig, b: number, h: number, w: number): number {
  const rev = [...c.block_out_channels].reverse();
  let peak = Math.max(c.latent_channels, rev[0]!) * h * w; // post_quant_conv, conv_in, mid block
  let hh = h, ww = w;
  for (let i = 0; i < rev.length; i++) {
    const inC = i ? rev[i - 1]! : rev[0]!;
    peak = Math.max(peak, Math.max(inC, rev[i]!) * hh * ww);
    if (i < rev.length - 1) {
      hh *= 2; ww *= 2; // nearest ×2 then conv, both with rev[i] channels
      peak = Math.max(peak, rev[i]! * hh * ww);
    }
  }
  peak = Math.max(peak, Math.max(c.block_out_channels[0]!, c.out_channels) * hh * ww);
  return b * peak * F32;
}

/** Largest tensor (bytes) the encoder binds for a batch of `b` images of H×W (see vaeDecodePeakBytes). */
export function vaeEncodePeakBytes(c: AutoencoderKLConfig, b: number, H: number, W: number): number {
  const boc = c.block_out_channels;
  let peak = Math.max(c.in_channels, boc[0]!) * H * W;
  let hh = H, ww = W;
  for (let i = 0; i < boc.length; i++) {
    const inC = i ? boc[i - 1]! : boc[0]!;
    peak = Math.max(peak, Math.max(inC, boc[i]!) * hh * ww);
    if (i < boc.length - 1) {
      // the (0, 1, 0, 1) pad before the stride-2 conv
      peak = Math.max(peak, boc[i]! * (hh + 1) * (ww + 1));
      hh = Math.floor((hh - 2) / 2) + 1;
      ww = Math.floor((ww - 2) / 2) + 1;
    }
  }
  peak = Math.max(peak, 2 * c.latent_channels * hh * ww);
  return b * peak * F32;
}

/**
 * Start offsets of tiles of size `tile` covering [0, length), neighbours sharing at least `overlap`:
 * the fewest tiles that allow it, spread evenly, the first at 0 and the last ending at `length`.
 */
export function tileStarts(length: number, tile: number, overlap: number): number[] {
  if (!(tile >= 1 && overlap >= 0 && overlap < tile)) throw new RangeError(`tileStarts: need 0 <= overlap (${overlap}) < tile (${tile})`);
  if (length <= tile) return [0];
  const n = Math.max(2, Math.ceil((length - overlap) / (tile - overlap)));
  return Array.from({ length: n }, (_, k) => Math.round((k * (length - tile)) / (n - 1)));
}

/**
 * The blend weights along one axis, in output units (`scale` output pixels per tile unit): one array
 * per tile, of the tile's output length. Each tile's raw weight rises linearly across its overlap with
 * the previous tile and falls across its overlap with the next ((i + 0.5) / E over an overlap of E
 * pixels, so a pair's two ramps sum to one); the weights are then divided by their sum at each
 * pixel, which keeps them a partition of unity even where more than two tiles meet.
 */
export function blendWeights(starts: readonly number[], tile: number, length: number, scale: number): Float32Array[] {
  const out = length * scale, span = Math.min(tile, length) * scale;
  const raw = starts.map((s, k) => {
    const w = new Float64Array(span).fill(1);
    const lo = s * scale;
    if (k > 0) {
      const e = (starts[k - 1]! + tile) * scale - lo; // overlap with the previous tile
      for (let i = 0; i < e && i < span; i++) w[i]! *= (i + 0.5) / e;
    }
    if (k < starts.length - 1) {
      const e = lo + span - starts[k + 1]! * scale; // overlap with the next tile
      for (let i = 0; i < e && i < span; i++) w[span - 1 - i]! *= (i + 0.5) / e;
    }
    return w;
  });
  const sum = new Float64Array(out);
  starts.forEach((s, k) => raw[k]!.forEach((v, i) => (sum[s * scale + i]! += v)));
  return starts.map((s, k) => Float32Array.from(raw[k]!, (v, i) => v / sum[s * scale + i]!));
}

/**
 * The tile (latent units, at most maxH×maxW) to cut an h×w input into. The configured tile when it
 * fits; otherwise, among the tiles that fit and have at least half the largest fitting area, the
 * largest whose total tiled area (the compute) is within 10% of the least, ties to the squarer.
 * Shrinking only the longer side would often leave two tiles that overlap almost entirely (a 63-unit
 * tile over 64 doubles the work); preferring large tiles keeps context and overlaps wide, which
 * blends better.
 * Returns th = tw = 0 when not even 1×1 fits.
 */
export function chooseTile(h: number, w: number, maxH: number, maxW: number, overlap: number, fits: (th: number, tw: number) => boolean): { th: number; tw: number } {
  if (fits(maxH, maxW)) return { th: maxH, tw: maxW };
  // the largest fitting width for each height (fits is monotone in each side)
  const widest: number[] = [];
  let best = 0;
  for (let a = 1; a <= maxH; a++) {
    let bw = Math.min(maxW, a === 1 ? maxW : widest[a - 1]!);
    while (bw > 0 && !fits(a, bw)) bw--;
    widest[a] = bw;
    best = Math.max(best, a * bw);
  }
  if (best === 0) return { th: 0, tw: 0 };
  const cands: { th: number; tw: number; cost: number }[] = [];
  for (let a = 1; a <= maxH; a++) {
    for (let bw = widest[a]!; bw >= 1 && 2 * a * bw >= best; bw--) {
      cands.push({ th: a, tw: bw, cost: tileStarts(h, a, Math.floor(a * overlap)).length * a * tileStarts(w, bw, Math.floor(bw * overlap)).length * bw });
    }
  }
  const least = Math.min(...cands.map((t) => t.cost));
  let pick = { th: 0, tw: 0 };
  for (const t of cands) {
    if (t.cost > 1.1 * least) continue;
    const better = t.th * t.tw - pick.th * pick.tw || Math.min(t.th, t.tw) - Math.min(pick.th, pick.tw);
    if (better > 0) pick = t;
  }
  return { th: pick.th, tw: pick.tw };
}

/** A planned split of one decode or encode. */
export interface TilePlan {
  info: VaeTilingInfo;
  /** Tile start offsets (latent units) per axis; one entry of 0 when not tiled. */
  startsH: number[];
  startsW: number[];
}

export interface PlanInput {
  op: 'decode' | 'encode';
  mode: VaeTilingMode;
  options: VaeTilingOptions;
  config: AutoencoderKLConfig;
  /** Batch and spatial size in latent units. */
  batch: number;
  h: number;
  w: number;
  limitBytes: number;
}

/** Chooses how to run: whole, one image at a time, or tiled (with tiles that fit the limit). */
export function planTiling(p: PlanInput): TilePlan {
  const { config: c, batch: b, h, w, limitBytes: limit, mode, op } = p;
  const f = vaeScaleFactor(c);
  // peak bytes for a run on b images of th×tw latent units
  const peak = (bb: number, th: number, tw: number) => (op === 'decode' ? vaeDecodePeakBytes(c, bb, th, tw) : vaeEncodePeakBytes(c, bb, th * f, tw * f));
  const estimate = peak(b, h, w);
  const sampleSize = Array.isArray(c.sample_size) ? c.sample_size[0] : c.sample_size;
  const tileSample = p.options.tileSampleSize ?? sampleSize ?? 512;
  const overlap = p.options.overlap ?? 0.25;
  if (!(overlap >= 0 && overlap < 0.5)) throw new RangeError(`VAE tiling: overlap must be in [0, 0.5), got ${overlap}`);
  const tile0 = Math.max(1, Math.floor(tileSample / f));
  const base = { op, mode, estimateBytes: estimate, limitBytes: limit };
  const untiled = (strategy: 'whole' | 'batch-split', chunk: number): TilePlan => ({
    info: { ...base, strategy, chunk, tileLatent: null, grid: [1, 1], tileEstimateBytes: peak(chunk, h, w) },
    startsH: [0],
    startsW: [0],
  });
  const larger = h > tile0 || w > tile0;
  if (mode === 'off') return untiled('whole', b);
  if (!(mode === 'on' && larger)) {
    if (estimate <= limit) return untiled('whole', b);
    if (b > 1 && peak(1, h, w) <= limit) return untiled('batch-split', 1);
  }
  const { th, tw } = chooseTile(h, w, Math.min(tile0, h), Math.min(tile0, w), overlap, (a, bb) => peak(1, a, bb) <= limit);
  if (th === 0) throw new RangeError(`VAE ${op}: even a 1x1-latent tile needs ${peak(1, 1, 1)} bytes in one binding, over the limit of ${limit} bytes`);
  const chunk = peak(b, th, tw) <= limit ? b : 1;
  const startsH = tileStarts(h, th, Math.floor(th * overlap));
  const startsW = tileStarts(w, tw, Math.floor(tw * overlap));
  return {
    info: { ...base, strategy: 'tiled', chunk, tileLatent: [th, tw], grid: [startsH.length, startsW.length], tileEstimateBytes: peak(chunk, th, tw) },
    startsH,
    startsW,
  };
}

/**
 * Runs `fn` over overlapping tiles of `x` and blends the outputs. Tiles are `tile` latent units
 * (× `scaleIn` input pixels, × `scaleOut` output pixels) at the given starts; images go `chunk` at a
 * time. Differentiable (slices, products with constant weights, pads and sums), though nothing needs
 * gradients through it today.
 */
export function runTiles(
  x: Tensor,
  o: { startsH: readonly number[]; startsW: readonly number[]; tile: [number, number]; scaleIn: number; scaleOut: number; chunk: number },
  fn: (tile: Tensor) => Tensor,
): Tensor {
  const [B, , H, W] = x.shape as [number, number, number, number];
  const [th, tw] = o.tile;
  const hl = H / o.scaleIn, wl = W / o.scaleIn;
  if (!Number.isInteger(hl) || !Number.isInteger(wl)) throw new RangeError(`VAE tiling: input ${H}x${W} is not a multiple of the scale factor ${o.scaleIn}`);
  const wy = blendWeights(o.startsH, th, hl, o.scaleOut);
  const wx = blendWeights(o.startsW, tw, wl, o.scaleOut);
  const Ho = hl * o.scaleOut, Wo = wl * o.scaleOut;
  return tidy(() => {
    // one weight image per tile position, shared by every chunk of the batch
    const weights = o.startsH.map((_, i) =>
      o.startsW.map((_, j) => {
        const a = wy[i]!, bw = wx[j]!;
        const m = new Float32Array(a.length * bw.length);
        for (let y = 0; y < a.length; y++) for (let xx = 0; xx < bw.length; xx++) m[y * bw.length + xx] = a[y]! * bw[xx]!;
        return tensor(m, { shape: [1, 1, a.length, bw.length], backend: x.backend });
      }),
    );
    const parts: Tensor[] = [];
    for (let b0 = 0; b0 < B; b0 += o.chunk) {
      const cb = Math.min(o.chunk, B - b0);
      let acc: Tensor | null = null;
      for (let i = 0; i < o.startsH.length; i++) {
        for (let j = 0; j < o.startsW.length; j++) {
          const sh = o.startsH[i]!, sw = o.startsW[j]!;
          // a tidy per tile: its activations are freed before the next tile runs
          const next: Tensor = tidy(() => {
            let t = cb === B ? x : x.narrow(0, b0, cb);
            t = t.narrow(2, sh * o.scaleIn, Math.min(th, hl) * o.scaleIn).narrow(3, sw * o.scaleIn, Math.min(tw, wl) * o.scaleIn).contiguous();
            const y = fn(t).mul(weights[i]![j]!);
            const top = sh * o.scaleOut, left = sw * o.scaleOut;
            const placed = y.pad([left, Wo - left - y.shape[3]!, top, Ho - top - y.shape[2]!]);
            return acc ? acc.add(placed) : placed;
          });
          acc?.dispose();
          acc = next;
        }
      }
      parts.push(acc!);
    }
    return parts.length === 1 ? parts[0]! : cat(parts, 0);
  });
}

/** Runs `fn` on one image at a time and concatenates the results along the batch. */
export function runPerImage(x: Tensor, fn: (one: Tensor) => Tensor): Tensor {
  return tidy(() => {
    const parts: Tensor[] = [];
    for (let i = 0; i < x.shape[0]!; i++) {
      const y = tidy(() => fn(x.narrow(0, i, 1)));
      parts.push(y);
    }
    return cat(parts, 0);
  });
}
