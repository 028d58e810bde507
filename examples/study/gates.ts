/**
 * The generator's quality gates as numbers (report.json's `gates`): does the VAE keep what the
 * classifier sees, does the base model follow class prompts, does DreamBooth make the rare class, and
 * which synthetic images pass verification. Each gate is a function of a `generate` function, an
 * ImageScorer and images, so the same code measures a real pipeline and a test's stand-ins.
 */
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { fromFloatCHW } from '@foliar/data';
import { Rng, evalTransform, type ProtocolSplit } from '@foliar/classifier';
import { StableDiffusionPipeline, imagesToTensor, loadVAE, type AutoencoderKL, type GenerateResult } from '@foliar/diffusion';
import type { GateEntry } from './report-types.js';
import type { StudyProfile } from './profiles.js';
import { classPromptOf, imagesOf, itemsOf, type StudyData } from './data.js';
import { labelledGrid } from './grids.js';
import { oneNnTwoSample } from './domain.js';
import {
  classColumn, classIndex, classShare, mean, meanNearestNeighbourDistance, nearestNeighbourDistances, predictedClasses, scoreImages,
  type ImageScorer, type RgbImage,
} from './features.js';

/** Images of `prompt`, image i made from noise seed seeds[i] (so runs and models can be paired by seed). */
export type Generate = (prompt: string, seeds: number[]) => Promise<RgbImage[]>;

