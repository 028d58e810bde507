/**
 * The generator's "pretraining": the VAE and the base text-to-image model play Stable Diffusion,
 * which cannot be downloaded here. Like Stable Diffusion they are trained once, on images that no
 * seed ever evaluates on, and never on the rare class; every seed's DreamBooth then starts from the
 * same base model, as the study's runs all started from the same SD checkpoint.
 *
 * Where the pretraining images come from:
 *   - embedded procedural leaves: freshly rendered leaves of the common classes from a generator seed
 *     that the study's data never uses (a disjoint pool, as LAION is disjoint from Plant Pathology);
 *   - photographs: the common-class images that lie in the TRAINING split of every seed, so no
 *     seed's validation or test image, and no rare-class image, is ever seen by the generator.
 */
import { LEAF_CLASSES, syntheticSource, type LabeledItem, type ProtocolSplit, type RgbImage } from '@foliar/classifier';
import type { StudyProfile } from './profiles.js';
import { imagesOf, type StudyData } from './data.js';
import { hashOf, type StageRunner, type StageResult } from './stages.js';
import { trainStudyBase, trainStudyVAE, type TrainedStage } from './generator.js';
import { readEmbeddedGenerator } from './embedded-generator.js';

/** Generator seed of the procedural pretraining pool: the study's data renders from seed 0. */
export const PRETRAIN_RENDER_SEED = 20_201_202;

export interface PretrainPool {
  /** Images with their class names (never the rare class). */
  items: { image: RgbImage; className: string }[];
  /** One line for the report: where the images come from and how many per class. */
  describe: string;
  /** Identity of the pool for the stage cache (ids, or the render seed and counts). */
  key: unknown;
}

/** Fresh procedural leaves of the common classes, `perClass` each, disjoint from the study's pool. */
export async function proceduralPretrainPool(p: StudyProfile, common: string[]): Promise<PretrainPool> {
  const counts = Object.fromEntries(LEAF_CLASSES.map((c) => [c, common.includes(c) ? p.pretrain.perClass : 0]));
  const src = syntheticSource(counts, p.imageSize, PRETRAIN_RENDER_SEED);
  const ds = src.open(src.set.items);
  const items: PretrainPool['items'] = [];
  for (let i = 0; i < ds.length; i++) {
    const s = await ds.get(i);
    items.push({ image: s.image, className: src.set.classNames[s.label]! });
  }
  return {
    items,
    describe: `${items.length} procedural leaves rendered from generator seed ${PRETRAIN_RENDER_SEED} (the study's images come from seed 0): ${common.map((c) => `${p.pretrain.perClass} ${c}`).join(', ')}`,
    key: { render: PRETRAIN_RENDER_SEED, counts, size: p.imageSize },
  };
}

/**
 * Common-class images in the training split of every seed (never validation or test of any seed),
 * at most `perClass` per class, in a fixed order.
 */
export async function photoPretrainPool(p: StudyProfile, data: StudyData, splits: ProtocolSplit[], common: string[]): Promise<PretrainPool> {
  const inEvery = (it: LabeledItem) => splits.every((s) => s.train.items.some((t) => t.id === it.id));
  const chosen: LabeledItem[] = [];
  const per: string[] = [];
  for (const c of common) {
    const label = data.set.classNames.indexOf(c);
    const trainIds = splits.map((s) => new Set(s.train.items.filter((t) => t.label === label).map((t) => t.id)));
    const first = splits[0]!.train.items.filter((t) => t.label === label);
    const both = first.filter((it) => trainIds.every((ids) => ids.has(it.id))).sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, p.pretrain.perClass);
    if (!both.every(inEvery)) throw new Error('pretraining pool: internal error, an image outside some seed\'s training split');
    chosen.push(...both);
    per.push(`${both.length} ${c}`);
  }
  if (!chosen.length) throw new Error(`pretraining pool: no common-class image lies in the training split of all ${splits.length} seeds`);
  const images = await imagesOf(data, chosen);
  return {
    items: chosen.map((it, i) => ({ image: images[i]!, className: data.set.classNames[it.label]! })),
    describe: `${chosen.length} photographs that lie in the training split of every seed (${splits.map((s) => s.seed).join(', ')}): ${per.join(', ')}`,
    key: { ids: chosen.map((it) => it.id) },
  };
}

