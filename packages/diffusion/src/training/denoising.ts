import * as ft from '@foliar/tensor';
import { tidy, noGrad, randn, type Tensor, type Generator } from '@foliar/tensor';
import type { StableDiffusionPipeline } from '../pipelines/stable-diffusion.js';
import type { AlphaScheduler } from '../schedulers/base.js';
import { permutation } from '@foliar/data';
import { priorPreservationLoss } from './loss.js';
import { loadImageSquare, resizeSquare, type RgbImage } from '@foliar/data';
import { imagesToTensor } from './images.js';

/** A training image, prepared once: its cached VAE latent distribution (the VAE is frozen) or its pixels. */
export interface PreparedImage {
  latentMean: Tensor | null;
  latentStd: Tensor | null;
  pixels: Tensor | null;
}

export async function toSquareImage(src: string | RgbImage, size: number): Promise<RgbImage> {
  return typeof src === 'string' ? loadImageSquare(src, size) : resizeSquare(src, size);
}

/** Images encoded per VAE call while preparing a training set. */
const PREPARE_BATCH = 32;

/**
 * Decodes, centre-crops and (with `cacheLatents`) VAE-encodes each image once. Images go through the
 * VAE in batches and each item keeps a view of its batch's tensors (one device buffer per batch, not
 * per image), and the device is awaited after every batch: thousands of encodes queued without a wait
 * crashed dawn.node on lavapipe (a segfault while preparing ~4,300 captioned images).
 */
export async function prepareImages(pipe: StableDiffusionPipeline, srcs: (string | RgbImage)[], resolution: number, cacheLatents: boolean): Promise<PreparedImage[]> {
  const out: PreparedImage[] = [];
  for (let b = 0; b < srcs.length; b += PREPARE_BATCH) {
    const chunk = srcs.slice(b, b + PREPARE_BATCH);
    const imgs: RgbImage[] = [];
    for (const s of chunk) imgs.push(await toSquareImage(s, resolution));
    const px = imagesToTensor(imgs, pipe.backend);
    if (cacheLatents) {
      const d = noGrad(() => pipe.vae.encode(px));
      for (let i = 0; i < chunk.length; i++) out.push({ latentMean: d.mean.narrow(0, i, 1), latentStd: d.std.narrow(0, i, 1), pixels: null });
      d.mean.dispose();
      d.std.dispose();
      d.logvar.dispose();
      px.dispose();
    } else {
      for (let i = 0; i < chunk.length; i++) out.push({ latentMean: null, latentStd: null, pixels: px.narrow(0, i, 1) });
      px.dispose();
    }
    await pipe.backend.sync();
  }
  return out;
}

/**
 * Turns gradient checkpointing of the UNet and the text encoder (it only matters when the text encoder
 * trains) on for a training run (when `on`); returns the function
 * that restores the previous setting.
 */
export function useGradientCheckpointing(pipe: StableDiffusionPipeline, on: boolean | undefined): () => void {
  const before = [pipe.unet.isGradientCheckpointing, pipe.textEncoder.gradientCheckpointing] as const;
  if (on) {
    pipe.unet.enableGradientCheckpointing(true);
    pipe.textEncoder.enableGradientCheckpointing(true);
  }
  return () => {
    pipe.unet.enableGradientCheckpointing(before[0]);
    pipe.textEncoder.enableGradientCheckpointing(before[1]);
  };
}

export function disposeImages(list: PreparedImage[]): void {
  for (const e of list) for (const t of [e.latentMean, e.latentStd, e.pixels]) t?.dispose();
}

/**
 * Timesteps are needed on the host (time embedding, scheduler coefficients): they are drawn from the
 * same Philox stream as the device would draw them, without a readback.
 */
export function hostRandint(gen: Generator, n: number, low: number, high: number): number[] {
  const base = gen.take(n);
  const block = new Uint32Array(4);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) ft.philox4x32((base + i / 4) >>> 0, Math.floor((base + i / 4) / 0x100000000) >>> 0, 0, 0, gen.seedLo, gen.seedHi, block);
    const u = (block[i % 4]! >>> 8) / 16777216;
    out.push(Math.min(high - 1, Math.floor(low + u * (high - low))));
  }
  return out;
}

/** Item k of an endless sequence of seeded per-epoch permutations of `n` items. */
export function epochIndex(n: number, k: number, seed: number): number {
  const epoch = Math.floor(k / n);
  return permutation(n, seed * 7919 + epoch)[k % n]!;
}