/** The fixed sample seeds of a gate: seed·100000 + i, disjoint between study seeds. */
export function sampleSeeds(seed: number, n: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sampleSeeds: need a positive number of samples, got ${n}`);
  return Array.from({ length: n }, (_, i) => seed * 100000 + i);
}

export interface PipelineGeneratorOptions {
  steps: number;
  guidance: number;
  batchSize: number;
  height: number;
  width: number;
  negativePrompt?: string;
}

/** A Generate over a pipeline it owns: dispose() frees the pipeline. */
export interface PipelineGenerator {
  generate: Generate;
  dispose(): void;
}

/**
 * `generate` for a StableDiffusionPipeline. Each image's initial noise comes from its own seed (as
 * generateImageSet does), so with a deterministic scheduler an image does not depend on the batch it
 * was denoised in, and the base and fine-tuned models start from the same noise at the same seed.
 */
export function generatorFromPipeline(pipe: StableDiffusionPipeline, o: PipelineGeneratorOptions): PipelineGenerator {
  const bs = o.batchSize;
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`generatorFromPipeline: batchSize must be a positive integer, got ${bs}`);
  const f = pipe.vaeScaleFactor;
  if (o.height % f || o.width % f) throw new RangeError(`generatorFromPipeline: height and width must be multiples of ${f}, got ${o.height}x${o.width}`);
  const shape = [1, pipe.unet.config.in_channels, o.height / f, o.width / f];
  const generate: Generate = async (prompt, seeds) => {
    const out: RgbImage[] = [];
    for (let k = 0; k < seeds.length; k += bs) {
      const chunk = seeds.slice(k, k + bs);
      const latents = ft.tidy(() => ft.cat(chunk.map((s) => ft.randn(shape, { generator: new ft.Generator(s), backend: pipe.backend })), 0));
      let r: GenerateResult;
      try {
        r = await pipe.generate({
          prompt: new Array<string>(chunk.length).fill(prompt),
          ...(o.negativePrompt !== undefined ? { negativePrompt: o.negativePrompt } : {}),
          latents,
          // stochastic schedulers also draw step noise: seeded by the batch's first image, as generateImageSet does
          seed: chunk[0]!,
          numInferenceSteps: o.steps,
          guidanceScale: o.guidance,
          height: o.height,
          width: o.width,
        });
      } finally {
        latents.dispose();
      }
      try {
        const [b, c, h, w] = r.images.shape as [number, number, number, number];
        const data = await r.images.dataF32();
        for (let i = 0; i < b; i++) out.push(rgb(fromFloatCHW(data.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, '[0,1]')));
      } finally {
        r.images.dispose();
        r.latents.dispose();
      }
    }
    return out;
  };
  return { generate, dispose: () => pipe.dispose() };
}

/** Drops the `channels` field of @foliar/report's rasters (always 3 here). */
function rgb(img: { width: number; height: number; data: Uint8Array }): RgbImage {
  return { width: img.width, height: img.height, data: img.data };
}

const cmp = (value: number | null, target: NonNullable<GateEntry['target']>): boolean | undefined => {
  if (value === null || !Number.isFinite(value)) return undefined;
  return target.op === '>=' ? value >= target.value : target.op === '<=' ? value <= target.value : value < target.value;
};

/** A GateEntry; `passed` is filled in when there is a target and a value to compare. */
function entry(stage: string, name: string, seed: number, value: number | null, detail: string, target?: GateEntry['target']): GateEntry {
  const v = value === null || !Number.isFinite(value) ? null : value;
  const e: GateEntry = { stage, name, seed, value: v, detail };
  if (target) {
    e.target = target;
    const p = cmp(v, target);
    if (p !== undefined) e.passed = p;
  }
  return e;
}

// ---------------------------------------------------------------- VAE

export interface VaeGateOptions {
  vae: AutoencoderKL;
  scorer: ImageScorer;
  /** Validation images (never the VAE's training images). */
  images: RgbImage[];
  /** Class of each image, an index into scorer.classNames. */
  labels: number[];
  seed: number;
  /** Side the VAE works at (default its config's sample_size). */
  resolution?: number;
  /** Images per encode/decode (default 8). */
  batchSize?: number;
  /** Default 'vae'. */
  stage?: string;
}

export interface VaeGateResult {
  entries: GateEntry[];
  /** 1 / latentStd: what the VAE's config.scaling_factor should be (SD set 0.18215 this way). */
  scalingFactor: number;
  /** Standard deviation of all elements of the latent means. */
  latentStd: number;
  /** dB, over all pixels of all images (8-bit). */
  psnr: number;
  /** The images at the VAE's resolution, as the classifier saw them, and their reconstructions. */
  originals: RgbImage[];
  reconstructions: RgbImage[];
  /** The scorer's class for each original and each reconstruction. */
  predictedOriginal: Int32Array;
  predictedReconstructed: Int32Array;
  /** Indices of the images the round trip loses: their original is called its class, the reconstruction another. */
  lost: number[];
}

/**
 * Reconstruction gate: each image (resized and centre-cropped to the VAE's side) is encoded, its
 * latent mean decoded, and the classifier scores originals and reconstructions alike. Per class: the
 * accuracy on both and the drop (target ≤ 0.05); over all images: PSNR, the latent std and the
 * scaling factor 1/std it implies.
 */
export async function vaeGate(o: VaeGateOptions): Promise<VaeGateResult> {
  const stage = o.stage ?? 'vae';
  const res = o.resolution ?? o.vae.config.sample_size;
  if (res === undefined || !Number.isInteger(res) || res < 1) throw new RangeError(`vaeGate: give a resolution (the VAE config has no sample_size)`);
  if (o.images.length === 0) throw new RangeError('vaeGate: no images');
  if (o.labels.length !== o.images.length) throw new RangeError(`vaeGate: ${o.labels.length} labels for ${o.images.length} images`);
  const C = o.scorer.classNames.length;
  for (const l of o.labels) if (!Number.isInteger(l) || l < 0 || l >= C) throw new RangeError(`vaeGate: label ${l} is not a class index of the scorer (0..${C - 1})`);
  const bs = o.batchSize ?? 8;
  const toSide = evalTransform(res);
  const noRandomness = new Rng(0);
  const originals = o.images.map((img) => toSide(img, noRandomness));
  const backend = o.vae.parameters()[0]?.backend;

  const reconstructions: RgbImage[] = [];
  let sum = 0, sumSq = 0, count = 0;
  for (let k = 0; k < originals.length; k += bs) {
    const chunk = originals.slice(k, k + bs);
    const x = imagesToTensor(chunk, backend);
    let out: { mean: ft.Tensor; recon: ft.Tensor } | null = null;
    try {
      // the mean, not a sample: the gate measures the autoencoder, not the sampling noise
      out = ft.noGrad(() => ft.tidy(() => {
        const d = o.vae.encode(x);
        return { mean: d.mean, recon: o.vae.decode(d.mean) };
      }));
      const m = await out.mean.dataF32();
      for (let i = 0; i < m.length; i++) {
        sum += m[i]!;
        sumSq += m[i]! * m[i]!;
      }
      count += m.length;
      const [b, c, h, w] = out.recon.shape as [number, number, number, number];
      const px = await out.recon.dataF32();
      for (let i = 0; i < b; i++) reconstructions.push(rgb(fromFloatCHW(px.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, '[-1,1]')));
    } finally {
      x.dispose();
      out?.mean.dispose();
      out?.recon.dispose();
    }
  }
  const latentMean = sum / count;
  const latentStd = Math.sqrt(Math.max(0, sumSq / count - latentMean * latentMean));
  const scalingFactor = 1 / latentStd;
  const psnr = psnrOf(originals, reconstructions);

  const predOrig = predictedClasses(await o.scorer.probabilities(originals), C);
  const predRecon = predictedClasses(await o.scorer.probabilities(reconstructions), C);
  const entries: GateEntry[] = [];
  o.scorer.classNames.forEach((name, c) => {
    const idx = o.labels.map((l, i) => (l === c ? i : -1)).filter((i) => i >= 0);
    const acc = (pred: Int32Array) => (idx.length ? idx.filter((i) => pred[i] === c).length / idx.length : null);
    const a = acc(predOrig), r = acc(predRecon);
    const how = `${idx.length} validation images at ${res} px`;
    entries.push(entry(stage, `accuracy_original.${name}`, o.seed, a, `classifier accuracy on the originals (${how})`));
    entries.push(entry(stage, `accuracy_reconstructed.${name}`, o.seed, r, `classifier accuracy on their reconstructions (encode → latent mean → decode)`));
    entries.push(entry(stage, `recon_accuracy_drop.${name}`, o.seed, a === null || r === null ? null : a - r,
      `accuracy on originals minus accuracy on reconstructions (${how})`, { op: '<=', value: 0.05 }));
  });
  entries.push(entry(stage, 'psnr', o.seed, psnr, `PSNR (dB, 8-bit) of the reconstructions over all pixels of ${originals.length} images`));
  entries.push(entry(stage, 'latent_std', o.seed, latentStd, `standard deviation of all ${count} elements of the latent means`));
  entries.push(entry(stage, 'scaling_factor', o.seed, scalingFactor,
    `1 / latent_std, the value config.scaling_factor should have (configured: ${o.vae.config.scaling_factor}; SD's 0.18215 was set this way)`));
  const lost = o.labels.flatMap((l, i) => (predOrig[i] === l && predRecon[i] !== l ? [i] : []));
  return { entries, scalingFactor, latentStd, psnr, originals, reconstructions, predictedOriginal: predOrig, predictedReconstructed: predRecon, lost };
}

/**
 * The grid rows that show what the VAE gate counts: up to `n` images the round trip loses, originals
 * over their reconstructions, each row labelled with the true and the predicted classes in order.
 */
export function lostRows(r: VaeGateResult, labels: readonly number[], classNames: readonly string[], n = 8): { label: string; images: RgbImage[] }[] {
  const pick = r.lost.slice(0, n);
  if (pick.length === 0) return [];
  const short = (c: number) => classNames[c]!.replace('multiple_diseases', 'multiple');
  return [
    { label: `lost originals: ${pick.map((i) => short(labels[i]!)).join(', ')}`, images: pick.map((i) => r.originals[i]!) },
    { label: `reconstructions called: ${pick.map((i) => short(r.predictedReconstructed[i]!)).join(', ')}`, images: pick.map((i) => r.reconstructions[i]!) },
  ];
}

/** PSNR in dB of 8-bit images over all their pixels (Infinity when identical). */
export function psnrOf(a: RgbImage[], b: RgbImage[]): number {
  if (a.length !== b.length) throw new RangeError(`psnrOf: ${a.length} vs ${b.length} images`);
  let se = 0, n = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    if (x.data.length !== y.data.length) throw new RangeError(`psnrOf: image ${i} sizes differ (${x.width}x${x.height} vs ${y.width}x${y.height})`);
    for (let k = 0; k < x.data.length; k++) {
      const d = x.data[k]! - y.data[k]!;
      se += d * d;
    }
    n += x.data.length;
  });
  return 10 * Math.log10((255 * 255) / (se / n));
}

