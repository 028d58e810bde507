/**
 * Language drift of a fine-tuned model (report.json's `drift`): the same prompts and seeds through
 * the base and the fine-tuned model. In-domain prompts are read by the classifier (is a rust prompt
 * still rust, has anything become the rare class?); probes far from the leaves ("cat", "sea") by how
 * far their samples moved in feature space, against the distance between two seeds of the base model.
 */
import { join } from 'node:path';
import { DRIFT_PROBES, StableDiffusionPipeline } from '@foliar/diffusion';
import type { DriftEntry } from './report-types.js';
import { classIndex, classShare, pairedDistance, predictedClasses, scoreImages, type ImageScorer, type RgbImage } from './features.js';
import { generatorFromPipeline, sampleSeeds, type Generate } from './gates.js';
import { classPromptOf } from './data.js';
import { sideBySideGrid } from './grids.js';
import type { StudyProfile } from './profiles.js';

/** DreamBooth's drift probes without the leaf prompts (those are in-domain: the classifier reads them). */
export const DEFAULT_PROBES: readonly string[] = DRIFT_PROBES.filter((p) => !p.includes('leaf'));

export interface DriftOptions {
  base: Generate;
  tuned: Generate;
  /** 'dreambooth' or 'dreambooth_no_prior'. */
  variant: string;
  scorer: ImageScorer;
  rareClass: string;
  /**
   * In-domain prompt → the class it asks for, or null for a prompt of no class ("a photo of a leaf"):
   * then only the rare share is reported.
   */
  inDomain: Record<string, string | null>;
  /** Default DEFAULT_PROBES: "a photo", "cat", "sea", "pirate", "illustration", "animation", "wallpaper". */
  probes?: readonly string[];
  /** Samples per prompt and model (default 16; at least 2 for the reference distance). */
  samples?: number;
  seed: number;
}

export interface DriftGrid {
  prompt: string;
  base: RgbImage[];
  tuned: RgbImage[];
}

export interface DriftResult {
  entries: DriftEntry[];
  grids: DriftGrid[];
}

/**
 * Mean distance between base samples of different seeds: sample i against sample i+1 (cyclically),
 * the distance a completely changed image would have, at no extra generation.
 */
function referenceDistance(f: Float32Array, n: number, dim: number): number {
  const shifted = new Float32Array(f.length);
  shifted.set(f.subarray(dim), 0);
  shifted.set(f.subarray(0, dim), (n - 1) * dim);
  return pairedDistance(f, shifted, n, dim);
}

/**
 * Samples every prompt from both models at the same seeds (seed·100000 + i). Per prompt: the shares
 * the classifier assigns to the prompted class (in-domain prompts with a class) and to the rare class
 * before and after, the mean feature distance between the two models' samples of the same seed
 * (`feature_distance`, 0 when nothing changed) and between base samples of two different seeds
 * (`reference_distance`, the scale: drift near it means the prompt's images changed completely).
 */