/**
 * Caption list of the base model: each image under the class prompt and under its own class's
 * prompt, and every 4th also with an empty caption, since classifier-free guidance needs a trained
 * unconditional branch (about 1 in 9 examples).
 */
export function pretrainExamples(pool: PretrainPool, classPrompt: string, promptOf: (c: string) => string): { image: RgbImage; caption: string }[] {
  return pool.items.flatMap((it, i) => [
    { image: it.image, caption: classPrompt },
    { image: it.image, caption: promptOf(it.className) },
    ...(i % 4 === 0 ? [{ image: it.image, caption: '' }] : []),
  ]);
}

export interface PretrainOptions {
  runner: StageRunner;
  profile: StudyProfile;
  data: StudyData;
  splits: ProtocolSplit[];
  /** Photographs (pool from the splits) or the procedural leaves (a fresh pool). */
  photographs: boolean;
  common: string[];
  classPrompt: string;
  promptOf: (className: string) => string;
  signal?: AbortSignal;
  /** Called after each of the two stages (progress). */
  onStage?: () => void;
}

/** The pretraining pool of the options: photographs from the splits, or a fresh procedural pool. */
export async function pretrainPool(o: PretrainOptions): Promise<PretrainPool> {
  return o.photographs ? await photoPretrainPool(o.profile, o.data, o.splits, o.common) : await proceduralPretrainPool(o.profile, o.common);
}

/** The pool as a stage dependency (its identity enters the VAE's and the base model's cache keys). */
function poolStage(o: PretrainOptions, pool: PretrainPool): StageResult<unknown> {
  return { key: hashOf(pool.key), dir: o.runner.runDir, value: null, seconds: 0, cached: true };
}

/** The VAE stage alone (cached under the run folder), e.g. to compare VAE recipes on their gate before a base model is trained. */
export async function pretrainVAE(o: PretrainOptions, pool: PretrainPool): Promise<StageResult<TrainedStage>> {
  const P = o.profile;
  const images = pool.items.map((it) => it.image);
  return o.runner.run('vae', null, { vae: P.vae, size: P.imageSize }, [poolStage(o, pool)], (dir) => trainStudyVAE(P, dir, images, 0, o.signal));
}

/** The VAE, then the base model on its latents: two stages shared by all seeds (cached under the run folder). */
export async function pretrainGenerator(o: PretrainOptions): Promise<{ pool: PretrainPool; vae: StageResult<TrainedStage>; base: StageResult<TrainedStage> }> {
  const P = o.profile;
  const pool = await pretrainPool(o);
  if (!o.photographs) {
    const emb = readEmbeddedGenerator(P);
    if ('manifest' in emb) {
      const m = emb.manifest;
      pool.describe = `the embedded generator (${emb.base.dir.replace(/\/base$/, '')}): made by \`${m.madeBy.command}\` (profile ${m.madeBy.profile}: VAE ${m.vae.config.steps} steps of batch ${m.vae.config.batch}, base ${m.base.config.steps} of ${m.base.config.batch}) on ${m.madeBy.adapter}, ${m.madeBy.date.slice(0, 10)}, from ${pool.describe}`;
      console.log(`generator: ${pool.describe}`);
      o.onStage?.();
      o.onStage?.();
      return { pool, vae: emb.vae, base: emb.base };
    }
    if (P.embeddedGenerator) console.log(`generator: pretrained here (${emb.why})`);
  }
  console.log(`generator pretraining: ${pool.describe}`);
  const vae = await pretrainVAE(o, pool);
  o.onStage?.();
  const prompts = o.common.map(o.promptOf);
  const base = await o.runner.run('base', null, { base: P.base, vae: vae.key, classPrompt: o.classPrompt, prompts }, [poolStage(o, pool), vae], (dir) =>
    trainStudyBase(P, dir, vae.value.model, pretrainExamples(pool, o.classPrompt, o.promptOf), [o.classPrompt, ...prompts], 0, o.signal),
  );
  o.onStage?.();
  return { pool, vae, base };
}
