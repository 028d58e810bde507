#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { Progress, writePng } from '@foliar/nn';
import { StableDiffusionPipeline } from '../pipelines/stable-diffusion.js';
import { createTinyPipeline } from '../pipelines/tiny.js';
import { schedulerFromConfig, SCHEDULERS } from '../schedulers/index.js';
import { tensorToImages, saveGrid } from './images.js';
import { addTrainCommands } from './train-commands.js';

const int = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`'${v}' is not an integer`);
  return n;
};
const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`'${v}' is not a number`);
  return n;
};

async function loadPipeline(model: string): Promise<StableDiffusionPipeline> {
  if (model === 'tiny') return createTinyPipeline();
  return StableDiffusionPipeline.fromPretrained(model);
}

const program = new Command();
program.name('foliar-diffuse').description('Stable Diffusion in TypeScript on WebGPU: generate images, create pipelines, fine-tune (DreamBooth, LoRA, textual inversion), train text-to-image models and VAEs.');
program.option('--backend <name>', 'webgpu or cpu (default: webgpu when an adapter exists)');

program
  .command('generate')
  .description('text to image with classifier-free guidance')
  .requiredOption('--model <dir>', "a diffusers StableDiffusionPipeline folder, or 'tiny' for a random tiny pipeline")
  .requiredOption('--prompt <text...>', 'one or more prompts')
  .option('--negative <text>', 'negative prompt', '')
  .option('--steps <n>', 'denoising steps', int, 30)
  .option('--guidance <g>', 'guidance scale (1 disables CFG)', num, 7.5)
  .option('--seed <n>', 'seed of the latent noise', int, 0)
  .option('--num-images <n>', 'images per prompt', int, 1)
  .option('--height <px>', 'image height (default: the model sample size)', int)
  .option('--width <px>', 'image width', int)
  .option('--scheduler <name>', `one of ${SCHEDULERS.join(', ')} (default: the model's)`)
  .option('--out <dir>', 'output folder', 'out/generate')
  .action(async (o: { model: string; prompt: string[]; negative: string; steps: number; guidance: number; seed: number; numImages: number; height?: number; width?: number; scheduler?: string; out: string }) => {
    const backend = await ft.init({ backend: program.opts<{ backend?: 'webgpu' | 'cpu' }>().backend ?? 'auto' });
    console.error(`device: ${backend.describe()}`);
    const pipe = await loadPipeline(o.model);
    if (o.scheduler) pipe.scheduler = schedulerFromConfig(pipe.scheduler.config, o.scheduler);
    await mkdir(o.out, { recursive: true });
    const bar = new Progress({ total: o.steps, label: 'denoising', unit: 'steps/s' });
    const t0 = performance.now();
    const res = await pipe.generate({
      prompt: o.prompt,
      negativePrompt: o.negative,
      numInferenceSteps: o.steps,
      guidanceScale: o.guidance,
      seed: o.seed,
      numImagesPerPrompt: o.numImages,
      ...(o.height ? { height: o.height } : {}),
      ...(o.width ? { width: o.width } : {}),
      onStep: ({ step }) => bar.update(step + 1),
    });
    bar.stop();
    const imgs = await tensorToImages(res.images);
    const labels = o.prompt.flatMap((p) => new Array<string>(o.numImages).fill(p));
    imgs.forEach((img, i) => writePng(join(o.out, `${String(i).padStart(3, '0')}-seed${o.seed}.png`), img));
    saveGrid(join(o.out, 'grid.png'), imgs, labels, `${o.steps} steps, guidance ${o.guidance}, seed ${o.seed}`);
    console.error(`${imgs.length} image(s) in ${o.out} (${((performance.now() - t0) / 1000).toFixed(1)} s); peak device memory ${(ft.memory().peakBytes / 2 ** 20).toFixed(1)} MiB`);
    res.images.dispose();
    res.latents.dispose();
    pipe.dispose();
    ft.shutdown();
  });

program
  .command('create-tiny')
  .description('write a randomly initialised tiny pipeline folder (diffusers layout) for tests and demos')
  .requiredOption('--out <dir>', 'output folder')
  .option('--seed <n>', 'initialisation seed', int, 0)
  .option('--scheduler <name>', 'scheduler class', 'DDIMScheduler')
  .action(async (o: { out: string; seed: number; scheduler: string }) => {
    await ft.init({ backend: program.opts<{ backend?: 'webgpu' | 'cpu' }>().backend ?? 'auto' });
    const pipe = createTinyPipeline({ seed: o.seed, scheduler: { _class_name: o.scheduler } });
    await pipe.save(o.out);
    console.error(`tiny pipeline written to ${o.out}`);
    pipe.dispose();
    ft.shutdown();
  });

addTrainCommands(program);

program.parseAsync().catch((e: unknown) => {
  console.error(`foliar-diffuse: ${(e as Error).message}`);
  process.exit(1);
});