// ---------------------------------------------------------------- conditioning

export interface ConditioningGateOptions {
  generate: Generate;
  scorer: ImageScorer;
  /** Class name → the prompt that should make it. */
  prompts: Record<string, string>;
  /** Samples per prompt (default 32). */
  samples?: number;
  seed: number;
  /** Default 'base_model'. */
  stage?: string;
  /** Receives each class's samples (e.g. for a grid next to real images of that class). */
  onSamples?: (className: string, images: RgbImage[]) => void;
}

/**
 * Does the model follow class prompts? Each class's prompt is sampled at the same seeds; the share of
 * samples the classifier assigns (argmax) to the prompted class, and its mean over classes, the
 * conditioning score (target ≥ 0.7). A model that ignores the prompt scores at most 1/(number of prompts).
 */
export async function conditioningGate(o: ConditioningGateOptions): Promise<GateEntry[]> {
  const stage = o.stage ?? 'base_model';
  const n = o.samples ?? 32;
  const seeds = sampleSeeds(o.seed, n);
  const classes = Object.keys(o.prompts);
  if (classes.length === 0) throw new RangeError('conditioningGate: no prompts');
  const C = o.scorer.classNames.length;
  const entries: GateEntry[] = [];
  const shares: Record<string, number> = {};
  for (const name of classes) {
    const c = classIndex(o.scorer, name);
    const imgs = await o.generate(o.prompts[name]!, seeds);
    if (imgs.length !== n) throw new Error(`conditioningGate: generate returned ${imgs.length} images for ${n} seeds`);
    o.onSamples?.(name, imgs);
    shares[name] = classShare(predictedClasses(await o.scorer.probabilities(imgs), C), c);
    entries.push(entry(stage, `conditioning_share.${name}`, o.seed, shares[name]!,
      `share of ${n} samples of "${o.prompts[name]}" (seeds ${seeds[0]}…${seeds.at(-1)}) the classifier assigns to ${name}`));
  }
  const score = mean(classes.map((c) => shares[c]!));
  entries.push(entry(stage, 'conditioning_score', o.seed, score,
    `mean over ${classes.length} class prompts of the share assigned to the prompted class (at most 1/${classes.length} if the prompt is ignored)`, { op: '>=', value: 0.7 }));
  return entries;
}

