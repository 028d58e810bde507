/**
 * The generator stages of the study: a VAE and a base text-to-image model trained from scratch on
 * one seed's training split without the rare class (they play Stable Diffusion's pretraining,
 * which cannot be downloaded here), DreamBooth on that split's rare-class images, and image sets
 * sampled from the results. Every function works in a stage folder and resumes from its
 * checkpoints when the folder holds an interrupted run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import {
  AutoencoderKL, StableDiffusionPipeline, createTinyPipeline, loadVAE, trainVAE, trainTextToImage, trainDreamBooth,
  generateImageSet, imagesToTensor, FullFineTune, LoRA, type FineTuneMethod, type RgbLike, type VAETrainConfig,
} from '@foliar/diffusion';
import type { StudyProfile } from './profiles.js';

export type MethodName = 'full' | 'lora';

export interface TrainedStage {
  /** Folder of the trained model (diffusers layout). */
  model: string;
  /** VAE only: the standard deviation of the latent means over the training images, and 1/std written as scaling_factor. */
  latentStd?: number;
  scalingFactor?: number;
  steps: number;
  finalLoss: number | null;
  peakBytes: number;
}

const loop = (dir: string, seed: number, signal: AbortSignal | undefined, steps: number) => ({
  outputDir: dir,
  seed,
  signal,
  checkpointingSteps: Math.max(25, Math.ceil(steps / 4)),
  checkpointsTotalLimit: 1,
  resumeFrom: existsSync(join(dir, 'checkpoints')) ? 'latest' : null,
});

function checkInterrupted(r: { interrupted?: boolean }, what: string): void {
  if (r.interrupted) throw new StudyInterrupted(what);
}

/** Thrown when Ctrl-C stopped a stage: its checkpoint is written, the same command continues. */
export class StudyInterrupted extends Error {
  constructor(what: string) {
    super(`${what} interrupted: a checkpoint was written; run the same command again to continue`);
  }
}

function vaeConfig(p: StudyProfile) {
  const n = p.vae.blockOutChannels.length;
  return {
    block_out_channels: p.vae.blockOutChannels, down_block_types: new Array(n).fill('DownEncoderBlock2D'), up_block_types: new Array(n).fill('UpDecoderBlock2D'),
    latent_channels: p.vae.latentChannels, layers_per_block: 1, norm_num_groups: normGroups(p), sample_size: p.imageSize,
  };
}

/** GroupNorm groups of the VAE: the profile's channels per group (default: one group per channel up to 16 groups, the first recipe). */
function normGroups(p: StudyProfile): number {
  const c0 = p.vae.blockOutChannels[0]!;
  if (p.vae.channelsPerGroup === undefined) return Math.min(16, c0);
  for (const c of p.vae.blockOutChannels) if (c % p.vae.channelsPerGroup) throw new RangeError(`vae.channelsPerGroup ${p.vae.channelsPerGroup} does not divide the VAE's width ${c}`);
  return c0 / p.vae.channelsPerGroup;
}

/** Latent side of the VAE for the profile. */
export function latentSize(p: StudyProfile): number {
  return p.imageSize / 2 ** (p.vae.blockOutChannels.length - 1);
}

/** `extra`: loss options that are not plain profile values (a perceptual term's feature net, examples/study/pretrain.ts). */
export async function trainStudyVAE(p: StudyProfile, dir: string, images: RgbLike[], seed: number, signal?: AbortSignal, extra: Pick<VAETrainConfig, 'perceptual'> = {}): Promise<TrainedStage> {
  ft.manualSeed(seed);
  ft.resetPeakMemory();
  const vae = new AutoencoderKL(vaeConfig(p));
  try {
    const r = await trainVAE(vae, {
      ...loop(dir, seed, signal, p.vae.steps), images, resolution: p.imageSize, maxTrainSteps: p.vae.steps, learningRate: p.vae.lr,
      trainBatchSize: p.vae.batch, cropSize: p.vae.cropSize, gradientWeight: p.vae.gradientWeight,
      lowPassWeight: p.vae.lowPassWeight, initialLogvar: p.vae.initialLogvar, ...extra, lrScheduler: 'cosine', lrWarmupSteps: Math.min(20, Math.floor(p.vae.steps / 10)), validationSteps: Math.ceil(p.vae.steps / 4),
    });
    checkInterrupted(r, 'VAE training');
    const { std, factor } = await setScalingFactor(join(dir, 'final'), images);
    return { model: join(dir, 'final'), steps: r.steps, finalLoss: r.losses.at(-1) ?? null, peakBytes: ft.memory().peakBytes, latentStd: std, scalingFactor: factor };
  } finally {
    vae.dispose();
  }
}

/**
 * The decoder fine-tune (profile `vaeDecoder`): the trained VAE's decoder trains on with the VAE's loss,
 * its encoder (so every latent) frozen; written as a VAE under <dir>/final.
 */
