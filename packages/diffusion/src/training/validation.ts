import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writePng, imageGrid } from '@foliar/report';
import type { Raster } from '@foliar/data';
import type { StableDiffusionPipeline } from '../pipelines/stable-diffusion.js';
import { tensorToImages } from '../images.js';

/** Sample grids while training (DreamBooth, text-to-image). */
export interface ValidationOptions {
  /** A grid every N steps (and before the first); 0 or absent: none. */
  validationSteps?: number;
  validationPrompts?: string[];
  /** Prompt i uses seed validationSeed + i (default 1234). */
  validationSeed?: number;
  validationInferenceSteps?: number;
  /** Called with each validation's images, e.g. to score them with a classifier. */
  onValidation?: (v: { step: number; prompts: string[]; images: Raster[] }) => void | Promise<void>;
}

/** A labelled grid of one image per prompt (seeds validationSeed + i) in outputDir/validation/. */
export async function validateGrid(
  pipe: StableDiffusionPipeline,
  prompts: string[],
  step: number,
  cfg: ValidationOptions & { resolution: number; outputDir: string },
): Promise<void> {
  const imgs: Raster[] = [];
  for (let i = 0; i < prompts.length; i++) {
    const r = await pipe.generate({ prompt: prompts[i]!, seed: (cfg.validationSeed ?? 1234) + i, numInferenceSteps: cfg.validationInferenceSteps ?? 20, height: cfg.resolution, width: cfg.resolution });
    imgs.push(...(await tensorToImages(r.images)));
    r.images.dispose();
    r.latents.dispose();
  }
  await mkdir(join(cfg.outputDir, 'validation'), { recursive: true });
  writePng(join(cfg.outputDir, 'validation', `step-${String(step).padStart(6, '0')}.png`), imageGrid(imgs, { cols: Math.min(5, imgs.length), labels: prompts, title: `step ${step}` }));
  await cfg.onValidation?.({ step, prompts, images: imgs });
}