// ---------------------------------------------------------------- DreamBooth

export interface DreamboothGateOptions {
  generate: Generate;
  /** A classifier that recognises the rare class (e.g. trained with balanced sampling). */
  scorer: ImageScorer;
  instancePrompt: string;
  rareClass: string;
  /** Default 64. */
  samples?: number;
  /** Real rare-class TRAINING images (DreamBooth's instance images come from them). */
  realRare: RgbImage[];
  /** The base model's samples of the class prompt (DreamBooth's prior images). */
  baseSamples: RgbImage[];
  seed: number;
  /** Default 'dreambooth'. */
  stage?: string;
}

/**
 * The gates stage's configuration (its cache key). `version` changes whenever a gate's computation
 * changes, so finished gates stages rerun with it; nothing downstream reads them, so nothing else reruns.
 * 2: the DreamBooth gate's two-sample accuracy (session 19).
 */
export function gatesStageConfig(p: Pick<StudyProfile, 'gates'>): { gates: StudyProfile['gates']; grids: number; version: number } {
  return { gates: p.gates, grids: 2, version: 2 };
}

export interface DreamboothGateResult {
  entries: GateEntry[];
  /** The generated samples (for a grid). */
  samples: RgbImage[];
  /** P(rare class) of each sample. */
  rareProbabilities: number[];
  rareShare: number;
  /** The same share for the base model's class-prompt samples: what the classifier gives samples that were never taught the class. */
  baseRareShare: number;
  nnDistance: number;
  baseNnDistance: number;
  /** nnDistance / baseNnDistance (null when the latter is 0). */
  ratio: number | null;
  /** 1-NN two-sample accuracy of the samples against the real rare images (0.5: indistinguishable; null below 2 of either). */
  twoSampleAccuracy: number | null;
  /** The same for the base model's class-prompt samples. */
  baseTwoSampleAccuracy: number | null;
}