export async function trainStudyDecoder(
  p: StudyProfile, dir: string, vaeDir: string, images: RgbLike[], seed: number, signal?: AbortSignal, extra: Pick<VAETrainConfig, 'perceptual'> = {},
): Promise<TrainedStage> {
  const d = p.vaeDecoder;
  if (!d) throw new Error('trainStudyDecoder: the profile has no vaeDecoder settings');
  ft.manualSeed(seed);
  ft.resetPeakMemory();
  const vae = await loadVAE(vaeDir);
  try {
    const r = await trainVAE(vae, {
      ...loop(dir, seed, signal, d.steps), images, resolution: p.imageSize, maxTrainSteps: d.steps, learningRate: d.lr, trainBatchSize: d.batch,
      trainEncoder: false, cropSize: p.vae.cropSize, gradientWeight: p.vae.gradientWeight, lowPassWeight: p.vae.lowPassWeight, ...extra,
      lrScheduler: 'cosine', lrWarmupSteps: Math.min(20, Math.floor(d.steps / 10)), validationSteps: Math.ceil(d.steps / 4),
    });
    checkInterrupted(r, 'VAE decoder fine-tune');
    return { model: join(dir, 'final'), steps: r.steps, finalLoss: r.losses.at(-1) ?? null, peakBytes: ft.memory().peakBytes };
  } finally {
    vae.dispose();
  }
}

/** The pipeline in `baseDir` with the VAE in `vaeDir` in place of its own, saved whole to `outDir`. */
export async function pipelineWithVAE(baseDir: string, vaeDir: string, outDir: string): Promise<TrainedStage> {
  const base = await StableDiffusionPipeline.fromPretrained(baseDir);
  base.vae.dispose();
  const pipe = new StableDiffusionPipeline({ tokenizer: base.tokenizer, textEncoder: base.textEncoder, vae: await loadVAE(vaeDir), unet: base.unet, scheduler: base.scheduler });
  try {
    await pipe.save(outDir);
  } finally {
    pipe.dispose();
  }
  return { model: outDir, steps: 0, finalLoss: null, peakBytes: 0 };
}

/**
 * Measures the spread of the trained VAE's latents (means of q(z|x)) over up to 256 training images
 * and writes scaling_factor = 1/std into its config, as Stable Diffusion's 0.18215 was chosen: the
 * diffusion model then sees latents of unit variance, which its noise schedule assumes.
 */
export async function setScalingFactor(vaeDir: string, images: RgbLike[]): Promise<{ std: number; factor: number }> {
  const vae = await loadVAE(vaeDir);
  let sum = 0, sq = 0, n = 0;
  try {
    const list = images.slice(0, 256);
    for (let i = 0; i < list.length; i += 16) {
      const x = imagesToTensor(list.slice(i, i + 16));
      const mean = ft.noGrad(() => ft.tidy(() => vae.encode(x).mean));
      const d = await mean.data();
      x.dispose();
      mean.dispose();
      for (const v of d) {
        sum += v;
        sq += v * v;
      }
      n += d.length;
    }
  } finally {
    vae.dispose();
  }
  const mu = sum / n;
  const std = Math.sqrt(Math.max(sq / n - mu * mu, 1e-12));
  const factor = 1 / std;
  const cfgFile = join(vaeDir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  cfg.scaling_factor = factor;
  await ft.writeFileAtomic(cfgFile, JSON.stringify(cfg, null, 2) + '\n');
  return { std, factor };
}

export async function trainStudyBase(
  p: StudyProfile, dir: string, vaeDir: string, examples: { image: RgbLike; caption: string }[], validationPrompts: string[], seed: number, signal?: AbortSignal,
  /** Words the tokenizer keeps whole (examples/study/pretrain.ts promptWords); absent: byte-level. */
  words?: string[],
): Promise<TrainedStage> {
  ft.resetPeakMemory();
  const pipe = await studyBasePipeline(p, vaeDir, seed, words);
  try {
    const r = await trainTextToImage(pipe, {
      // the text encoder trains with the UNet: a random frozen one cannot carry class words (issue 11)
      ...loop(dir, seed, signal, p.base.steps), examples, resolution: p.imageSize, method: studyBaseMethod(), maxTrainSteps: p.base.steps,
      learningRate: p.base.lr, trainBatchSize: p.base.batch, lrScheduler: 'cosine', lrWarmupSteps: Math.min(50, Math.floor(p.base.steps / 10)), snrGamma: p.base.snrGamma === undefined ? 5 : p.base.snrGamma,
      validationSteps: p.base.steps, validationPrompts, validationInferenceSteps: p.gates.steps,
      ...(p.base.emaDecay ? { emaDecay: p.base.emaDecay, finalWeights: 'ema' as const } : {}),
    });
    checkInterrupted(r, 'base model training');
    return { model: join(dir, 'final'), steps: r.steps, finalLoss: r.losses.at(-1) ?? null, peakBytes: ft.memory().peakBytes };
  } finally {
    pipe.dispose();
  }
}

/** What the base model trains: the UNet and the text encoder together. */
export function studyBaseMethod(): FullFineTune {
  return new FullFineTune({ trainTextEncoder: true });
}

/**
 * The base model's pipeline before training (the profile's UNet over the trained VAE, a CLIP-style
 * text encoder with random weights): what trainStudyBase trains, and what a checkpoint of it is loaded
 * into (examples/pretrain-generator.ts --gates-checkpoint).
 */
export async function studyBasePipeline(p: StudyProfile, vaeDir: string, seed: number, words?: string[]): Promise<StableDiffusionPipeline> {
  const ch = p.base.blockOutChannels;
  const unet = {
    block_out_channels: ch, layers_per_block: 1, sample_size: latentSize(p), cross_attention_dim: 32, attention_head_dim: 8,
    in_channels: p.vae.latentChannels, out_channels: p.vae.latentChannels,
    norm_num_groups: Math.min(32, ch[0]!), down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'], up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'],
    // 4 heads of 8 over the text encoder's 32 dims, as its cross-attention has
    ...(p.base.textTime ? { addition_embed_type: 'text' as const, addition_embed_type_num_heads: 4 } : {}),
  };
  const zeroSnr = { rescale_betas_zero_snr: true, prediction_type: 'v_prediction' as const, timestep_spacing: 'trailing' as const };
  const tiny = createTinyPipeline({ seed, unet, vae: vaeConfig(p), textEncoder: { max_position_embeddings: 40 }, ...(words ? { words } : {}), ...(p.base.zeroSnr ? { scheduler: zeroSnr } : {}) });
  tiny.tokenizer.modelMaxLength = 40;
  tiny.vae.dispose();
  return new StableDiffusionPipeline({ tokenizer: tiny.tokenizer, textEncoder: tiny.textEncoder, vae: await loadVAE(vaeDir), unet: tiny.unet, scheduler: tiny.scheduler });
}

