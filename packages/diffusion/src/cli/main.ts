#!/usr/bin/env node
import { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { Progress, writePng, readPng } from '@foliar/report';
import { StableDiffusionPipeline } from '../pipelines/stable-diffusion.js';
import { createTinyPipeline } from '../pipelines/tiny.js';
import { schedulerFromConfig, SCHEDULERS } from '../schedulers/index.js';
import { tensorToImages } from '../images.js';
import { saveGrid } from './grid-file.js';
import { addTrainCommands } from './train-commands.js';
import { LoRA } from '../training/methods/lora.js';
import { generateImageSet } from '../pipelines/image-set.js';
import { int, posInt, num, backendChoice, reportError, catchStrayErrors } from './args.js';
import { createRandomPipeline, parseSize } from '../presets/index.js';

const PROG = 'foliar-diffuse';

/** --dtype: f16 / float16 or f32 / float32. */
function parseDtype(v: string): 'float16' | 'float32' {
  if (v === 'f16' || v === 'float16' || v === 'fp16') return 'float16';
  if (v === 'f32' || v === 'float32' || v === 'fp32') return 'float32';
  throw new Error(`--dtype: expected f16 or f32, got '${v}'`);
}

/** A pipeline folder (or 'tiny'), with the LoRA of `loraDir` merged in when given. */
async function loadPipeline(model: string, loraDir?: string, variant?: string, dtype?: 'float16' | 'float32'): Promise<StableDiffusionPipeline> {
  const pipe = model === 'tiny' ? createTinyPipeline() : await StableDiffusionPipeline.fromPretrained(model, { variant, ...(dtype ? { dtype } : {}) });
  // the tiny pipeline is built in f32: convert its models' parameters
  if (model === 'tiny' && dtype === 'float16') for (const m of [pipe.unet, pipe.vae, pipe.textEncoder]) m.to({ dtype });
  if (loraDir) {
    const lora = await LoRA.fromPretrained(pipe, loraDir);
    lora.merge();
    console.error(`LoRA ${loraDir} (rank ${lora.rank}, alpha ${lora.alpha}) merged`);
  }
  return pipe;
}

const program = new Command();
program.name(PROG).description('Stable Diffusion in TypeScript on WebGPU: generate images, create pipelines, fine-tune (DreamBooth, LoRA, textual inversion), train text-to-image models and VAEs.');
// errors are reported once, as one line, by reportError (inherited by the commands defined below)
program.exitOverride().configureOutput({ outputError: () => {} });
program.option('--backend <name>', 'webgpu, cpu or auto (default: FOLIAR_BACKEND, else webgpu when an adapter exists)');
program.option('--verbose', 'stack traces with errors (also FOLIAR_DEBUG=1)');
/** The backend of --backend or FOLIAR_BACKEND. */
const initBackend = () => ft.init({ backend: backendChoice(program.opts<{ backend?: string }>().backend) });

program
  .command('generate')
  .description('text to image with classifier-free guidance')
  .requiredOption('--model <dir>', "a diffusers StableDiffusionPipeline folder, or 'tiny' for a random tiny pipeline")
  .requiredOption('--prompt <text...>', 'one or more prompts')
  .option('--negative <text>', 'negative prompt', '')
  .option('--steps <n>', 'denoising steps', posInt, 30)
  .option('--guidance <g>', 'guidance scale (1 disables CFG)', num, 7.5)
  .option('--seed <n>', 'seed of the latent noise', int, 0)
  .option('--num-images <n>', 'images per prompt', posInt, 1)
  .option('--height <px>', 'image height (default: the model sample size)', posInt)
  .option('--width <px>', 'image width', posInt)
  .option('--scheduler <name>', `one of ${SCHEDULERS.join(', ')} (default: the model's)`)
  .option('--out <dir>', 'output folder', 'out/generate')
  .option('--lora <dir>', 'merge the LoRA saved in <dir> (pytorch_lora_weights.safetensors) first')
  .option('--variant <name>', "load diffusers' weight variant, e.g. fp16 (*.fp16.safetensors)")
  .option('--dtype <type>', 'weights in memory: f32 (default) or f16 (half the memory; activations stay f32)', parseDtype)
  .action(async (o: { model: string; lora?: string; variant?: string; dtype?: 'float16' | 'float32'; prompt: string[]; negative: string; steps: number; guidance: number; seed: number; numImages: number; height?: number; width?: number; scheduler?: string; out: string }) => {
    const backend = await initBackend();
    console.error(`device: ${backend.describe()}`);
    const pipe = await loadPipeline(o.model, o.lora, o.variant, o.dtype);
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
      ...(o.height !== undefined ? { height: o.height } : {}),
      ...(o.width !== undefined ? { width: o.width } : {}),
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
  .command('generate-set')
  .description(
    'a folder of --count images of one prompt, one seed per image (seed + i, listed in seeds.jsonl), written as they are made;\n' +
      're-running continues an interrupted set. E.g. the study\'s 400 synthetic multiple_diseases leaves for the classifier\n' +
      '(then: foliar-classify train --extra-train multiple_diseases=<out>).',
  )
  .requiredOption('--model <dir>', "a diffusers StableDiffusionPipeline folder (e.g. a DreamBooth run's final/), or 'tiny'")
  .requiredOption('--prompt <text>', 'the prompt, e.g. "a photo of a <diseaes-leaf> leaf"')
  .requiredOption('--count <n>', 'images in the set', posInt)
  .option('--lora <dir>', 'merge the LoRA saved in <dir> first')
  .option('--negative <text>', 'negative prompt')
  .option('--steps <n>', 'denoising steps', posInt, 30)
  .option('--guidance <g>', 'guidance scale (1 disables CFG)', num, 7.5)
  .option('--seed <n>', 'seed of image 0 (image i uses seed + i)', int, 0)
  .option('--batch-size <n>', 'images denoised together', posInt, 4)
  .option('--height <px>', 'image height (default: the model sample size)', posInt)
  .option('--width <px>', 'image width', posInt)
  .option('--scheduler <name>', `one of ${SCHEDULERS.join(', ')} (default: the model's)`)
  .option('--prefix <name>', 'file name prefix', 'img')
  .requiredOption('--out <dir>', 'output folder')
  .action(async (o: { model: string; lora?: string; prompt: string; count: number; negative?: string; steps: number; guidance: number; seed: number; batchSize: number; height?: number; width?: number; scheduler?: string; prefix: string; out: string }) => {
    const backend = await initBackend();
    console.error(`device: ${backend.describe()}`);
    const pipe = await loadPipeline(o.model, o.lora);
    if (o.scheduler) pipe.scheduler = schedulerFromConfig(pipe.scheduler.config, o.scheduler);
    const t0 = performance.now();
    const r = await generateImageSet(pipe, {
      prompt: o.prompt, count: o.count, seed: o.seed, batchSize: o.batchSize, numInferenceSteps: o.steps, guidanceScale: o.guidance, outDir: o.out, prefix: o.prefix,
      ...(o.negative !== undefined ? { negativePrompt: o.negative } : {}),
      ...(o.height !== undefined ? { height: o.height } : {}),
      ...(o.width !== undefined ? { width: o.width } : {}),
    });
    const preview = r.files.slice(0, 16).map((f) => readPng(f));
    saveGrid(join(o.out, 'preview.png'), preview, undefined, `${o.prompt} (first ${preview.length} of ${o.count})`);
    console.error(`${r.generated} new image(s), ${r.reused} already there, in ${o.out} (${((performance.now() - t0) / 1000).toFixed(1)} s); preview.png; peak device memory ${(ft.memory().peakBytes / 2 ** 20).toFixed(1)} MiB`);
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
    await initBackend();
    const pipe = createTinyPipeline({ seed: o.seed, scheduler: { _class_name: o.scheduler } });
    await pipe.save(o.out);
    console.error(`tiny pipeline written to ${o.out}`);
    pipe.dispose();
    ft.shutdown();
  });

program
  .command('create-random')
  .description("write a complete diffusers pipeline folder with random weights: SD 1.5's exact architecture (--preset sd15) or the tiny test pipeline")
  .argument('[dir]', 'output folder (or --out)')
  .option('--out <dir>', 'output folder')
  .option('--preset <name>', 'sd15, sd15-small (its layout at a fifth of the widths) or tiny', 'sd15')
  .option('--dtype <dtype>', 'stored weights: f32 or f16', 'f32')
  .option('--variant <name>', "diffusers' variant file naming, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors)")
  .option('--max-shard-size <size>', 'largest weight file (e.g. 2GB, 500MB; diffusers: 10GB); larger components are sharded with a *.safetensors.index.json', '10GB')
  .option('--merges <file>', "openai's CLIP merges (bpe_simple_vocab_16e6.txt.gz) for the sd15 tokenizer", join(process.env.FOLIAR_SHARED ?? join('..', 'shared'), 'golden', 'clip_tokenizer', 'bpe_simple_vocab_16e6.txt.gz'))
  .option('--seed <n>', 'initialisation seed', int, 0)
  .action(async (dirArg: string | undefined, o: { out?: string; preset: string; dtype: string; variant?: string; maxShardSize: string; merges: string; seed: number }) => {
    const dir = dirArg ?? o.out;
    if (!dir) throw new Error('create-random: give the output folder (create-random <dir> or --out <dir>)');
    if (o.preset !== 'sd15' && o.preset !== 'sd15-small' && o.preset !== 'tiny') throw new Error(`--preset must be sd15, sd15-small or tiny, got "${o.preset}"`);
    if (o.dtype !== 'f32' && o.dtype !== 'f16') throw new Error(`--dtype must be f32 or f16, got "${o.dtype}"`);
    const t0 = performance.now();
    // the weights are made on the CPU backend (no binding-size limit); no adapter is needed
    const r = await createRandomPipeline(dir, {
      preset: o.preset, dtype: o.dtype, variant: o.variant, maxShardSize: parseSize(o.maxShardSize), merges: o.merges, seed: o.seed,
      onProgress: (name, c) => console.error(`${name}: ${(c.parameters / 1e6).toFixed(1)}M parameters, ${(c.bytes / 2 ** 20).toFixed(1)} MiB in ${c.files.length} file${c.files.length > 1 ? 's' : ''} (${c.seconds.toFixed(1)} s)`),
    });
    const total = Object.values(r.components).reduce((a, c) => a + c.bytes, 0);
    console.error(`${o.preset} pipeline (${o.dtype}${o.variant ? `, variant ${o.variant}` : ''}) written to ${dir}: ${(total / 2 ** 30).toFixed(2)} GiB of weights in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  });

addTrainCommands(program);

catchStrayErrors(PROG);
program.parseAsync().catch((e: unknown) => {
  reportError(PROG, e);
  process.exit(process.exitCode ?? 1);
});