/**
 * Does DreamBooth make the rare class? The instance prompt is sampled at fixed seeds; the share the
 * classifier calls the rare class (target ≥ 0.5), and how close the samples' features come to real
 * rare-class images (mean nearest-neighbour distance) compared with the base model's class-prompt
 * samples (ratio < 1: nearer than before fine-tuning). The real images are training images, so a
 * distance near 0 means copies of instance images rather than success.
 */
export async function dreamboothGate(o: DreamboothGateOptions): Promise<DreamboothGateResult> {
  const stage = o.stage ?? 'dreambooth';
  const n = o.samples ?? 64;
  const rare = classIndex(o.scorer, o.rareClass);
  if (o.realRare.length === 0) throw new RangeError('dreamboothGate: no real rare-class images');
  if (o.baseSamples.length === 0) throw new RangeError('dreamboothGate: no base-model samples');
  const seeds = sampleSeeds(o.seed, n);
  const samples = await o.generate(o.instancePrompt, seeds);
  if (samples.length !== n) throw new Error(`dreamboothGate: generate returned ${samples.length} images for ${n} seeds`);
  const C = o.scorer.classNames.length, D = o.scorer.dim;
  const gen = await scoreImages(o.scorer, samples);
  const real = await o.scorer.features(o.realRare);
  const baseScored = await scoreImages(o.scorer, o.baseSamples);
  const base = baseScored.features;
  const rareProbabilities = classColumn(gen.probabilities, C, rare);
  const rareShare = classShare(predictedClasses(gen.probabilities, C), rare);
  const baseRareShare = classShare(predictedClasses(baseScored.probabilities, C), rare);
  const nnDistance = meanNearestNeighbourDistance(gen.features, n, real, o.realRare.length, D);
  const baseNnDistance = meanNearestNeighbourDistance(base, o.baseSamples.length, real, o.realRare.length, D);
  const ratio = baseNnDistance > 0 ? nnDistance / baseNnDistance : null;
  // the domain gap: can the samples be told from the real images at all (not only: are they the class)?
  const twoSampleOf = (x: Float32Array) => (real.length >= 2 * D && x.length >= 2 * D ? oneNnTwoSample(real, x, D).accuracy : null);
  const twoSample = twoSampleOf(gen.features);
  const baseTwoSample = twoSampleOf(base);
  const feat = `classifier penultimate (avgpool) features, L2`;
  const entries = [
    entry(stage, 'rare_share', o.seed, rareShare, `share of ${n} samples of "${o.instancePrompt}" the classifier assigns to ${o.rareClass}`, { op: '>=', value: 0.5 }),
    entry(stage, 'mean_rare_probability', o.seed, mean(rareProbabilities), `mean P(${o.rareClass}) of those samples`),
    // the control: a classifier can call blurred texture the rare class; DreamBooth's share only counts above this
    entry(stage, 'base_rare_share', o.seed, baseRareShare, `share of ${o.baseSamples.length} base-model samples of the class prompt the classifier assigns to ${o.rareClass} (the control: rare_share counts only above it)`),
    entry(stage, 'nn_feature_distance', o.seed, nnDistance,
      `mean over the samples of the distance to the nearest of ${o.realRare.length} real ${o.rareClass} training images (${feat}); near 0 would mean copies`),
    entry(stage, 'base_nn_feature_distance', o.seed, baseNnDistance,
      `the same for ${o.baseSamples.length} base-model samples of the class prompt (the starting point)`),
    entry(stage, 'nn_feature_distance_ratio', o.seed, ratio, 'nn_feature_distance / base_nn_feature_distance (< 1: nearer the real class than the base model)', { op: '<', value: 1 }),
    entry(stage, 'two_sample_1nn_accuracy', o.seed, twoSample,
      `leave-one-out 1-nearest-neighbour two-sample accuracy between the samples and the real ${o.rareClass} training images (equal numbers, ${feat}): 0.5 indistinguishable, 1 told apart; a classifier trained on samples far above 0.5 can learn the difference instead of the class`),
    entry(stage, 'base_two_sample_1nn_accuracy', o.seed, baseTwoSample, 'the same for the base-model samples of the class prompt'),
  ];
  return { entries, samples, rareProbabilities, rareShare, baseRareShare, nnDistance, baseNnDistance, ratio, twoSampleAccuracy: twoSample, baseTwoSampleAccuracy: baseTwoSample };
}

