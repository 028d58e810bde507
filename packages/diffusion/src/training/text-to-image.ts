import { join } from 'node:path';
import type { StableDiffusionPipeline } from '../pipelines/stable-diffusion.js';
import { DDPMScheduler } from '../schedulers/ddpm.js';
import type { FineTuneMethod } from './methods/method.js';
import type { RgbImage } from '@foliar/data';
import { runTrainLoop, type TrainLoopOptions } from '@foliar/nn';
import { checkTrainingImages } from './image-check.js';
import { validateGrid, type ValidationOptions } from './validation.js';
import { prepareImages, disposeImages, useGradientCheckpointing, denoisingLoss, epochIndex, TextConditioner, type DenoisingTrainOptions } from './denoising.js';
import type { TrainResult } from './dreambooth.js';

export interface TextToImageConfig extends Omit<TrainLoopOptions, 'learningRate'>, DenoisingTrainOptions, ValidationOptions {
  /** Images (paths or decoded) with their captions (and where each is listed, for error messages). */
  examples: { image: string | RgbImage; caption: string; listedAt?: string }[];
  resolution: number;
  method: FineTuneMethod;
  /** Default 1e-4 (diffusers' train_text_to_image.py and its LoRA variant). */
  learningRate?: number;
  /** Default: the first four distinct captions. */
  validationPrompts?: string[];
  /** Check every image file before training; all problems are one DatasetCheckError (default true). */
  checkImages?: boolean;
}

/**
 * Text-to-image fine-tuning (or training from scratch) as diffusers' train_text_to_image.py: each step
 * a batch of captioned images, loss = mse(UNet(noisy, t, text), target), optionally min-SNR weighted.
 * The fine-tuning method decides what trains (FullFineTune for the whole UNet, LoRA…).
 */
export async function trainTextToImage(pipe: StableDiffusionPipeline, cfg: TextToImageConfig): Promise<TrainResult> {
  if (!cfg.examples.length) throw new Error('text-to-image: no training examples');
  if (cfg.checkImages ?? true) {
    const images = cfg.examples.map((e) => (typeof e.image === 'string' ? { path: e.image, ...(e.listedAt ? { listedAt: e.listedAt } : {}) } : e.image));
    await checkTrainingImages('text-to-image examples', [{ part: 'example', images }]);
  }
  const seed = cfg.seed ?? 0;
  const bs = cfg.trainBatchSize ?? 1;
  const params = cfg.method.attach(pipe);
  const noiseSched = new DDPMScheduler(pipe.scheduler.config);
  const data = await prepareImages(pipe, cfg.examples.map((e) => e.image), cfg.resolution, cfg.cacheLatents ?? true);
  const text = new TextConditioner(pipe, (cfg.cacheTextEmbeddings ?? true) && !cfg.method.trainsTextEncoder);
  const probes = cfg.validationPrompts ?? [...new Set(cfg.examples.map((e) => e.caption))].slice(0, 4);
  const restoreCheckpointing = useGradientCheckpointing(pipe, cfg.gradientCheckpointing);
  try {
    const r = await runTrainLoop(
      { ...cfg, learningRate: cfg.learningRate ?? 1e-4 },
      {
        label: 'text-to-image',
        params,
        stateDict: () => cfg.method.stateDict(pipe),
        afterStep: () => cfg.method.afterStep?.(pipe),
        ...(cfg.validationSteps ? { validationSteps: cfg.validationSteps, validate: (step: number) => validateGrid(pipe, probes, step, cfg) } : {}),
        loss: (k, gen) => {
          const idx = Array.from({ length: bs }, (_, i) => epochIndex(data.length, k * bs + i, seed));
          const ctx = text.context(idx.map((i) => cfg.examples[i]!.caption));
          return denoisingLoss(pipe, noiseSched, idx.map((i) => data[i]!), ctx, gen, { numInstance: bs, snrGamma: cfg.snrGamma ?? null, offsetNoise: cfg.offsetNoise ?? 0 });
        },
      },
    );
    if (!r.interrupted) await cfg.method.save(pipe, join(cfg.outputDir, 'final'));
    return { steps: r.steps, losses: r.losses, outputDir: cfg.outputDir, interrupted: r.interrupted };
  } finally {
    restoreCheckpointing();
    disposeImages(data);
    text.dispose();
  }
}

