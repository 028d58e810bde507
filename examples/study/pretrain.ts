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
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  LEAF_CLASSES, ResNet, RESNET_FEATURE_LAYERS, loadTrainedModel, resnetFeatures, resolveConfig, syntheticSource, train,
  type LabeledItem, type ProtocolSplit, type ResNetFeatureLayer, type RgbImage, type TrainConfig,
} from '@foliar/classifier';
import { DRIFT_PROBES, type PerceptualTerm } from '@foliar/diffusion';
import type { StudyProfile } from './profiles.js';
import { imagesOf, type StudyData } from './data.js';
import { hashOf, type StageRunner, type StageResult } from './stages.js';
import { trainStudyBase, trainStudyVAE, trainStudyDecoder, pipelineWithVAE, type TrainedStage } from './generator.js';
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
  /** How a classifier reads exactly this pool (the perceptual term's feature net trains on it). */
  classifierData: Partial<TrainConfig>;
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
    // the same renders: the classifier's synthetic source with the pool's seed, counts and size
    classifierData: { data: null, counts, syntheticSeed: PRETRAIN_RENDER_SEED },
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
    // the pool's own images only, every 10th for validation and the next for the (unused) test part
    classifierData: {
      data: data.classifierData, counts: data.poolCounts, syntheticSeed: 0,
      split: { train: chosen.filter((_, i) => i % 10 > 1).map((it) => it.id), val: chosen.filter((_, i) => i % 10 === 0).map((it) => it.id), test: chosen.filter((_, i) => i % 10 === 1).map((it) => it.id) },
    },
  };
}

/**
 * Caption list of the base model: each image under its own class's prompt, every `genericEvery`-th
 * (default 1: all) also under the class prompt, and every `emptyEvery`-th (default 4) also with an
 * empty caption, since classifier-free guidance needs a trained unconditional branch (about 1 in 9
 * examples with the defaults). Captions without the class word dilute what the prompt can teach.
 */