// ---------------------------------------------------------------- verification

/**
 * The largest threshold t such that P ≥ t keeps at least `keep` of `values`: the ⌈keep·n⌉-th largest
 * value (ties may keep a few more).
 */
export function keepThreshold(values: ArrayLike<number>, keep = 0.9): number {
  const n = values.length;
  if (n === 0) throw new RangeError('keepThreshold: no values');
  if (!(keep > 0 && keep <= 1)) throw new RangeError(`keepThreshold: keep must be in (0, 1], got ${keep}`);
  const sorted = Array.from(values).sort((a, b) => b - a);
  // 1e-9: 0.9 · 20 must count as 18, not 18.000000000000004 → 19
  const k = Math.max(1, Math.ceil(keep * n - 1e-9));
  return sorted[k - 1]!;
}

export interface VerificationOptions {
  scorer: ImageScorer;
  rareClass: string;
  synthetic: RgbImage[];
  /** Real rare-class VALIDATION images: the threshold is fixed on them alone. */
  valRare: RgbImage[];
  /** Real validation images of the other classes: how many the threshold would let through. */
  valOther: RgbImage[];
  /** Share of valRare the threshold keeps (default 0.9). */
  keep?: number;
  /** For the feature-distance check (both or neither): real rare-class training images… */
  realRare?: RgbImage[];
  /** …and the class images (the base model's samples of the class prompt). */
  classImages?: RgbImage[];
  /** Study seed of the `entries` (without it there are none). */
  seed?: number;
  /** Default 'verification'. */
  stage?: string;
}

export interface VerificationResult {
  /** P(rare) ≥ threshold accepts an image. */
  threshold: number;
  accepted: boolean[];
  /** P(rare) of each synthetic image. */
  probabilities: number[];
  meanRareProbability: number;
  /** Share of valRare / valOther at or above the threshold. */
  valRareKept: number;
  valOtherAccepted: number | null;
  /** Feature check: nearer (NN distance) to the real rare images than to the class images. */
  featureAccepted: boolean[] | null;
  featureAcceptedShare: number | null;
  /** The numbers above as GateEntry rows (none when no `seed` was given). */
  entries: GateEntry[];
}

/**
 * Which synthetic images does the classifier accept as the rare class? The threshold on P(rare) is
 * fixed on real validation images only: the largest one that keeps 90% of the real rare-class
 * validation images (so a synthetic image must look as rare-class as a typical real one). Also a
 * feature check: is each synthetic image's nearest real rare-class training image nearer than its
 * nearest class image (what the base model makes)?
 */