export interface DreamBoothStageOptions {
  instanceImages: RgbLike[];
  instancePrompt: string;
  /** null: no prior preservation. */
  classPrompt: string | null;
  method: MethodName;
  validationPrompts: string[];
}

export async function trainStudyDreamBooth(p: StudyProfile, dir: string, baseDir: string, o: DreamBoothStageOptions, seed: number, signal?: AbortSignal): Promise<TrainedStage> {
  const pipe = await StableDiffusionPipeline.fromPretrained(baseDir);
  const method: FineTuneMethod = o.method === 'lora' ? new LoRA({ rank: 8 }) : new FullFineTune({ trainTextEncoder: p.dreambooth.trainTextEncoder });
  ft.resetPeakMemory();
  try {
    const r = await trainDreamBooth(pipe, {
      ...loop(dir, seed, signal, p.dreambooth.steps), instanceImages: o.instanceImages, instancePrompt: o.instancePrompt,
      classPrompt: o.classPrompt, classImagesDir: o.classPrompt ? join(dir, 'class_images') : undefined,
      numClassImages: o.classPrompt ? p.dreambooth.classImages : undefined, classInferenceSteps: p.synthetic.steps,
      priorLossWeight: p.dreambooth.priorWeight, resolution: p.imageSize, method, maxTrainSteps: p.dreambooth.steps,
      learningRate: o.method === 'lora' ? p.dreambooth.lrLora : p.dreambooth.lrFull, trainBatchSize: p.dreambooth.batch,
      validationSteps: p.dreambooth.steps, validationPrompts: o.validationPrompts, validationInferenceSteps: p.gates.steps,
    });
    checkInterrupted(r, 'DreamBooth training');
    // a full pipeline folder for either method, so sampling code loads one thing
    if (method instanceof LoRA) {
      method.merge();
      await pipe.save(join(dir, 'final'));
    }
    return { model: join(dir, 'final'), steps: r.steps, finalLoss: r.losses.at(-1) ?? null, peakBytes: ft.memory().peakBytes };
  } finally {
    pipe.dispose();
  }
}

/** `count` images of `prompt` from the pipeline in `modelDir`, one seed each, into `outDir`. */
export async function sampleSet(p: StudyProfile, modelDir: string, prompt: string, count: number, outDir: string, seed: number): Promise<string[]> {
  const pipe = await StableDiffusionPipeline.fromPretrained(modelDir);
  try {
    const r = await generateImageSet(pipe, {
      prompt, count, seed, batchSize: p.synthetic.batch, numInferenceSteps: p.synthetic.steps, guidanceScale: p.synthetic.guidance,
      height: p.imageSize, width: p.imageSize, outDir,
    });
    return r.files;
  } finally {
    pipe.dispose();
  }
}