export function pretrainExamples(
  pool: PretrainPool, classPrompt: string, promptOf: (c: string) => string, o: { genericEvery?: number; emptyEvery?: number } = {},
): { image: RgbImage; caption: string }[] {
  const generic = o.genericEvery ?? 1, empty = o.emptyEvery ?? 4;
  for (const [k, v] of [['genericEvery', generic], ['emptyEvery', empty]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`base.${k} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return pool.items.flatMap((it, i) => [
    ...(i % generic === 0 ? [{ image: it.image, caption: classPrompt }] : []),
    { image: it.image, caption: promptOf(it.className) },
    ...(i % empty === 0 ? [{ image: it.image, caption: '' }] : []),
  ]);
}

/**
 * Words the base model's tokenizer keeps whole when the recipe asks for it (`base.wordTokens`): the
 * class prompt's, every class prompt's (the rare class's too: CLIP knows "multiple" and "diseases")
 * and the language-drift probes'. The DreamBooth identifier is not among them: it stays rare.
 */
export function promptWords(classPrompt: string, classPrompts: string[]): string[] {
  return [...new Set([classPrompt, ...classPrompts, ...DRIFT_PROBES].flatMap((p) => p.toLowerCase().split(/[^a-z0-9]+/)).filter((w) => w.length > 1))].sort();
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

/**
 * VAE recipe keys of the perceptual term (in a profile's `vae`, or set with pretrain-generator's --vae;
 * absent, a recipe and its cache key are what they were before the term existed): perceptualWeight > 0 turns it on;
 * perceptualLayers (default stem + layer1: the lesions are a 2–4 px colour scale, which the
 * stride-2 stem and the 1/4-resolution layer1 still resolve); perceptualClassifier overrides the pool
 * classifier's training settings (e.g. {"epochs": 3} for a CPU probe).
 */
export interface PerceptualRecipe {
  perceptualWeight?: number;
  perceptualLayers?: ResNetFeatureLayer[];
  perceptualClassifier?: Partial<TrainConfig>;
}
export const PERCEPTUAL_VAE_KEYS: readonly (keyof PerceptualRecipe)[] = ['perceptualWeight', 'perceptualLayers', 'perceptualClassifier'];

/** The perceptual keys of the profile's VAE recipe, checked (they arrive untyped from the command line). */
export function perceptualRecipe(P: StudyProfile): PerceptualRecipe | null {
  // typed in the profile, but --vae overrides arrive untyped from the command line: checked here
  const v: PerceptualRecipe = P.vae;
  if (v.perceptualWeight === undefined) {
    if (v.perceptualLayers !== undefined || v.perceptualClassifier !== undefined) throw new Error('vae.perceptualLayers / perceptualClassifier need vae.perceptualWeight');
    return null;
  }
  if (typeof v.perceptualWeight !== 'number' || !(v.perceptualWeight >= 0)) throw new RangeError(`vae.perceptualWeight must be a number ≥ 0, got ${JSON.stringify(v.perceptualWeight)}`);
  if (v.perceptualLayers !== undefined && (!Array.isArray(v.perceptualLayers) || !v.perceptualLayers.length || v.perceptualLayers.some((l) => !RESNET_FEATURE_LAYERS.includes(l)))) {
    throw new RangeError(`vae.perceptualLayers must be a non-empty list of ${RESNET_FEATURE_LAYERS.join(', ')}, got ${JSON.stringify(v.perceptualLayers)}`);
  }
  if (v.perceptualClassifier !== undefined && (typeof v.perceptualClassifier !== 'object' || v.perceptualClassifier === null || Array.isArray(v.perceptualClassifier))) {
    throw new RangeError(`vae.perceptualClassifier must be an object of classifier settings, got ${JSON.stringify(v.perceptualClassifier)}`);
  }
  return v.perceptualWeight > 0 ? v : null;
}

/**
 * The decoder fine-tune's perceptual term: the VAE's, with the fine-tune's own perceptualWeight /
 * perceptualLayers over it (same pool classifier); null when the VAE has no term. Checked as the VAE's.
 */
export function decoderPerceptualRecipe(P: StudyProfile): PerceptualRecipe | null {
  const vaeTerm = perceptualRecipe(P);
  if (!vaeTerm || !P.vaeDecoder) return vaeTerm;
  const { perceptualWeight, perceptualLayers } = P.vaeDecoder;
  const own = { ...(perceptualWeight !== undefined ? { perceptualWeight } : {}), ...(perceptualLayers !== undefined ? { perceptualLayers } : {}) };
  return perceptualRecipe({ ...P, vae: { ...P.vae, ...own } });
}

export interface PoolClassifier {
  checkpoint: string;
  valAccuracy: number;
  steps: number;
  seconds: number;
}

/**
 * The perceptual term's feature net: a ResNet18 trained on the pretraining pool only (the common
 * classes, never the rare one, no image any seed evaluates on), as LPIPS's net was trained on other
 * images than the ones it judges. Cached as a stage that depends on the pool.
 */
export async function trainPoolClassifier(o: PretrainOptions, pool: PretrainPool, r: PerceptualRecipe): Promise<StageResult<PoolClassifier>> {
  const P = o.profile;
  // the arms' settings, not the gate classifier's: its blur and noise augmentation would teach the
  // feature net to forgive exactly the loss of detail the term is there to penalise. A ResNet
  // (resnetFeatures) at the pool's size; validation on its own pool picks the epoch (the rare class
  // has no image, so accuracy, not mean AUC); perceptualClassifier overrides last.
  const config = resolveConfig(P.classifier, { heldOutTest: 0, valFraction: 0.1, testFraction: 0.1 }, pool.classifierData, {
    arch: 'resnet18', imageSize: P.imageSize, monitor: 'val_accuracy', balancedSampling: false, seed: 0,
  }, r.perceptualClassifier ?? {});
  return o.runner.run('pool-classifier', null, config, [poolStage(o, pool)], async (dir) => {
    const runDir = join(dir, 'run');
    const res = await train(config, { runDir, resume: existsSync(join(runDir, 'checkpoints')), signal: o.signal, verbose: false, skipReport: true });
    if (res.interrupted) throw new Error('pool classifier interrupted: run the same command again to continue');
    const best = res.bestEpoch !== null ? res.history.find((h) => h.epoch === res.bestEpoch) ?? res.history.at(-1)! : res.history.at(-1)!;
    const checkpoint = res.bestCheckpoint ?? join(runDir, 'checkpoints', 'best');
    if (!existsSync(checkpoint)) throw new Error(`pool classifier: no best checkpoint at ${checkpoint}`);
    console.log(`pool classifier: validation accuracy ${best.valAccuracy.toFixed(3)} on its own pool (${res.globalStep} steps)`);
    return { checkpoint, valAccuracy: best.valAccuracy, steps: res.globalStep, seconds: res.seconds };
  });
}

/** The VAE stage alone (cached under the run folder), e.g. to compare VAE recipes on their gate before a base model is trained. */
export async function pretrainVAE(o: PretrainOptions, pool: PretrainPool): Promise<StageResult<TrainedStage>> {
  const P = o.profile;
  const images = pool.items.map((it) => it.image);
  const perceptual = perceptualRecipe(P);
  // without the perceptual keys: exactly the old stage (same config, same deps, so the same cache key)
  if (!perceptual) return o.runner.run('vae', null, { vae: P.vae, size: P.imageSize }, [poolStage(o, pool)], (dir) => trainStudyVAE(P, dir, images, 0, o.signal));
  const net = await trainPoolClassifier(o, pool, perceptual);
  return o.runner.run('vae', null, { vae: P.vae, size: P.imageSize }, [poolStage(o, pool), net], (dir) =>
    withPerceptualTerm(net, perceptual, (extra) => trainStudyVAE(P, dir, images, 0, o.signal, extra)),
  );
}

/** Runs `train` with the perceptual term's loss options, the pool classifier loaded for the call (and freed after). */
async function withPerceptualTerm<T>(
  net: StageResult<PoolClassifier>, recipe: PerceptualRecipe, train: (extra: { perceptual: PerceptualTerm }) => Promise<T>,
): Promise<T> {
  const { model } = await loadTrainedModel(net.value.checkpoint);
  try {
    if (!(model instanceof ResNet)) throw new Error(`pool classifier ${net.value.checkpoint}: not a ResNet`);
    const features = resnetFeatures(model, recipe.perceptualLayers ?? ['stem', 'layer1'], { inputRange: [-1, 1] });
    return await train({ perceptual: { weight: recipe.perceptualWeight!, features } });
  } finally {
    model.dispose();
  }
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
  const words = P.base.wordTokens ? promptWords(o.classPrompt, o.data.set.classNames.map(o.promptOf)) : undefined;
  const captions = { genericEvery: P.base.genericEvery, emptyEvery: P.base.emptyEvery };
  const base = await o.runner.run('base', null, { base: P.base, vae: vae.key, classPrompt: o.classPrompt, prompts, ...(words ? { words } : {}) }, [poolStage(o, pool), vae], (dir) =>
    trainStudyBase(P, dir, vae.value.model, pretrainExamples(pool, o.classPrompt, o.promptOf, captions), [o.classPrompt, ...prompts], 0, o.signal, words),
  );
  o.onStage?.();
  if (!P.vaeDecoder) return { pool, vae, base };
  // the decoder fine-tune: the same latents, so the base model stays; the generator is its pipeline with the new decoder
  const dec = await pretrainDecoder(o, pool, vae);
  const gen = await o.runner.run('generator', null, { pipeline: 'base with the fine-tuned decoder' }, [base, dec], (dir) => pipelineWithVAE(base.value.model, dec.value.model, join(dir, 'pipeline')));
  const tuned: StageResult<TrainedStage> = { ...dec, value: { ...dec.value, latentStd: vae.value.latentStd, scalingFactor: vae.value.scalingFactor } };
  return { pool, vae: tuned, base: { ...gen, value: { ...base.value, model: gen.value.model } } };
}

/**
 * The decoder fine-tune stage (profile `vaeDecoder`): depends on the VAE (and the perceptual term's
 * net), not on the base model, so it can train beside it.
 */
export async function pretrainDecoder(o: PretrainOptions, pool: PretrainPool, vae: StageResult<TrainedStage>): Promise<StageResult<TrainedStage>> {
  const P = o.profile;
  const images = pool.items.map((it) => it.image);
  const vaeTerm = perceptualRecipe(P);
  const net = vaeTerm ? await trainPoolClassifier(o, pool, vaeTerm) : null;
  // the stage key holds P.vaeDecoder, so without the fine-tune's own perceptual keys it is exactly the old stage
  const perceptual = decoderPerceptualRecipe(P);
  return o.runner.run('vae-decoder', null, { vaeDecoder: P.vaeDecoder, size: P.imageSize }, [poolStage(o, pool), vae, ...(net ? [net] : [])], (dir) =>
    net && perceptual
      ? withPerceptualTerm(net, perceptual, (extra) => trainStudyDecoder(P, dir, vae.value.model, images, 0, o.signal, extra))
      : trainStudyDecoder(P, dir, vae.value.model, images, 0, o.signal),
  );
}
