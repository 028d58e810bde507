import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { tidy, noGrad, type Tensor, type Generator } from '@foliar/tensor';
import { writePng, imageGrid } from '@foliar/report';
import type { AutoencoderKL } from '../models/vae/autoencoder-kl.js';
import { saveModel } from '../loading/models.js';
import { tensorToImages } from '../images.js';
import { hashStream, type RgbImage } from '@foliar/data';
import { imagesToTensor } from './images.js';
import { runTrainLoop, type TrainLoopOptions } from '@foliar/nn';
import { checkTrainingImages } from './image-check.js';
import { toSquareImage, epochIndex } from './denoising.js';
import type { TrainResult } from './dreambooth.js';

export interface VAELossOptions {
  /** Pixel reconstruction term: 'l1' (default, as the LDM autoencoders) or 'mse'. */
  reconstruction?: 'l1' | 'mse';
  /** β of the KL term (default 1e-6, the LDM KL-f8 weight). */
  klWeight?: number;
  /**
   * Weight of an image-gradient term, mean |∇recon − ∇x| over horizontal and vertical neighbour
   * differences (default 0). A lesion of a few pixels is a tiny share of the pixel loss but most of
   * the gradient-domain error, so this term keeps small spots that plain L1 blurs away.
   */
  gradientWeight?: number;
  /**
   * Weight of a low-pass term, the mean |pool(recon) − pool(x)| of 2×2 and 4×4 block averages
   * (default 0). Plain L1 is median-seeking: where the decoder is unsure of a small lesion's exact
   * pixels, the median is the leaf's green and the lesion vanishes. A block average must keep the
   * lesion's share of colour, so this term keeps the lesion's presence and hue (what a classifier of
   * the reconstructions reads) while the decoder is still learning its sharp edges.
   */
  lowPassWeight?: number;
  /**
   * Log-variance the posterior starts at (sets the log-variance half of quant_conv's bias before
   * training; from-scratch VAEs only, undefined = the layer's own init, logvar ≈ 0). At logvar 0 the
   * decoder trains on latents with noise as large as their spread and learns to blur; a short training
   * never drives it down (SD's converged VAE has a posterior std far below its latents' spread).
   */
  initialLogvar?: number;
  /**
   * A perceptual (feature) term, the analogue of the LPIPS term SD's VAE trained with: a frozen
   * network's feature maps of the reconstruction are pulled towards those of the input (see
   * `perceptualDistance`). A pixel loss lets a 2–4 px lesion vanish for a tiny cost; a network trained
   * to tell the classes apart reads exactly those lesions, so their loss shows up in its features.
   */
  perceptual?: PerceptualTerm;
}

/** A frozen feature extractor and the weight of its distance (VAELossOptions.perceptual). */
export interface PerceptualTerm {
  weight: number;
  /**
   * Feature maps [N, C_l, H_l, W_l] of an image batch in the VAE's range [-1, 1] (the extractor maps it
   * to its own normalisation). Its parameters must not require gradients and it must run in eval mode:
   * gradients flow through it to the reconstruction, never into it (trainVAE's optimizer only holds
   * the VAE's parameters).
   */
  features: (x: Tensor) => Tensor[];
}

/**
 * LPIPS's distance without its learned channel weights (its "baseline" variant): each feature vector
 * (the channels at one position) scaled to unit length, then Σ_layers mean over batch and positions of
 * Σ_channels (â − b̂)², each layer in [0, 4]. Unit length puts every layer on the same scale whatever
 * its activation magnitude (a stem's and a deeper stage's differ by orders), so no per-layer weights
 * need tuning, and it compares what the features say (their direction) rather than their contrast.
 * `b` (the target) is read without gradients; gradients flow to `a` through the extractor.
 */
export function perceptualDistance(features: (x: Tensor) => Tensor[], a: Tensor, b: Tensor): Tensor {
  return tidy(() => {
    const fa = features(a);
    const fb = noGrad(() => features(b));
    if (fa.length !== fb.length || !fa.length) throw new Error(`perceptual term: the extractor gave ${fa.length} and ${fb.length} feature maps`);
    // eps inside the root: a smooth, finite gradient where a feature vector is all zero (ReLU)
    const unit = (f: Tensor) => f.mul(f.square().sum(1, true).add(1e-8).rsqrt());
    let d: Tensor | null = null;
    for (let l = 0; l < fa.length; l++) {
      if (fa[l]!.rank !== 4 || fa[l]!.shape.join() !== fb[l]!.shape.join()) throw new Error(`perceptual term: feature map ${l} must be [N, C, H, W] alike for both images, got [${fa[l]!.shape.join(', ')}] and [${fb[l]!.shape.join(', ')}]`);
      const dl = unit(fa[l]!).sub(unit(fb[l]!)).square().sum(1).mean();
      d = d ? d.add(dl) : dl;
    }
    return d!;
  });
}

