import { Command, Option, InvalidArgumentError } from 'commander';
import { mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { StableDiffusionPipeline } from '../pipelines/stable-diffusion.js';
import { createTinyPipeline, type TinyPipelineOptions } from '../pipelines/tiny.js';
import { AutoencoderKL, resolveVAEConfig, VAE_REQUIRED } from '../models/vae/autoencoder-kl.js';
import { ModelConfigError } from '../models/config-schema.js';
import { loadVAE } from '../loading/models.js';
import { readJson } from '../loading/files.js';
import { FullFineTune, LoRA, TextualInversion, type FineTuneMethod } from '../training/methods/index.js';
import { trainDreamBooth, existingClassImages } from '../training/dreambooth.js';
import { checkTrainingImages, type ImageRef, type ImageGroup } from '../training/image-check.js';
import { trainTextToImage } from '../training/text-to-image.js';
import { trainVAE } from '../training/vae.js';
import { prepareOutputDir, type TrainLoopOptions } from '@foliar/nn';
import type { DenoisingTrainOptions } from '../training/denoising.js';
import type { ValidationOptions } from '../training/validation.js';
import { listImageFiles, readCaptionedFolder, readCaptionedCsv, readClassImageRefsFromCsv, readImageRefsCsv, type CaptionedImage } from '../training/datasets.js';
import { int, posInt, nonNegInt, num, backendChoice } from './args.js';

/** Options every training command shares (diffusers' script names, kebab-case). */
interface CommonOpts {
  out: string;
  resolution: number;
  trainBatchSize: number;
  maxTrainSteps: number;
  lr?: number;
  lrScheduler: TrainLoopOptions['lrScheduler'];
  lrWarmupSteps: number;
  gradientAccumulationSteps: number;
  maxGradNorm: number;
  adamBeta1: number;
  adamBeta2: number;
  adamWeightDecay: number;
  adamEpsilon: number;
  emaDecay?: number;
  emaFinal?: boolean;
  seed: number;
  checkpointingSteps: number;
  checkpointsTotalLimit: number;
  resume?: string;
  overwrite?: boolean;
  progress: boolean;
}

/** Flags of the denoising trainers (DreamBooth, text-to-image): loss weighting, caching, checkpointing, validation. */
interface DenoisingOpts {
  snrGamma?: number;
  offsetNoise: number;
  cacheLatents: boolean;
  gradientCheckpointing?: boolean;
  validationSteps: number;
  validationPrompt?: string[];
  validationInferenceSteps: number;
}

function addDenoisingOptions(cmd: Command, help: { snrHelp: string; validationHelp: string; promptHelp: string }): Command {
  return cmd
    .option('--snr-gamma <γ>', help.snrHelp, num)
    .option('--offset-noise <x>', 'offset noise strength', num, 0)
    .option('--no-cache-latents', 'encode the images with the VAE every step instead of once')
    .option('--gradient-checkpointing', 'recompute UNet activations in backward instead of keeping them (less memory, slower)')
    .option('--validation-steps <n>', help.validationHelp, nonNegInt, 0)
    .option('--validation-prompt <text...>', help.promptHelp)
    .option('--validation-inference-steps <n>', 'denoising steps of validation images', posInt, 20);
}

function denoisingOptions(o: CommonOpts & DenoisingOpts): DenoisingTrainOptions & ValidationOptions {
  return {
    trainBatchSize: o.trainBatchSize,
    snrGamma: o.snrGamma ?? null,
    offsetNoise: o.offsetNoise,
    cacheLatents: o.cacheLatents,
    gradientCheckpointing: o.gradientCheckpointing ?? false,
    validationSteps: o.validationSteps,
    ...(o.validationPrompt ? { validationPrompts: o.validationPrompt } : {}),
    validationInferenceSteps: o.validationInferenceSteps,
  };
}

function addCommonOptions(cmd: Command, d: { resolution: number; steps: number; lrHelp: string }): Command {
  return cmd
    .requiredOption('--out <dir>', 'output folder: train.jsonl, loss.png, checkpoints/, validation/, final/')
    .option('--resolution <px>', 'training image size (centre crop)', posInt, d.resolution)
    .option('--train-batch-size <n>', 'images per step', posInt, 1)
    .option('--max-train-steps <n>', 'optimizer steps', posInt, d.steps)
    .option('--lr <x>', d.lrHelp, num)
    .addOption(new Option('--lr-scheduler <name>', 'learning-rate schedule').choices(['constant', 'constant_with_warmup', 'cosine', 'linear']).default('constant'))
    .option('--lr-warmup-steps <n>', 'linear warm-up steps', nonNegInt, 0)
    .option('--gradient-accumulation-steps <n>', 'micro-batches per optimizer step', posInt, 1)
    .option('--max-grad-norm <x>', 'global gradient-norm clip (0: off)', num, 1)
    .option('--adam-beta1 <x>', 'AdamW β1', num, 0.9)
    .option('--adam-beta2 <x>', 'AdamW β2', num, 0.999)
    .option('--adam-weight-decay <x>', 'AdamW weight decay', num, 1e-2)
    .option('--adam-epsilon <x>', 'AdamW ε', num, 1e-8)
    .option('--ema-decay <x>', 'keep an EMA of the trained weights (e.g. 0.9999; decay warms up as (1+k)/(10+k)): final/ema_weights.safetensors', num)
    .option('--ema-final', 'save the EMA weights as the final model (diffusers --use_ema); needs --ema-decay')
    .option('--seed <n>', 'seed of noise, timesteps and data order', int, 0)
    .option('--checkpointing-steps <n>', 'write a resumable checkpoint every N steps (0: only on Ctrl-C)', nonNegInt, 500)
    .option('--checkpoints-total-limit <n>', 'checkpoints kept', posInt, 3)
    .option('--resume <ckpt>', "resume from 'latest' or a checkpoint folder (Ctrl-C writes one)")
    .option('--overwrite', '--out holds an earlier run: delete its checkpoints, final/, logs and validation images and start over')
    .option('--no-progress', 'no progress bar');
}

function loopOptions(o: CommonOpts, signal: AbortSignal): Omit<TrainLoopOptions, 'learningRate'> & { learningRate?: number } {
  return {
    outputDir: o.out,
    maxTrainSteps: o.maxTrainSteps,
    ...(o.lr !== undefined ? { learningRate: o.lr } : {}),
    lrScheduler: o.lrScheduler,
    lrWarmupSteps: o.lrWarmupSteps,
    gradientAccumulationSteps: o.gradientAccumulationSteps,
    maxGradNorm: o.maxGradNorm,
    adamBetas: [o.adamBeta1, o.adamBeta2],
    adamWeightDecay: o.adamWeightDecay,
    adamEpsilon: o.adamEpsilon,
    emaDecay: o.emaDecay ?? null,
    ...(o.emaFinal ? { finalWeights: 'ema' as const } : {}),
    seed: o.seed,
    checkpointingSteps: o.checkpointingSteps,
    checkpointsTotalLimit: o.checkpointsTotalLimit,
    resumeFrom: o.resume ?? null,
    overwrite: o.overwrite ?? false,
    signal,
    resumeHint: `resume with --resume latest --out ${o.out}`,
    progressBar: o.progress,
  };
}

/** Ctrl-C stops after the current step with a checkpoint; a second Ctrl-C exits at once. */
function interruptSignal(): AbortController {
  const c = new AbortController();
  process.once('SIGINT', () => {
    console.error('\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit now)');
    c.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  return c;
}

async function initBackend(program: Command): Promise<void> {
  const b = await ft.init({ backend: backendChoice(program.opts<{ backend?: string }>().backend) });
  console.error(`device: ${b.describe()}`);
}

/** Refuses (or, with --overwrite, clears) an --out that holds another run before anything loads or is written. */
async function claimOutputDir(o: CommonOpts): Promise<void> {
  await prepareOutputDir(o.out, { resume: !!o.resume, overwrite: o.overwrite ?? false });
}

async function loadPipeline(model: string, tinyConfig?: string): Promise<StableDiffusionPipeline> {
  if (model === 'tiny') return tinyConfig ? createTinyFromFile(tinyConfig) : createTinyPipeline();
  return StableDiffusionPipeline.fromPretrained(model);
}

/** --tiny-config: each section is checked as its model is built; errors name the file and the section's field. */
async function createTinyFromFile(path: string): Promise<StableDiffusionPipeline> {
  const raw = await readJson<unknown>(path);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ModelConfigError(path, null, `expected a JSON object {seed?, unet?, vae?, textEncoder?, scheduler?}, got ${JSON.stringify(raw)}`);
  try {
    return createTinyPipeline(raw as TinyPipelineOptions);
  } catch (e) {
    if (e instanceof ModelConfigError) throw new ModelConfigError(path, e.field, `${e.source}: ${e.message.slice(e.source.length + 2)}`);
    throw e;
  }
}

async function writeRunConfig(out: string, command: string, o: object): Promise<void> {
  await mkdir(out, { recursive: true });
  await ft.writeFileAtomic(join(out, 'config.json'), JSON.stringify({ command, ...o }, null, 2) + '\n');
}

function methodFrom(o: { method: string; rank: number; alpha?: number; token?: string; initializerToken?: string; trainTextEncoder?: boolean }): FineTuneMethod {
  if (o.method === 'full') return new FullFineTune({ trainTextEncoder: o.trainTextEncoder ?? false });
  if (o.method === 'lora') return new LoRA({ rank: o.rank, alpha: o.alpha ?? o.rank, textEncoder: o.trainTextEncoder ?? false });
  if (!o.token) throw new InvalidArgumentError('--method textual-inversion needs --token (e.g. "<diseased-leaf>")');
  return new TextualInversion({ token: o.token, ...(o.initializerToken ? { initializerToken: o.initializerToken } : {}) });
}

function report(kind: string, r: { steps: number; losses: number[]; outputDir: string; interrupted: boolean }): void {
  const tail = r.losses.slice(-10);
  const m = tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : NaN;
  if (r.interrupted) console.error(`${kind}: stopped at step ${r.steps}; resume with --resume latest --out ${r.outputDir}`);
  else console.error(`${kind}: ${r.steps} steps, mean loss of the last ${tail.length} ${m.toFixed(4)}; results in ${join(r.outputDir, 'final')}`);
}

export function addTrainCommands(program: Command): void {
  // ------------------------------------------------------------------ dreambooth
  const db = program
    .command('dreambooth')
    .description(
      'DreamBooth fine-tuning (train_dreambooth.py semantics) with prior preservation when --class-prompt is given.\n' +
        'Instance images: --instance-dir <folder>, or --instance-csv train.csv --instance-class multiple_diseases\n' +
        '(Plant Pathology 2020 layout: images at <csv folder>/images/<image_id>.jpg).',
    )
    .requiredOption('--model <dir>', "a diffusers StableDiffusionPipeline folder, or 'tiny'")
    .option('--tiny-config <json>', "with --model tiny: a JSON file of createTinyPipeline options")
    .option('--instance-dir <dir>', 'folder of instance images')
    .option('--instance-csv <csv>', 'one-hot label CSV (image_id, healthy, multiple_diseases, rust, scab)')
    .option('--instance-class <name>', 'with --instance-csv: the label column whose rows are the instance images')
    .option('--image-dir <dir>', "with --instance-csv: image folder relative to the CSV", 'images')
    .option('--image-ext <ext>', 'with --instance-csv: image file extension', '.jpg')
    .option('--image-column <name>', 'with --instance-csv: image id column', 'image_id')
    .requiredOption('--instance-prompt <text>', 'e.g. "a photo of a <diseased-leaf> leaf"')
    .option('--class-prompt <text>', 'e.g. "a photo of a leaf": turns on prior preservation')
    .option('--class-dir <dir>', 'class images (missing ones are generated by the base model and kept)', undefined)
    .option('--num-class-images <n>', 'class images for the prior', posInt, 100)
    .option('--class-inference-steps <n>', 'denoising steps when generating class images', posInt, 25)
    .option('--prior-loss-weight <λ>', 'weight of the prior-preservation loss', num, 1)
    .addOption(new Option('--method <name>', 'what trains').choices(['full', 'lora', 'textual-inversion']).default('lora'))
    .option('--rank <r>', 'LoRA rank', posInt, 4)
    .option('--alpha <α>', 'LoRA alpha (default: the rank)', num)
    .option('--token <text>', 'textual inversion: the new token, e.g. "<diseased-leaf>"')
    .option('--initializer-token <text>', 'textual inversion: a one-token word that initialises the new embedding')
    .option('--train-text-encoder', 'full / LoRA: train the text encoder too');
  addDenoisingOptions(db, { snrHelp: 'min-SNR-γ loss weighting (computed per half of the batch)', validationHelp: 'validation grid every N steps (instance prompt + drift probes)', promptHelp: 'validation prompts (default: the instance prompt and drift probes)' });
  addCommonOptions(db, { resolution: 512, steps: 400, lrHelp: 'learning rate (default: 5e-6 full, 1e-4 LoRA, 5e-4 textual inversion)' });
  db.action(async (o: CommonOpts & {
    model: string; tinyConfig?: string; instanceDir?: string; instanceCsv?: string; instanceClass?: string; imageDir: string; imageExt: string; imageColumn: string;
    instancePrompt: string; classPrompt?: string; classDir?: string; numClassImages: number; classInferenceSteps: number; priorLossWeight: number;
    method: string; rank: number; alpha?: number; token?: string; initializerToken?: string; trainTextEncoder?: boolean;
  } & DenoisingOpts) => {
    if (!o.instanceDir === !o.instanceCsv) throw new InvalidArgumentError('give exactly one of --instance-dir or --instance-csv');
    if (o.instanceCsv && !o.instanceClass) throw new InvalidArgumentError('--instance-csv needs --instance-class (e.g. multiple_diseases)');
    const method = methodFrom(o);
    const refs: ImageRef[] = o.instanceDir
      ? (await listImageFiles(o.instanceDir)).map((path) => ({ path }))
      : await readClassImageRefsFromCsv(o.instanceCsv!, o.instanceClass!, { imageColumn: o.imageColumn, imageDir: o.imageDir, imageExt: o.imageExt });
    // every image (and the class images a rerun reuses) before anything is written, loaded or generated
    const groups: ImageGroup[] = [{ part: 'instance image', images: refs }];
    if (o.classPrompt) groups.push({ part: 'class image', images: await existingClassImages(o.classDir ?? join(o.out, 'class_images'), o.numClassImages) });
    await checkTrainingImages('dreambooth images', groups);
    const images = refs.map((r) => r.path);
    await claimOutputDir(o);
    await initBackend(program);
    const pipe = await loadPipeline(o.model, o.tinyConfig);
    await writeRunConfig(o.out, 'dreambooth', { ...o, instanceImages: images.length });
    console.error(`${images.length} instance images; method ${method.name}${o.classPrompt ? `; prior preservation with ${o.numClassImages} class images` : ''}`);
    const stop = interruptSignal();
    const r = await trainDreamBooth(pipe, {
      ...loopOptions(o, stop.signal),
      instanceImages: images,
      instancePrompt: o.instancePrompt,
      classPrompt: o.classPrompt ?? null,
      ...(o.classDir ? { classImagesDir: o.classDir } : {}),
      numClassImages: o.numClassImages,
      classInferenceSteps: o.classInferenceSteps,
      priorLossWeight: o.priorLossWeight,
      resolution: o.resolution,
      method,
      ...denoisingOptions(o),
      checkImages: false, // checked above
    });
    report('dreambooth', r);
    method.dispose?.();
    pipe.dispose();
    ft.shutdown();
  });

  // ------------------------------------------------------------------ train-text-to-image
  const t2i = program
    .command('train-text-to-image')
    .description(
      'Text-to-image training on captioned images (train_text_to_image.py semantics), fine-tuning a pipeline or training a\n' +
        "tiny one from scratch (--model tiny [--tiny-config opts.json]). Data: --data <folder with metadata.jsonl\n" +
        '{"file_name", "text"} lines> (diffusers imagefolder), or --csv <file> with an image column and a caption\n' +
        'column, or a --caption-template over one-hot label columns (Plant Pathology 2020).',
    )
    .requiredOption('--model <dir>', "a diffusers StableDiffusionPipeline folder, or 'tiny' (random init)")
    .option('--tiny-config <json>', 'with --model tiny: a JSON file of createTinyPipeline options')
    .option('--data <dir>', 'imagefolder with metadata.jsonl')
    .option('--caption-key <name>', 'with --data: caption field of metadata.jsonl', 'text')
    .option('--csv <file>', 'CSV of images and captions')
    .option('--image-column <name>', 'with --csv: image path / id column', 'file_name')
    .option('--caption-column <name>', 'with --csv: caption column', 'text')
    .option('--image-dir <dir>', 'with --csv: image folder relative to the CSV', '.')
    .option('--image-ext <ext>', 'with --csv: appended to the image column', '')
    .option('--caption-template <text>', "with --csv: captions from one-hot label columns, e.g. 'a photo of a {label} leaf'")
    .addOption(new Option('--method <name>', 'what trains').choices(['full', 'lora']).default('full'))
    .option('--rank <r>', 'LoRA rank', posInt, 4)
    .option('--alpha <α>', 'LoRA alpha (default: the rank)', num);
  addDenoisingOptions(t2i, { snrHelp: 'min-SNR-γ loss weighting', validationHelp: 'validation grid every N steps', promptHelp: 'validation prompts (default: the first four captions)' });
  addCommonOptions(t2i, { resolution: 512, steps: 1000, lrHelp: 'learning rate (default 1e-4)' });
  t2i.action(async (o: CommonOpts & {
    model: string; tinyConfig?: string; data?: string; captionKey: string; csv?: string; imageColumn: string; captionColumn: string; imageDir: string; imageExt: string;
    captionTemplate?: string; method: string; rank: number; alpha?: number;
  } & DenoisingOpts) => {
    if (!o.data === !o.csv) throw new InvalidArgumentError('give exactly one of --data or --csv');
    const examples: CaptionedImage[] = o.data
      ? await readCaptionedFolder(o.data, o.captionKey, { checkFiles: false })
      : await readCaptionedCsv(o.csv!, { imageColumn: o.imageColumn, captionColumn: o.captionColumn, imageDir: o.imageDir, imageExt: o.imageExt, ...(o.captionTemplate ? { captionTemplate: o.captionTemplate } : {}) });
    const method = methodFrom(o);
    // every image (missing ones too) before anything is written or loaded
    await checkTrainingImages('train-text-to-image examples', [{ part: 'example', images: examples.map((e) => ({ path: e.image, ...(e.listedAt ? { listedAt: e.listedAt } : {}) })) }]);
    await claimOutputDir(o);
    await initBackend(program);
    const pipe = await loadPipeline(o.model, o.tinyConfig);
    await writeRunConfig(o.out, 'train-text-to-image', { ...o, examples: examples.length });
    console.error(`${examples.length} captioned images; method ${method.name}`);
    const stop = interruptSignal();
    const r = await trainTextToImage(pipe, {
      ...loopOptions(o, stop.signal),
      examples,
      resolution: o.resolution,
      method,
      ...denoisingOptions(o),
      checkImages: false, // checked above
    });
    report('train-text-to-image', r);
    method.dispose?.();
    pipe.dispose();
    ft.shutdown();
  });

  // ------------------------------------------------------------------ train-vae
  const vae = program
    .command('train-vae')
    .description(
      'AutoencoderKL training: reconstruction (L1 or MSE) + β·KL. From scratch (--model tiny, or --vae-config <config.json>)\n' +
        'or from weights (--model <vae folder | pipeline folder>). Data: --data <image folder> or --csv <file> --image-column <name>.\n' +
        'No perceptual or adversarial terms. The result is a diffusers VAE folder at <out>/final.',
    )
    .option('--model <dir>', "a VAE folder (config.json + weights), a pipeline folder (uses vae/), or 'tiny'", 'tiny')
    .option('--vae-config <json>', 'from scratch: an AutoencoderKL config.json (diffusers fields)')
    .option('--data <dir>', 'folder of training images')
    .option('--csv <file>', 'CSV listing the images')
    .option('--image-column <name>', 'with --csv: image path / id column', 'file_name')
    .option('--image-dir <dir>', 'with --csv: image folder relative to the CSV', '.')
    .option('--image-ext <ext>', 'with --csv: appended to the image column', '')
    .addOption(new Option('--reconstruction <loss>', 'pixel reconstruction loss').choices(['l1', 'mse']).default('l1'))
    .option('--kl-weight <β>', 'weight of the KL term', num, 1e-6)
    .option('--validation-steps <n>', 'originals / reconstructions grid every N steps', nonNegInt, 0);
  addCommonOptions(vae, { resolution: 256, steps: 1000, lrHelp: 'learning rate (default 1e-4)' });
  vae.action(async (o: CommonOpts & { model: string; vaeConfig?: string; data?: string; csv?: string; imageColumn: string; imageDir: string; imageExt: string; reconstruction: 'l1' | 'mse'; klWeight: number; validationSteps: number }) => {
    if (!o.data === !o.csv) throw new InvalidArgumentError('give exactly one of --data or --csv');
    const refs: ImageRef[] = o.data ? (await listImageFiles(o.data)).map((path) => ({ path })) : await readImageRefsCsv(o.csv!, { imageColumn: o.imageColumn, imageDir: o.imageDir, imageExt: o.imageExt });
    await checkTrainingImages('train-vae images', [{ part: 'image', images: refs }]);
    const images = refs.map((r) => r.path);
    await claimOutputDir(o);
    await initBackend(program);
    let model: AutoencoderKL;
    if (o.vaeConfig) model = new AutoencoderKL({ ...resolveVAEConfig(await readJson<unknown>(o.vaeConfig), o.vaeConfig, VAE_REQUIRED) });
    else if (o.model === 'tiny') {
      const tiny = createTinyPipeline();
      tiny.unet.dispose();
      tiny.textEncoder.dispose();
      model = tiny.vae;
    }
    else model = await loadVAE(existsSync(join(o.model, 'vae', 'config.json')) ? join(o.model, 'vae') : o.model);
    await writeRunConfig(o.out, 'train-vae', { ...o, images: images.length });
    console.error(`${images.length} images; AutoencoderKL with ${model.numParameters()} parameters`);
    const stop = interruptSignal();
    const r = await trainVAE(model, {
      ...loopOptions(o, stop.signal),
      images,
      resolution: o.resolution,
      trainBatchSize: o.trainBatchSize,
      reconstruction: o.reconstruction,
      klWeight: o.klWeight,
      validationSteps: o.validationSteps,
      checkImages: false, // checked above
    });
    report('train-vae', r);
    model.dispose();
    ft.shutdown();
  });
}
