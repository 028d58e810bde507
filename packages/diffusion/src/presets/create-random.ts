/**
 * A complete diffusers StableDiffusionPipeline folder with randomly initialised weights: SD 1.5's exact
 * architecture (`sd15`) or the tiny test pipeline (`tiny`). Every path a real checkpoint takes — its
 * configs, a CLIP tokenizer folder with the full 49,408-token vocabulary, safetensors weights in f32
 * or f16, diffusers' variant naming and sharded indexes — can then be exercised where no checkpoint
 * can be downloaded. Components are built and written one at a time (text encoder, VAE, UNet), on
 * the CPU backend by default, so host memory holds one component and one shard of its weights.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cpuBackend, getBackend, manualSeed, setBackend, writeFileAtomic, type Backend } from '@foliar/tensor';
import type { Module } from '@foliar/nn';
import { CLIPTokenizer } from '../tokenizer/index.js';
import { UNet2DConditionModel } from '../models/unet/unet-2d-condition.js';
import { AutoencoderKL } from '../models/vae/autoencoder-kl.js';
import { CLIPTextModel } from '../models/clip/clip-text-model.js';
import { createTinyPipeline } from '../pipelines/tiny.js';
import { modelIndex } from '../pipelines/stable-diffusion.js';
import { SD15_SCHEDULER_CONFIG, SD15_SMALL, SD15_TEXT_ENCODER_CONFIG, SD15_TOKENIZER, SD15_UNET_CONFIG, SD15_VAE_CONFIG } from './sd15.js';
import { writeShardedWeights } from './sharded-weights.js';

export type RandomPreset = 'sd15' | 'sd15-small' | 'tiny';

export interface CreateRandomOptions {
  preset: RandomPreset;
  /** Stored weight dtype (default f32). */
  dtype?: 'f32' | 'f16';
  /** diffusers' `variant` file naming, e.g. 'fp16' (`diffusion_pytorch_model.fp16.safetensors`). */
  variant?: string;
  /** Largest weight shard in bytes (default 10 GB, diffusers' default: SD 1.5 then has one file per component). */
  maxShardSize?: number;
  /** openai's `bpe_simple_vocab_16e6.txt.gz` (sd15 needs it: the tokenizer's 48,894 merges). */
  merges?: string;
  seed?: number;
  /** Where the random weights are made (default: the CPU backend, which has no binding-size limits). */
  backend?: Backend;
  /** Called as each component is done. */
  onProgress?: (component: string, detail: ComponentReport) => void;
}

export interface ComponentReport {
  parameters: number;
  files: string[];
  index: string | null;
  bytes: number;
  seconds: number;
}

export interface CreateRandomReport {
  dir: string;
  preset: RandomPreset;
  dtype: 'f32' | 'f16';
  components: Record<'text_encoder' | 'vae' | 'unet', ComponentReport>;
}


/** Writes the pipeline folder `dir`; returns what each component holds and where. */
export async function createRandomPipeline(dir: string, o: CreateRandomOptions): Promise<CreateRandomReport> {
  if (o.preset !== 'sd15' && o.preset !== 'sd15-small' && o.preset !== 'tiny') throw new Error(`create-random: unknown preset '${String(o.preset)}' (sd15, sd15-small or tiny)`);
  const dtype = o.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`create-random: dtype must be f32 or f16, got '${String(dtype)}'`);
  if (o.preset !== 'tiny' && !o.merges) throw new Error(`create-random: the ${o.preset} preset needs openai's CLIP merges file (bpe_simple_vocab_16e6.txt.gz) for its tokenizer`);
  // read before anything is written: a bad merges file leaves no half-made folder
  const tokenizer = o.preset !== 'tiny' ? await CLIPTokenizer.fromMergesGz(o.merges!, SD15_TOKENIZER) : null;
  const cfg = o.preset === 'sd15-small' ? { unet: SD15_SMALL.unet, vae: SD15_SMALL.vae, te: SD15_SMALL.textEncoder } : { unet: SD15_UNET_CONFIG, vae: SD15_VAE_CONFIG, te: SD15_TEXT_ENCODER_CONFIG };
  await mkdir(dir, { recursive: true });
  const prev = getBackend();
  setBackend(o.backend ?? cpuBackend());
  const components = {} as CreateRandomReport['components'];
  const weights = { dtype: dtype === 'f16' ? ('F16' as const) : ('F32' as const), maxShardSize: o.maxShardSize, variant: o.variant };
  try {
    manualSeed(o.seed ?? 0);
    const tiny = o.preset === 'tiny' ? createTinyPipeline({ seed: o.seed ?? 0 }) : null;
    const write = async (name: 'text_encoder' | 'vae' | 'unet', build: () => Module & { config: object }, config: (m: Module & { config: object }) => object) => {
      const t0 = performance.now();
      const m = build();
      try {
        const sub = join(dir, name);
        await mkdir(sub, { recursive: true });
        await writeFileAtomic(join(sub, 'config.json'), JSON.stringify(config(m), null, 2) + '\n');
        const sd = m.stateDict();
        const r = await writeShardedWeights(sub, name === 'text_encoder' ? 'model' : 'diffusion_pytorch_model', sd, weights);
        const parameters = m.parameters().reduce((a, p) => a + p.size, 0);
        components[name] = { parameters, files: r.files.map((f) => join(name, f)), index: r.index && join(name, r.index), bytes: r.totalSize, seconds: (performance.now() - t0) / 1000 };
        o.onProgress?.(name, components[name]);
      } finally {
        m.dispose();
      }
    };
    const diffusersConfig = (cls: string) => (m: Module & { config: object }) => ({ _class_name: cls, _diffusers_version: '0.30.0', ...m.config });
    if (tiny) {
      await write('text_encoder', () => tiny.textEncoder, (m) => ({ architectures: ['CLIPTextModel'], model_type: 'clip_text_model', ...m.config }));
      await write('vae', () => tiny.vae, diffusersConfig('AutoencoderKL'));
      await write('unet', () => tiny.unet, diffusersConfig('UNet2DConditionModel'));
      await tiny.tokenizer.save(join(dir, 'tokenizer'));
      await writeJson(join(dir, 'scheduler', 'scheduler_config.json'), { _class_name: tiny.scheduler.constructor.name, ...tiny.scheduler.config });
      await writeJson(join(dir, 'model_index.json'), modelIndex(tiny.scheduler.constructor.name));
    } else {
      // the published config files as they are; the model is built from the same values
      await write('text_encoder', () => new CLIPTextModel(plain(cfg.te)), () => cfg.te);
      await write('vae', () => new AutoencoderKL(plain(cfg.vae)), () => cfg.vae);
      await write('unet', () => new UNet2DConditionModel(plain(cfg.unet)), () => cfg.unet);
      await tokenizer!.save(join(dir, 'tokenizer'));
      await writeJson(join(dir, 'scheduler', 'scheduler_config.json'), SD15_SCHEDULER_CONFIG);
      await writeJson(join(dir, 'model_index.json'), modelIndex(SD15_SCHEDULER_CONFIG._class_name));
    }
  } finally {
    setBackend(prev);
  }
  return { dir, preset: o.preset, dtype, components };
}

/** A mutable copy of a frozen config, typed as the loose config object the model constructors take. */
function plain(config: object): Record<string, unknown> {
  return JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
}

async function writeJson(path: string, v: unknown): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFileAtomic(path, JSON.stringify(v, null, 2) + '\n');
}