export async function measureDrift(o: DriftOptions): Promise<DriftResult> {
  const n = o.samples ?? 16;
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`measureDrift: samples must be an integer ≥ 2 (the reference pairs two seeds), got ${n}`);
  const rare = classIndex(o.scorer, o.rareClass);
  const C = o.scorer.classNames.length, D = o.scorer.dim;
  const seeds = sampleSeeds(o.seed, n);
  const prompts: { prompt: string; kind: DriftEntry['kind']; cls: number | null }[] = [
    ...Object.entries(o.inDomain).map(([prompt, name]) => ({ prompt, kind: 'in_domain' as const, cls: name === null ? null : classIndex(o.scorer, name) })),
    ...(o.probes ?? DEFAULT_PROBES).map((prompt) => ({ prompt, kind: 'probe' as const, cls: null })),
  ];
  const entries: DriftEntry[] = [];
  const grids: DriftGrid[] = [];
  for (const p of prompts) {
    const base = await o.base(p.prompt, seeds);
    const tuned = await o.tuned(p.prompt, seeds);
    if (base.length !== n || tuned.length !== n) throw new Error(`measureDrift: "${p.prompt}": ${base.length} base and ${tuned.length} fine-tuned images for ${n} seeds`);
    grids.push({ prompt: p.prompt, base, tuned });
    const b = await scoreImages(o.scorer, base);
    const t = await scoreImages(o.scorer, tuned);
    const pb = predictedClasses(b.probabilities, C), pt = predictedClasses(t.probabilities, C);
    entries.push({
      seed: o.seed,
      variant: o.variant,
      prompt: p.prompt,
      kind: p.kind,
      samples: n,
      ...(p.kind === 'in_domain'
        ? { prompted_share_before: p.cls === null ? null : classShare(pb, p.cls), prompted_share_after: p.cls === null ? null : classShare(pt, p.cls) }
        : {}),
      rare_share_before: classShare(pb, rare),
      rare_share_after: classShare(pt, rare),
      feature_distance: pairedDistance(b.features, t.features, n, D),
      reference_distance: referenceDistance(b.features, n, D),
    });
  }
  return { entries, grids };
}

/** A generator that draws each (prompt, seeds) once and hands back the same images after. */
function memoized(g: Generate): Generate {
  const seen = new Map<string, Promise<RgbImage[]>>();
  return (prompt, seeds) => {
    const key = JSON.stringify([prompt, seeds]);
    let r = seen.get(key);
    if (!r) seen.set(key, (r = g(prompt, seeds)));
    return r;
  };
}

/** What the study's `drift` stage of one seed reads (in process, or rebuilt by a queued job). */
export interface StudyDriftInputs {
  profile: StudyProfile;
  seed: number;
  classNames: readonly string[];
  rare: string;
  classPrompt: string;
  probes: readonly string[];
  /** The seed's gate classifier as a scorer (examples/study/scorer.ts). */
  scorer: ImageScorer;
  baseModel: string;
  /** The DreamBooth variants' model folders, in the study's order. */
  dreambooth: { name: string; model: string }[];
}

/**
 * The body of the study's `drift` stage: each DreamBooth variant against the base model, same prompts
 * and seeds, with one side-by-side grid per variant (`<variant>.png` in `dir`).
 */
export async function studyDrift(o: StudyDriftInputs, dir: string): Promise<{ entries: DriftEntry[]; pics: string[] }> {
  const P = o.profile;
  const common = o.classNames.filter((c) => c !== o.rare);
  const opts = { steps: P.drift.steps, guidance: P.synthetic.guidance, batchSize: P.synthetic.batch, height: P.imageSize, width: P.imageSize };
  const entries: DriftEntry[] = [];
  const pics: string[] = [];
  const baseGen = generatorFromPipeline(await StableDiffusionPipeline.fromPretrained(o.baseModel), opts);
  // every variant is compared with the same base samples (same prompts, same seeds): drawn once
  const base = memoized(baseGen.generate);
  for (const v of o.dreambooth) {
    const tuned = generatorFromPipeline(await StableDiffusionPipeline.fromPretrained(v.model), opts);
    const inDomain: Record<string, string | null> = { [o.classPrompt]: null, ...Object.fromEntries(common.map((c) => [classPromptOf(c), c])) };
    const r = await measureDrift({ base, tuned: tuned.generate, variant: v.name, scorer: o.scorer, rareClass: o.rare, inDomain, probes: o.probes, samples: P.drift.samples, seed: o.seed });
    tuned.dispose();
    entries.push(...r.entries);
    const file = join(dir, `${v.name}.png`);
    await sideBySideGrid(r.grids.map((x) => ({ label: x.prompt, base: x.base.slice(0, 4), tuned: x.tuned.slice(0, 4) })), file);
    pics.push(file);
  }
  baseGen.dispose();
  return { entries, pics };
}