export async function verificationFilter(o: VerificationOptions): Promise<VerificationResult> {
  const stage = o.stage ?? 'verification';
  const keep = o.keep ?? 0.9;
  const rare = classIndex(o.scorer, o.rareClass);
  const C = o.scorer.classNames.length, D = o.scorer.dim;
  if (o.valRare.length === 0) throw new RangeError('verificationFilter: no rare-class validation images to fix the threshold on');
  if (o.synthetic.length === 0) throw new RangeError('verificationFilter: no synthetic images');
  if (!o.realRare !== !o.classImages) throw new Error('verificationFilter: give both realRare and classImages for the feature check, or neither');
  const pRare = async (imgs: RgbImage[]) => classColumn(await o.scorer.probabilities(imgs), C, rare);
  const valRareP = await pRare(o.valRare);
  const threshold = keepThreshold(valRareP, keep);
  const valRareKept = valRareP.filter((p) => p >= threshold).length / valRareP.length;
  const valOtherAccepted = o.valOther.length ? (await pRare(o.valOther)).filter((p) => p >= threshold).length / o.valOther.length : null;

  const wantFeatures = Boolean(o.realRare && o.classImages);
  const syn = wantFeatures ? await scoreImages(o.scorer, o.synthetic) : { probabilities: await o.scorer.probabilities(o.synthetic), features: null };
  const probabilities = classColumn(syn.probabilities, C, rare);
  const accepted = probabilities.map((p) => p >= threshold);
  const meanRareProbability = mean(probabilities);
  let featureAccepted: boolean[] | null = null;
  if (wantFeatures && syn.features) {
    const real = await o.scorer.features(o.realRare!), cls = await o.scorer.features(o.classImages!);
    const toReal = nearestNeighbourDistances(syn.features, o.synthetic.length, real, o.realRare!.length, D);
    const toClass = nearestNeighbourDistances(syn.features, o.synthetic.length, cls, o.classImages!.length, D);
    featureAccepted = Array.from(toReal, (d, i) => d < toClass[i]!);
  }
  const featureAcceptedShare = featureAccepted ? featureAccepted.filter(Boolean).length / featureAccepted.length : null;
  const acceptedShare = accepted.filter(Boolean).length / accepted.length;
  const seed = o.seed;
  const entries = seed === undefined ? [] : [
    entry(stage, 'threshold', seed, threshold,
      `P(${o.rareClass}) threshold: the largest that keeps ${Math.round(100 * keep)}% of ${o.valRare.length} real ${o.rareClass} validation images (the ⌈${keep}·n⌉-th largest P)`),
    entry(stage, 'val_rare_kept', seed, valRareKept, `share of real ${o.rareClass} validation images at or above the threshold`),
    entry(stage, 'val_other_accepted', seed, valOtherAccepted, `share of ${o.valOther.length} real validation images of the other classes at or above the threshold`),
    entry(stage, 'accepted_share', seed, acceptedShare, `share of ${o.synthetic.length} synthetic images at or above the threshold`),
    entry(stage, 'mean_rare_probability', seed, meanRareProbability, `mean P(${o.rareClass}) of the synthetic images`),
    entry(stage, 'feature_accepted_share', seed, featureAcceptedShare,
      `share of synthetic images whose nearest real ${o.rareClass} training image is nearer than their nearest class image (base-model sample), classifier avgpool features, L2`),
  ];
  return { threshold, accepted, probabilities, meanRareProbability, valRareKept, valOtherAccepted, featureAccepted, featureAcceptedShare, entries };
}

// ---------------------------------------------------------------- the study's gates stage

