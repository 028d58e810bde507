import { existsSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cat, randn, Generator, type Tensor } from '@foliar/tensor';
import { cleanStaleTemps, filterJsonl } from '@foliar/nn';
import { writePng, Progress } from '@foliar/report';
import type { Raster } from '@foliar/data';
import type { StableDiffusionPipeline } from './stable-diffusion.js';
import { tensorToImages } from '../images.js';

export interface ImageSetOptions {
  prompt: string;
  negativePrompt?: string;
  /** Images in the set. */
  count: number;
  /** Image i is made from seed + i: the same image whatever the batch size, and reproducible alone. */
  seed?: number;
  /** Images denoised together (default 4). */
  batchSize?: number;
  numInferenceSteps?: number;
  guidanceScale?: number;
  height?: number;
  width?: number;
  outDir: string;
  /** File name prefix (default 'img'): files are `<prefix>-<i>-seed<s>.png`. */
  prefix?: string;
  quiet?: boolean;
  /** Called for each new image (not for ones already on disk). */
  onImage?: (i: number, image: Raster) => void | Promise<void>;
}

export interface ImageSetResult {
  /** All `count` files, in index order. */
  files: string[];
  generated: number;
  /** Files already present (a re-run continues an interrupted set). */
  reused: number;
}

/** The file name of image `i` of a set. */
export function imageSetFile(prefix: string, i: number, seed: number): string {
  return `${prefix}-${String(i).padStart(4, '0')}-seed${seed}.png`;
}

/**
 * A folder of `count` generated images of one prompt, e.g. the study's 400 synthetic
 * multiple_diseases leaves for the classifier. Each image has its own seed (written to seeds.jsonl),
 * files are written atomically, and images already on disk are kept, so an interrupted run
 * continues where it stopped. With a deterministic scheduler (DDIM, PNDM, DPM-Solver++, Euler) image i
 * is the one `pipe.generate({ prompt, seed: seed + i })` makes alone.
 */
export async function generateImageSet(pipe: StableDiffusionPipeline, o: ImageSetOptions): Promise<ImageSetResult> {
  if (!Number.isInteger(o.count) || o.count < 1) throw new RangeError(`generateImageSet: count must be a positive integer, got ${o.count}`);
  const bs = o.batchSize ?? 4;
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`generateImageSet: batchSize must be a positive integer, got ${bs}`);
  const seed0 = o.seed ?? 0;
  const prefix = o.prefix ?? 'img';
  await mkdir(o.outDir, { recursive: true });
  // what a killed run left: temp files of images half-written, seeds.jsonl lines torn or of images never written
  await cleanStaleTemps(o.outDir, { depth: 0 });
  const seeds = join(o.outDir, 'seeds.jsonl');
  await filterJsonl(seeds, (r) => typeof r.file === 'string' && existsSync(join(o.outDir, r.file)));
  const files = Array.from({ length: o.count }, (_, i) => join(o.outDir, imageSetFile(prefix, i, seed0 + i)));
  const todo = files.map((f, i) => (existsSync(f) ? -1 : i)).filter((i) => i >= 0);
  const sample = pipe.unet.config.sample_size ?? 64;
  const h = o.height ?? sample * pipe.vaeScaleFactor;
  const w = o.width ?? sample * pipe.vaeScaleFactor;
  const shape = [1, pipe.unet.config.in_channels, h / pipe.vaeScaleFactor, w / pipe.vaeScaleFactor];
  const bar = o.quiet || !todo.length ? null : new Progress({ total: todo.length, label: 'images', unit: 'img/s' });
  for (let k = 0; k < todo.length; k += bs) {
    const idx = todo.slice(k, k + bs);
    // per-image noise, so image i does not depend on which batch it fell in
    const noise: Tensor[] = idx.map((i) => randn(shape, { generator: new Generator(seed0 + i), backend: pipe.backend }));
    const latents = cat(noise, 0);
    for (const t of noise) t.dispose();
    const r = await pipe.generate({
      prompt: new Array<string>(idx.length).fill(o.prompt),
      ...(o.negativePrompt !== undefined ? { negativePrompt: o.negativePrompt } : {}),
      latents,
      // stochastic schedulers also draw step noise: seeded by the batch's first image
      seed: seed0 + idx[0]!,
      height: h,
      width: w,
      ...(o.numInferenceSteps !== undefined ? { numInferenceSteps: o.numInferenceSteps } : {}),
      ...(o.guidanceScale !== undefined ? { guidanceScale: o.guidanceScale } : {}),
    });
    latents.dispose();
    const imgs = await tensorToImages(r.images);
    r.images.dispose();
    r.latents.dispose();
    for (let j = 0; j < idx.length; j++) {
      const i = idx[j]!;
      // the line before the image: a kill between the two leaves a line whose image is missing, which
      // the next run drops (the other order would leave an image seeds.jsonl never mentions)
      await appendFile(seeds, JSON.stringify({ file: imageSetFile(prefix, i, seed0 + i), prompt: o.prompt, seed: seed0 + i, steps: o.numInferenceSteps ?? 50, guidance: o.guidanceScale ?? 7.5 }) + '\n');
      writePng(files[i]!, imgs[j]!);
      await o.onImage?.(i, imgs[j]!);
    }
    bar?.update(Math.min(todo.length, k + bs));
  }
  bar?.stop();
  return { files, generated: todo.length, reused: o.count - todo.length };
}
