import { join } from 'node:path';
import { loadSafetensorsInto, saveSafetensors, type Module } from '@foliar/nn';
import { writeFileAtomic } from '@foliar/tensor';
import { UNet2DConditionModel } from '../models/unet/unet-2d-condition.js';
import { AutoencoderKL } from '../models/vae/autoencoder-kl.js';
import { CLIPTextModel } from '../models/clip/clip-text-model.js';
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

export async function loadUNet(dir: string): Promise<UNet2DConditionModel> {
  const cfg = await readJson(join(dir, 'config.json'));
  const m = new UNet2DConditionModel(cfg);
  await loadSafetensorsInto(m, await weightFiles(dir));
  return m;
}

export async function loadVAE(dir: string): Promise<AutoencoderKL> {
  const cfg = await readJson(join(dir, 'config.json'));
  const m = new AutoencoderKL(cfg);
  await loadSafetensorsInto(m, await weightFiles(dir), { remap: vaeKeyRemap, allowReshape: attnReshape });
  return m;
}

export async function loadTextEncoder(dir: string): Promise<CLIPTextModel> {
  const cfg = await readJson(join(dir, 'config.json'));
  const m = new CLIPTextModel(cfg);
  await loadSafetensorsInto(m, await weightFiles(dir), { remap: textEncoderKeyRemap });
  return m;
}

/** Writes `<dir>/config.json` and the weights as diffusers does, so diffusers reloads them. */
export async function saveModel(m: Module & { config: object }, dir: string, kind: 'unet' | 'vae' | 'text_encoder', extra: Record<string, unknown> = {}): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  const cls = kind === 'unet' ? 'UNet2DConditionModel' : kind === 'vae' ? 'AutoencoderKL' : 'CLIPTextModel';
  const config =
    kind === 'text_encoder'
      ? { architectures: ['CLIPTextModel'], model_type: 'clip_text_model', ...m.config, ...extra }
      : { _class_name: cls, _diffusers_version: '0.30.0', ...m.config, ...extra };
  await writeFileAtomic(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const file = kind === 'text_encoder' ? 'model.safetensors' : 'diffusion_pytorch_model.safetensors';
  await saveSafetensors(m, join(dir, file), { metadata: { format: 'pt' } });
}