/** Options shared by the trainers of a denoising UNet (DreamBooth, text-to-image). */
export interface DenoisingTrainOptions {
  /** Images per step (DreamBooth: instance images; class images double it under prior preservation). */
  trainBatchSize?: number;
  /** Min-SNR-γ weighting (computed per half of the batch under prior preservation). */
  snrGamma?: number | null;
  /** Offset noise (Guttenberg 2023): noise += offset · N(0, 1) per channel. */
  offsetNoise?: number;
  /** Recompute UNet block activations in backward instead of keeping them (less memory, ~1 extra forward). */
  gradientCheckpointing?: boolean;
  /** Encode the (frozen) VAE latents and text embeddings once: most of the speed on a CPU-only machine. */
  cacheLatents?: boolean;
  cacheTextEmbeddings?: boolean;
}

export interface DenoisingLossOptions {
  /** Items [0, numInstance) are the instance half; the rest the prior (class) half (DreamBooth). */
  numInstance: number;
  priorLossWeight?: number;
  snrGamma?: number | null;
  /** Offset noise (Guttenberg 2023): noise += offset · N(0, 1) per channel. */
  offsetNoise?: number;
}

/**
 * One denoising-loss forward as diffusers' training scripts: latents z = (mean + std·ε)·scaling (or
 * encoded from pixels), noise, t ~ U[0, T), UNet(noisy, t, context) against the prediction type's
 * target, mse (+ λ·mse of the prior half), optionally min-SNR-γ weighted.
 */
export function denoisingLoss(pipe: StableDiffusionPipeline, sched: AlphaScheduler, batch: PreparedImage[], context: Tensor, gen: Generator, o: DenoisingLossOptions): { loss: Tensor; logs: Record<string, Tensor> } {
  const be = pipe.backend;
  const scale = pipe.vae.config.scaling_factor;
  return tidy(() => {
    const latents = noGrad(() =>
      tidy(() => {
        if (batch[0]!.latentMean) {
          const mean = ft.cat(batch.map((e) => e.latentMean!), 0);
          const std = ft.cat(batch.map((e) => e.latentStd!), 0);
          return mean.add(std.mul(randn([...mean.shape], { generator: gen, backend: be }))).mul(scale);
        }
        const d = pipe.vae.encode(ft.cat(batch.map((e) => e.pixels!), 0));
        const z = d.sample(gen).mul(scale);
        d.dispose();
        return z;
      }),
    );
    let noise = randn([...latents.shape], { generator: gen, backend: be });
    if (o.offsetNoise) noise = noise.add(randn([latents.shape[0]!, latents.shape[1]!, 1, 1], { generator: gen, backend: be }).mul(o.offsetNoise));
    const ts = hostRandint(gen, batch.length, 0, sched.config.num_train_timesteps);
    const noisy = sched.addNoise(latents, noise, ts);
    const pred = pipe.unet.forward(noisy, ts, context);
    const target = sched.target(latents, noise, ts);
    const r = priorPreservationLoss(pred, target, { numInstance: o.numInstance, priorLossWeight: o.priorLossWeight ?? 1, snrGamma: o.snrGamma ?? null, scheduler: sched, timesteps: ts });
    const logs: Record<string, Tensor> = r.priorLoss ? { instance_loss: r.instanceLoss, prior_loss: r.priorLoss } : {};
    return { loss: r.loss, logs };
  });
}

/**
 * Text conditioning for a batch of prompts: cached embeddings (computed once per distinct prompt) when
 * nothing in the text encoder trains, else a text-encoder forward with gradients.
 */
export class TextConditioner {
  private cache = new Map<string, Tensor>();
  constructor(
    private readonly pipe: StableDiffusionPipeline,
    private readonly useCache: boolean,
  ) {}
  context(prompts: string[]): Tensor {
    if (!this.useCache) return this.pipe.textEncoder.forward(this.pipe.tokenize(prompts)).lastHiddenState;
    const rows = prompts.map((p) => {
      let e = this.cache.get(p);
      if (!e) {
        e = ft.keep(this.pipe.encodeText([p]));
        this.cache.set(p, e);
      }
      return e;
    });
    return ft.cat(rows, 0);
  }
  dispose(): void {
    for (const t of this.cache.values()) t.dispose();
    this.cache.clear();
  }
}
