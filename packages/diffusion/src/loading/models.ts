import { joinPath as join, mkdirp, writeFileAtomic } from '#platform';
import { loadSafetensorsInto, saveSafetensors, withParameterDtype, type Module } from '@foliar/nn';
import { UNet2DConditionModel } from '../models/unet/unet-2d-condition.js';
import { resolveUNetConfig, UNET_REQUIRED, type UNet2DConditionConfig } from '../models/unet/config.js';
import { AutoencoderKL, resolveVAEConfig, VAE_REQUIRED, type AutoencoderKLConfig } from '../models/vae/autoencoder-kl.js';
import { CLIPTextModel, resolveCLIPTextConfig, CLIP_TEXT_REQUIRED, type CLIPTextConfig } from '../models/clip/clip-text-model.js';
import { readJson, weightFiles } from './files.js';

/** VAE checkpoints in the wild use the legacy attention names; map them to diffusers' current ones. */
export function vaeKeyRemap(key: string): string {
  return key
    .replace(/\.query\.(weight|bias)$/, '.to_q.$1')
    .replace(/\.key\.(weight|bias)$/, '.to_k.$1')
    .replace(/\.value\.(weight|bias)$/, '.to_v.$1')
    .replace(/\.proj_attn\.(weight|bias)$/, '.to_out.0.$1');
}

/** Text encoders come with or without the `text_model.` prefix, sometimes with int64 position_ids. */
export function textEncoderKeyRemap(key: string): string | null {
  if (key.endsWith('position_ids')) return null;
  return key.startsWith('text_model.') ? key : `text_model.${key}`;
}

const attnReshape = (key: string, file: number[], shape: number[]) =>
  /\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(key) && file.length === 4 && shape.length === 2;

/** `<dir>/config.json`, validated (required fields, types, ranges) before any module is built; errors name the file. */
async function readModelConfig<C>(dir: string, resolve: (raw: unknown, source: string, required: readonly string[]) => C, required: readonly string[]): Promise<C> {
  const path = join(dir, 'config.json');
  return resolve(await readJson<unknown>(path), path, required);
}

/** A UNet folder's config.json, validated; errors name the file and the field. */
export const readUNetConfig = (dir: string): Promise<UNet2DConditionConfig> => readModelConfig(dir, resolveUNetConfig, UNET_REQUIRED);
/** A VAE folder's config.json, validated; errors name the file and the field. */
export const readVAEConfig = (dir: string): Promise<AutoencoderKLConfig> => readModelConfig(dir, resolveVAEConfig, VAE_REQUIRED);
/** A text encoder folder's config.json, validated; errors name the file and the field. */
export const readTextEncoderConfig = (dir: string): Promise<CLIPTextConfig> => readModelConfig(dir, resolveCLIPTextConfig, CLIP_TEXT_REQUIRED);

/**
 * How a model folder is loaded. `variant`: diffusers' weight variant, e.g. 'fp16' (loading/files.ts
 * weightFiles: which files are read). `dtype`: the parameters' dtype in memory, whatever the files
 * hold: 'float32' (default; F16/BF16 files are upcast) or 'float16' (issue 16: half the memory; the
 * model is built with f16 parameters one tensor at a time, F16 files are uploaded as stored, BF16/F32
 * files converted tensor by tensor; activations stay f32). A string is the variant (older callers).
 */
export interface LoadModelOptions {
  variant?: string;
  dtype?: 'float32' | 'float16';
}

function loadOptions(o: string | LoadModelOptions | undefined): LoadModelOptions {
  return typeof o === 'string' ? { variant: o } : (o ?? {});
}

function build<M>(o: LoadModelOptions, make: () => M): M {
  return o.dtype === 'float16' ? withParameterDtype('float16', make) : make();
}

/** The UNet of a diffusers folder (see LoadModelOptions). */
export async function loadUNet(dir: string, opts?: string | LoadModelOptions): Promise<UNet2DConditionModel> {
  const o = loadOptions(opts);
  const config = await readUNetConfig(dir);
  const files = await weightFiles(dir, o.variant); // a folder without weights fails before a model is built
  const m = build(o, () => new UNet2DConditionModel({ ...config }));
  await loadSafetensorsInto(m, files);
  return m;
}

/** The VAE of a diffusers folder (see LoadModelOptions). */
export async function loadVAE(dir: string, opts?: string | LoadModelOptions): Promise<AutoencoderKL> {
  const o = loadOptions(opts);
  const config = await readVAEConfig(dir);
  const files = await weightFiles(dir, o.variant);
  const m = build(o, () => new AutoencoderKL({ ...config }));
  await loadSafetensorsInto(m, files, { remap: vaeKeyRemap, allowReshape: attnReshape });
  return m;
}

/** The CLIP text encoder of a transformers folder (see LoadModelOptions). */
export async function loadTextEncoder(dir: string, opts?: string | LoadModelOptions): Promise<CLIPTextModel> {
  const o = loadOptions(opts);
  const config = await readTextEncoderConfig(dir);
  const files = await weightFiles(dir, o.variant);
  const m = build(o, () => new CLIPTextModel({ ...config }));
  await loadSafetensorsInto(m, files, { remap: textEncoderKeyRemap });
  return m;
}

/** Writes `<dir>/config.json` and the weights as diffusers does, so diffusers reloads them. */
export async function saveModel(m: Module & { config: object }, dir: string, kind: 'unet' | 'vae' | 'text_encoder', extra: Record<string, unknown> = {}): Promise<void> {
  await mkdirp(dir);
  const cls = kind === 'unet' ? 'UNet2DConditionModel' : kind === 'vae' ? 'AutoencoderKL' : 'CLIPTextModel';
  const config =
    kind === 'text_encoder'
      ? { architectures: ['CLIPTextModel'], model_type: 'clip_text_model', ...m.config, ...extra }
      : { _class_name: cls, _diffusers_version: '0.30.0', ...m.config, ...extra };
  await writeFileAtomic(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const file = kind === 'text_encoder' ? 'model.safetensors' : 'diffusion_pytorch_model.safetensors';
  await saveSafetensors(m, join(dir, file), { metadata: { format: 'pt' } });
}