/** Horizontal and vertical neighbour differences of an NCHW image. */
function neighbourDiffs(x: Tensor): [Tensor, Tensor] {
  const h = x.shape[2]!, w = x.shape[3]!;
  return [x.narrow(3, 1, w - 1).sub(x.narrow(3, 0, w - 1)), x.narrow(2, 1, h - 1).sub(x.narrow(2, 0, h - 1))];
}

/**
 * AutoencoderKL loss: rec(decode(z), x) + β·KL(q(z|x) ‖ N(0, I)) (+ the optional terms), z = mean + std·ε sampled from `gen`,
 * rec the mean absolute (or squared) error per pixel, KL summed over latent dims and averaged over the
 * batch (diffusers' DiagonalGaussianDistribution.kl().mean()).
 */
export function vaeLoss(vae: AutoencoderKL, x: Tensor, gen: Generator, o: VAELossOptions = {}): { loss: Tensor; logs: VAELossLogs } {
  return tidy(() => {
    const post = vae.encode(x);
    const z = post.sample(gen);
    const recon = vae.decode(z);
    const diff = recon.sub(x);
    const rec = (o.reconstruction ?? 'l1') === 'mse' ? diff.square().mean() : diff.abs().mean();
    const kl = post.kl().mean();
    let loss = rec.add(kl.mul(o.klWeight ?? 1e-6));
    const logs: VAELossLogs = { reconstruction: rec, kl };
    if (o.gradientWeight) {
      const [rx, ry] = neighbourDiffs(recon), [xx, xy] = neighbourDiffs(x);
      const g = rx.sub(xx).abs().mean().add(ry.sub(xy).abs().mean());
      loss = loss.add(g.mul(o.gradientWeight));
      logs.gradient = g;
    }
    if (o.lowPassWeight) {
      let lp: Tensor | null = null;
      for (const k of [2, 4]) {
        if (x.shape[2]! % k || x.shape[3]! % k) continue;
        const d = ft.avgPool2d(recon, { kernelSize: k, stride: k }).sub(ft.avgPool2d(x, { kernelSize: k, stride: k })).abs().mean();
        lp = lp ? lp.add(d) : d;
      }
      if (lp) {
        loss = loss.add(lp.mul(o.lowPassWeight));
        logs.lowPass = lp;
      }
    }
    if (o.perceptual && o.perceptual.weight) {
      const p = perceptualDistance(o.perceptual.features, recon, x);
      loss = loss.add(p.mul(o.perceptual.weight));
      logs.perceptual = p;
    }
    return { loss, logs };
  });
}

/** The loss's terms, unweighted (each logged by the train loop under its name). */
// a type alias, not an interface: the train loop takes it as Record<string, Tensor>
export type VAELossLogs = {
  reconstruction: Tensor;
  kl: Tensor;
  gradient?: Tensor;
  lowPass?: Tensor;
  perceptual?: Tensor;
};

export interface VAETrainConfig extends Omit<TrainLoopOptions, 'learningRate'>, VAELossOptions {
  /** Training images (paths or decoded), centre-cropped to `resolution`. */
  images: (string | RgbImage)[];
  resolution: number;
  /** Default 1e-4. */
  learningRate?: number;
  trainBatchSize?: number;
  /**
   * Train on random square crops of this side (a multiple of the downsampling) instead of whole
   * images: the VAE is convolutional, so it learns the same local code several times faster per step
   * (as SD's VAE trained on 256² crops and runs at 512²). Offsets are a pure function of (seed,
   * step, image), so a resumed run crops exactly as an uninterrupted one. Default: whole images.
   */
  cropSize?: number;
  /** Every N steps, a grid of originals over reconstructions (the first `validationImages` images, default 4). */
  validationSteps?: number;
  validationImages?: number;
  /** Check every image file before training; all problems are one DatasetCheckError (default true). */
  checkImages?: boolean;
  /**
   * false: only the decoder (and post_quant_conv) trains, as Stable Diffusion's ft-EMA / ft-MSE decoders
   * were fine-tuned: the encoder and so the latent space stay as they are, and a diffusion model trained
   * on those latents keeps working with the new decoder. Default true (every parameter trains).
   */
  trainEncoder?: boolean;
}

/**
 * Sets the posterior's starting log-variance: the bias of the log-variance half of the layer that
 * produces the moments (quant_conv, or the encoder's conv_out without it). A resumed run then loads
 * its checkpoint over it.
 */
export async function initPosteriorLogvar(vae: AutoencoderKL, logvar: number): Promise<void> {
  if (!Number.isFinite(logvar) || logvar < -30 || logvar > 20) throw new RangeError(`initialLogvar must be in [-30, 20] (the posterior's clamp), got ${logvar}`);
  const key = vae.quantConv ? 'quant_conv.bias' : 'encoder.conv_out.bias';
  const bias = vae.stateDict().get(key);
  if (!bias) throw new Error(`initialLogvar: the VAE has no ${key}`);
  const b = Float32Array.from(await bias.dataF32());
  const lat = vae.config.latent_channels;
  if (b.length !== 2 * lat) throw new Error(`initialLogvar: ${key} has ${b.length} values, expected 2 × ${lat} latent channels`);
  b.fill(logvar, lat);
  vae.loadStateDict({ [key]: { shape: [b.length], data: b } }, { strict: false, context: 'initialLogvar' });
}