/** What the study's `gates` stage of one seed reads (in process, or rebuilt by a queued job). */
export interface StudyGatesInputs {
  profile: StudyProfile;
  data: StudyData;
  split: ProtocolSplit;
  seed: number;
  rare: string;
  classPrompt: string;
  instancePrompt: string;
  /** The seed's gate classifier as a scorer (examples/study/scorer.ts). */
  scorer: ImageScorer;
  /** The trained VAE's folder, or null when the base model was given (--model): no VAE gate. */
  vaeModel: string | null;
  baseModel: string;
  /** The DreamBooth variants' model folders, in the study's order. */
  dreambooth: { name: string; model: string }[];
}

/**
 * The body of the study's `gates` stage: the VAE gate, the base model's conditioning, DreamBooth's
 * instance samples of each variant, and the grids `conditioning.png` / `samples.png` in `dir`. Every
 * image comes from a fixed seed, so a worker that rebuilds these inputs writes the same result.
 */
export async function studyGates(o: StudyGatesInputs, dir: string): Promise<{ entries: GateEntry[]; scalingFactor: number | null }> {
  const P = o.profile, { data, split, seed, scorer, rare } = o;
  const common = data.set.classNames.filter((c) => c !== rare);
  const rareImages = await imagesOf(data, itemsOf(split.train, rare));
  const gen = async (model: string) => generatorFromPipeline(await StableDiffusionPipeline.fromPretrained(model), { steps: P.gates.steps, guidance: P.synthetic.guidance, batchSize: P.synthetic.batch, height: P.imageSize, width: P.imageSize });
  const entries: GateEntry[] = [];
  let scalingFactor: number | null = null;
  if (o.vaeModel) {
    const vae = await loadVAE(o.vaeModel);
    const valItems = split.val.items.slice(0, P.gates.vaeImages);
    const labels = valItems.map((it) => it.label);
    const r = await vaeGate({ vae, scorer, images: await imagesOf(data, valItems), labels, seed });
    entries.push(...r.entries);
    // what the drop counts, to look at: the images whose class the round trip loses
    const lostGrid = lostRows(r, labels, scorer.classNames);
    if (lostGrid.length) labelledGrid(lostGrid, join(dir, 'vae-lost.png'));
    scalingFactor = r.scalingFactor;
    vae.dispose();
  }
  const baseGen = await gen(o.baseModel);
  // each class prompt's samples under real training images of that class
  const condSamples = new Map<string, RgbImage[]>();
  entries.push(...(await conditioningGate({ generate: baseGen.generate, scorer, prompts: Object.fromEntries(common.map((c) => [c, classPromptOf(c)])), samples: P.gates.conditioningSamples, seed, onSamples: (c, imgs) => condSamples.set(c, imgs.slice(0, 8)) })));
  const condRows: { label: string; images: RgbImage[] }[] = [];
  for (const c of common) condRows.push({ label: `real ${c}`, images: await imagesOf(data, itemsOf(split.train, c).slice(0, 8)) }, { label: `base: ${classPromptOf(c)}`, images: condSamples.get(c) ?? [] });
  await labelledGrid(condRows, join(dir, 'conditioning.png'));
  const baseSamples = await baseGen.generate(o.classPrompt, Array.from({ length: P.gates.dreamboothSamples }, (_, i) => 7_000_000 + i));
  baseGen.dispose();
  const grids: { label: string; images: RgbImage[] }[] = [{ label: 'real ' + rare, images: rareImages.slice(0, 8) }, { label: `base: ${o.classPrompt}`, images: baseSamples.slice(0, 8) }];
  for (const v of o.dreambooth) {
    const dbGen = await gen(v.model);
    const r = await dreamboothGate({ generate: dbGen.generate, scorer, instancePrompt: o.instancePrompt, rareClass: rare, samples: P.gates.dreamboothSamples, realRare: rareImages, baseSamples, seed, stage: v.name });
    dbGen.dispose();
    entries.push(...r.entries);
    grids.push({ label: `${v.name}: instance prompt`, images: r.samples.slice(0, 8) });
  }
  await labelledGrid(grids, join(dir, 'samples.png'));
  return { entries, scalingFactor };
}
