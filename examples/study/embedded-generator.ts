/**
 * The embedded default generator (issue 11): a VAE and base model for the procedural leaves, trained
 * once by `npm run pretrain-generator` (the study's own pretraining stages, on a pool rendered from a
 * generator seed the study never uses, never the rare class) and shipped in the repository in f16, as a
 * pretrained checkpoint is. A profile that allows it (`embeddedGenerator`) starts from it instead of
 * pretraining on the spot, when its manifest matches the profile's image size and latent layout; the
 * manifest names the command, profile, adapter and date that made it, so the script reproduces it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic, writeSafetensors } from '@foliar/tensor';
import { readSafetensors } from '@foliar/nn';
import type { StudyProfile } from './profiles.js';
import { hashOf, type StageResult } from './stages.js';
import type { TrainedStage } from './generator.js';

/** Where the shipped generator lives (`FOLIAR_EMBEDDED_GENERATOR` overrides, e.g. for tests). */
export function embeddedGeneratorDir(): string {
  return resolve(process.env.FOLIAR_EMBEDDED_GENERATOR ?? join(import.meta.dirname, '..', '..', 'models', 'procedural-generator'));
}

export interface GeneratorManifest {
  /** What made it: the command, the profile it trained at, where and when. */
  madeBy: { command: string; profile: string; adapter: string; date: string; seconds: { vae: number; base: number } };
  imageSize: number;
  latentChannels: number;
  vaeBlockOutChannels: number[];
  /** The stage cache keys of the run that made it, and its pool's identity. */
  poolKey: string;
  vaeKey: string;
  baseKey: string;
  vae: { config: StudyProfile['vae']; latentStd: number | null; finalLoss: number | null };
  base: { config: StudyProfile['base']; finalLoss: number | null };
  /** The decoder fine-tune after the base model, when there was one. */
  vaeDecoder?: StudyProfile['vaeDecoder'];
}

/** Whether a manifest fits the profile: same image size and VAE latent layout (what the per-seed stages depend on). */
export function manifestFits(m: GeneratorManifest, p: StudyProfile): boolean {
  return m.imageSize === p.imageSize && m.latentChannels === p.vae.latentChannels && m.vaeBlockOutChannels.length === p.vae.blockOutChannels.length;
}

/**
 * The shipped generator as the two pretraining stages' results (cached), or null when the profile does
 * not use it, none is shipped, or it was made for another image size or latent layout (`why` says which).
 */
export function readEmbeddedGenerator(p: StudyProfile, dir = embeddedGeneratorDir()): { vae: StageResult<TrainedStage>; base: StageResult<TrainedStage>; manifest: GeneratorManifest } | { why: string } {
  if (!p.embeddedGenerator) return { why: `the ${p.name} profile pretrains its own generator` };
  const file = join(dir, 'manifest.json');
  if (!existsSync(file)) return { why: `no embedded generator (${file})` };
  let m: GeneratorManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as GeneratorManifest;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!manifestFits(m, p)) return { why: `the embedded generator (${file}) was made for ${m.imageSize} px, ${m.latentChannels} latent channels; the ${p.name} profile needs ${p.imageSize} px, ${p.vae.latentChannels}` };
  for (const sub of ['vae', 'base']) if (!existsSync(join(dir, sub))) throw new Error(`${dir}: the manifest is there but ${sub}/ is missing`);
  // the shipped files' identity, so that replacing them reruns every stage downstream
  const key = (k: string) => hashOf({ embedded: k, manifest: m });
  const stage = (name: 'vae' | 'base', value: TrainedStage): StageResult<TrainedStage> => ({ key: key(name), dir: join(dir, name), value, seconds: 0, cached: true });
  return {
    manifest: m,
    vae: stage('vae', { model: join(dir, 'vae'), latentStd: m.vae.latentStd ?? undefined, steps: m.vae.config.steps, finalLoss: m.vae.finalLoss, peakBytes: 0 }),
    base: stage('base', { model: join(dir, 'base'), steps: m.base.config.steps, finalLoss: m.base.finalLoss, peakBytes: 0 }),
  };
}

/** Copies a diffusers folder, every float tensor of its safetensors stored as F16. */
async function copyAsF16(src: string, dst: string): Promise<void> {
  await mkdir(dst, { recursive: true });
  for (const e of await readdir(src, { withFileTypes: true })) {
    const from = join(src, e.name), to = join(dst, e.name);
    if (e.isDirectory()) await copyAsF16(from, to);
    else if (e.name.endsWith('.safetensors')) {
      const t = await readSafetensors(from);
      await writeSafetensors(to, [...t].map(([k, v]) => [k, { dtype: v.data instanceof Float32Array ? 'F16' : 'I64', shape: v.shape, data: v.data }] as const), { format: 'pt' });
    } else await cp(from, to);
  }
}

/** Writes the pretraining stages' results as the embedded generator (f16 weights and a manifest). */
export async function exportGenerator(o: { vae: StageResult<TrainedStage>; base: StageResult<TrainedStage>; poolKey: unknown; profile: StudyProfile; command: string; adapter: string; dir?: string }): Promise<string> {
  const dir = o.dir ?? embeddedGeneratorDir();
  const tmp = `${dir}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await copyAsF16(o.vae.value.model, join(tmp, 'vae'));
  await copyAsF16(o.base.value.model, join(tmp, 'base'));
  const m: GeneratorManifest = {
    madeBy: { command: o.command, profile: o.profile.name, adapter: o.adapter, date: new Date().toISOString(), seconds: { vae: Math.round(o.vae.seconds), base: Math.round(o.base.seconds) } },
    imageSize: o.profile.imageSize, latentChannels: o.profile.vae.latentChannels, vaeBlockOutChannels: o.profile.vae.blockOutChannels,
    poolKey: hashOf(o.poolKey), vaeKey: o.vae.key, baseKey: o.base.key,
    vae: { config: o.profile.vae, latentStd: o.vae.value.latentStd ?? null, finalLoss: o.vae.value.finalLoss },
    base: { config: o.profile.base, finalLoss: o.base.value.finalLoss },
    ...(o.profile.vaeDecoder ? { vaeDecoder: o.profile.vaeDecoder } : {}),
  };
  await writeFileAtomic(join(tmp, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
  // the folder is replaced whole: a reader never sees half of an old and half of a new generator
  const old = `${dir}.old-${process.pid}`;
  await mkdir(join(dir, '..'), { recursive: true });
  if (existsSync(dir)) await rename(dir, old);
  await rename(tmp, dir);
  await rm(old, { recursive: true, force: true });
  return dir;
}