/**
 * Trains an AutoencoderKL (from scratch or from weights) on images: every parameter trains, or the
 * decoder only (`trainEncoder: false`); the result is saved in diffusers' layout under outputDir/final
 * (config.json + diffusion_pytorch_model.safetensors).
 */
export async function trainVAE(vae: AutoencoderKL, cfg: VAETrainConfig): Promise<TrainResult> {
  if (!cfg.images.length) throw new Error('train-vae: no images');
  const down = 2 ** (vae.config.block_out_channels.length - 1);
  if (cfg.resolution % down) throw new RangeError(`train-vae: resolution ${cfg.resolution} is not a multiple of ${down} (the VAE's downsampling)`);
  if (cfg.checkImages ?? true) await checkTrainingImages('VAE training images', [{ part: 'image', images: cfg.images }]);
  const seed = cfg.seed ?? 0;
  const bs = cfg.trainBatchSize ?? 1;
  const crop = cfg.cropSize ?? cfg.resolution;
  if (!Number.isInteger(crop) || crop < down || crop > cfg.resolution || crop % down) {
    throw new RangeError(`train-vae: cropSize must be a multiple of ${down} (the VAE's downsampling) between ${down} and the resolution ${cfg.resolution}, got ${cfg.cropSize}`);
  }
  const be = vae.encoder.convIn.weight.backend;
  const pixels: Tensor[] = [];
  for (const s of cfg.images) pixels.push(imagesToTensor([await toSquareImage(s, cfg.resolution)], be));
  const trainEncoder = cfg.trainEncoder ?? true;
  if (cfg.initialLogvar !== undefined) {
    // it rewrites the encoder's output layer, which a decoder fine-tune must keep
    if (!trainEncoder) throw new Error('train-vae: initialLogvar changes the encoder; it cannot be used with trainEncoder: false');
    await initPosteriorLogvar(vae, cfg.initialLogvar);
  }
  vae.requiresGrad_(false);
  // a decoder fine-tune: no gradient reaches the encoder, so its forward records nothing to backpropagate
  const trained = [...vae.namedParameters()].filter(([k]) => trainEncoder || k.startsWith('decoder.') || k.startsWith('post_quant_conv.'));
  for (const [, p] of trained) p.requiresGrad_(true);
  const probe = pixels.slice(0, cfg.validationImages ?? 4);
  try {
    const r = await runTrainLoop(
      { ...cfg, learningRate: cfg.learningRate ?? 1e-4 },
      {
        label: 'vae',
        params: trained.map(([, p]) => p),
        stateDict: () => new Map(trained),
        ...(cfg.validationSteps ? { validationSteps: cfg.validationSteps, validate: (step: number) => reconstructionGrid(vae, probe, step, cfg.outputDir) } : {}),
        loss: (k, gen) => {
          const x = ft.cat(Array.from({ length: bs }, (_, i) => {
            const img = pixels[epochIndex(pixels.length, k * bs + i, seed)]!;
            if (crop === cfg.resolution) return img;
            const [oy, ox] = cropOffsets(seed, k * bs + i, cfg.resolution - crop);
            return img.narrow(2, oy, crop).narrow(3, ox, crop);
          }), 0);
          return vaeLoss(vae, x, gen, cfg);
        },
      },
    );
    if (!r.interrupted) await saveModel(vae, join(cfg.outputDir, 'final'), 'vae');
    return { steps: r.steps, losses: r.losses, outputDir: cfg.outputDir, interrupted: r.interrupted };
  } finally {
    for (const p of pixels) p.dispose();
  }
}

/** Crop offsets in [0, range] for example `k`: a hash of (seed, k), so resuming reproduces them. */
function cropOffsets(seed: number, k: number, range: number): [number, number] {
  const next = hashStream(seed, k);
  return [Math.floor(next() * (range + 1)), Math.floor(next() * (range + 1))];
}

async function reconstructionGrid(vae: AutoencoderKL, probe: Tensor[], step: number, out: string): Promise<void> {
  const x = ft.cat(probe, 0);
  const rec = noGrad(() => tidy(() => vae.decode(vae.encode(x).mean).clamp(-1, 1).mul(0.5).add(0.5)));
  const orig = tidy(() => x.mul(0.5).add(0.5));
  const imgs = [...(await tensorToImages(orig)), ...(await tensorToImages(rec))];
  for (const t of [x, rec, orig]) t.dispose();
  await mkdir(join(out, 'validation'), { recursive: true });
  writePng(join(out, 'validation', `step-${String(step).padStart(6, '0')}.png`), imageGrid(imgs, { cols: probe.length, title: `step ${step}: originals / reconstructions` }));
}
