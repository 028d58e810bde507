/**
 * A realistic StudyReport for tests of the report renderers: 2 seeds, the study's 7 arms with metrics
 * computed from generated confusion matrices (so precision, F1 and intervals are mutually consistent),
 * gates, drift, a few nulls where the pipeline really produces them, and hostile strings ("</script>",
 * U+2028) where a renderer could break.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng } from '@foliar/report';
import { prng } from '../prng.js';
import type { ArmMetrics, ArmReport, DriftEntry, GateEntry, ReportImage, Stat, StudyReport } from '../../examples/study/report-types.js';


export const CLASSES = ['healthy', 'multiple_diseases', 'rust', 'scab'];
export const RARE = 'multiple_diseases';
export const SEEDS = [0, 1];
export const ARMS = ['baseline', 'oversample', 'class_weight', 'control', 'dreambooth', 'dreambooth_no_prior', 'dreambooth_filtered'];
export const HOSTILE = 'a red car </script><script>alert("x")</script> <!-- & \u2028';

/** Two-sided 95% t quantiles for 1..10 degrees of freedom. */
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

export function stat(perSeed: (number | null)[]): Stat {
  const xs = perSeed.filter((v): v is number => v !== null);
  if (!xs.length) return { mean: null, ci95: null, per_seed: perSeed };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return { mean, ci95: null, per_seed: perSeed };
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
  const half = (T95[xs.length - 2] ?? 1.96) * sd / Math.sqrt(xs.length);
  return { mean, ci95: [mean - half, mean + half], per_seed: perSeed };
}

/** Per-class recall the arms aim at (healthy, multiple_diseases, rust, scab). */
const RECALL: Record<string, number[]> = {
  baseline: [0.78, 0.1, 0.9, 0.86],
  oversample: [0.75, 0.22, 0.88, 0.84],
  class_weight: [0.74, 0.25, 0.88, 0.83],
  control: [0.76, 0.2, 0.89, 0.85],
  dreambooth: [0.74, 0.33, 0.88, 0.84],
  dreambooth_no_prior: [0.73, 0.27, 0.87, 0.83],
  dreambooth_filtered: [0.75, 0.36, 0.89, 0.85],
};
const DESCRIPTION: Record<string, string> = {
  baseline: 'ResNet18 from scratch on the imbalanced training split.',
  oversample: 'Rare-class images repeated until the classes are balanced.',
  class_weight: 'Cross-entropy weighted by the inverse class frequency.',
  control: '400 images of the base model (never saw the rare class) labelled as the rare class.',
  dreambooth: '400 DreamBooth images (with prior preservation) of the rare class.',
  dreambooth_no_prior: '400 DreamBooth images trained without prior preservation.',
  dreambooth_filtered: 'DreamBooth images the baseline classifier accepted as the rare class.',
};
const TEST_PER_CLASS = 100;

type SeedMetrics = Record<string, Record<string, number | null>>;

/** One seed of one arm: a confusion matrix around the target recalls, and the metrics it implies. */
function seedRun(arm: string, seed: number, armIndex: number): { confusion: number[][]; m: SeedMetrics } {
  const r = prng(7919 * (seed + 1) + 104729 * (armIndex + 1));
  const k = CLASSES.length;
  const rare = CLASSES.indexOf(RARE);
  // the baseline's second seed never predicts the rare class: precision and F1 are undefined there
  const neverRare = arm === 'baseline' && seed === 1;
  const confusion = CLASSES.map((_, i) => {
    const recall = neverRare && i === rare ? 0 : Math.min(0.98, Math.max(0, RECALL[arm]![i]! + (r() - 0.5) * 0.12));
    const row = new Array<number>(k).fill(0);
    row[i] = Math.round(recall * TEST_PER_CLASS);
    let left = TEST_PER_CLASS - row[i]!;
    const others = CLASSES.map((_, j) => j).filter((j) => j !== i && !(neverRare && j === rare));
    for (let n = 0; n < others.length; n++) {
      const j = others[n]!;
      const take = n === others.length - 1 ? left : Math.round(left * (j === rare ? 0.15 : 0.3 + r() * 0.4));
      row[j] = take;
      left -= take;
    }
    return row;
  });
  const m: SeedMetrics = {};
  const recalls: number[] = [];
  const aucs: number[] = [];
  CLASSES.forEach((c, i) => {
    const tp = confusion[i]![i]!;
    const predicted = confusion.reduce((a, row) => a + row[i]!, 0);
    const recall = tp / TEST_PER_CLASS;
    const precision = predicted ? tp / predicted : null;
    const f1 = precision === null || precision + recall === 0 ? null : (2 * precision * recall) / (precision + recall);
    // one AUC the pipeline could not compute (a seed whose scores were all equal)
    const auc = arm === 'dreambooth_filtered' && seed === 1 && c === RARE ? null
      : i === rare ? 0.7 + RECALL[arm]![i]! * 0.4 + (r() - 0.5) * 0.04 : 0.9 + r() * 0.07;
    recalls.push(recall);
    if (auc !== null) aucs.push(auc);
    m[c] = { recall, precision, f1, auc };
  });
  m['overall'] = { balanced_accuracy: recalls.reduce((a, b) => a + b, 0) / k, mean_auc: aucs.reduce((a, b) => a + b, 0) / aucs.length };
  return { confusion, m };
}

function toMetrics(perSeed: SeedMetrics[], minus?: SeedMetrics[]): ArmMetrics {
  const out: ArmMetrics = {};
  for (const group of Object.keys(perSeed[0]!)) {
    const g: Record<string, Stat> = {};
    for (const metric of Object.keys(perSeed[0]![group]!)) {
      g[metric] = stat(perSeed.map((s, i) => {
        const v = s[group]![metric]!;
        if (!minus) return v;
        const w = minus[i]![group]![metric]!;
        return v === null || w === null ? null : v - w;
      }));
    }
    out[group] = g;
  }
  return out;
}

function arms(): ArmReport[] {
  const runs = new Map(ARMS.map((a, ai) => [a, SEEDS.map((s) => seedRun(a, s, ai))]));
  const metricsOf = (a: string) => runs.get(a)!.map((x) => x.m);
  return ARMS.map((name) => {
    const seedRuns = runs.get(name)!;
    const confusion = CLASSES.map((_, i) => CLASSES.map((_, j) => seedRuns.reduce((a, x) => a + x.confusion[i]![j]!, 0)));
    const synthetic = name === 'control' || name.startsWith('dreambooth');
    return {
      name,
      description: DESCRIPTION[name]!,
      seeds: SEEDS,
      metrics: toMetrics(metricsOf(name)),
      diff_vs_baseline: toMetrics(metricsOf(name), metricsOf('baseline')),
      ...(name.startsWith('dreambooth') ? { diff_vs_control: toMetrics(metricsOf(name), metricsOf('control')) } : {}),
      confusion,
      ...(synthetic ? { extra_images: { class_name: RARE, per_seed: name === 'dreambooth_filtered' ? [312, 297] : [400, 400] } } : {}),
      predictions: Object.fromEntries(SEEDS.map((s) => [String(s), `arms/${name}/seed-${s}/predictions.csv`])),
    };
  });
}

function gates(): GateEntry[] {
  const out: GateEntry[] = [];
  const r = prng(77);
  for (const seed of SEEDS) {
    for (const c of CLASSES) {
      const value = c === RARE && seed === 1 ? 0.062 : 0.005 + r() * 0.03;
      out.push({ stage: 'vae', name: `recon_accuracy_drop.${c}`, seed, value, target: { op: '<=', value: 0.05 }, passed: value <= 0.05,
        detail: 'baseline accuracy on test images minus accuracy on their VAE reconstructions' });
    }
    const cond = seed === 1 ? null : 0.71;
    out.push({ stage: 'base_model', name: 'conditioning_score', seed, value: cond, target: { op: '>=', value: 0.6 }, passed: cond !== null && cond >= 0.6,
      detail: 'share of class-prompted samples the baseline assigns to the prompted class' });
    out.push({ stage: 'dreambooth', name: 'rare_share', seed, value: 0.58 + seed * 0.05, target: { op: '>=', value: 0.5 }, passed: true,
      detail: 'share of instance-prompt samples classified as the rare class' });
    out.push({ stage: 'dreambooth_no_prior', name: 'rare_share', seed, value: 0.66 - seed * 0.04 });
    out.push({ stage: 'verification', name: 'nn_feature_distance', seed, value: 3.1 + r(), target: { op: '>=', value: 2 }, passed: true,
      detail: 'mean nearest-neighbour L2 distance of ResNet avgpool features, synthetic to instance images' });
  }
  return out;
}

function drift(): DriftEntry[] {
  const out: DriftEntry[] = [];
  const r = prng(99);
  for (const seed of SEEDS) {
    for (const variant of ['dreambooth', 'dreambooth_no_prior']) {
      const forget = variant === 'dreambooth_no_prior' ? 0.25 : 0.05;
      for (const [c, prompt] of [['healthy', 'a photo of a healthy apple leaf'], ['rust', 'a photo of an apple leaf with rust'], ['scab', 'a photo of an apple leaf with scab']] as const) {
        const before = 0.7 + r() * 0.2;
        out.push({ seed, variant, prompt, kind: 'in_domain', samples: 32, prompted_share_before: before, prompted_share_after: Math.max(0, before - forget - r() * 0.1),
          rare_share_before: 0.02 + r() * 0.03, rare_share_after: c === 'healthy' ? 0.05 + forget : 0.04 + forget * 0.6 });
      }
      for (const prompt of ['a photo of a dog', HOSTILE]) {
        out.push({ seed, variant, prompt, kind: 'probe', samples: 16, feature_distance: (variant === 'dreambooth_no_prior' ? 9 : 5.5) + r() * 2,
          reference_distance: seed === 1 && prompt !== HOSTILE ? null : 7 + r() });
      }
    }
  }
  return out;
}

/** The sample report; `images` are the entries of report.images (paths relative to the report's folder). */
export function sampleStudyReport(opts: { images?: ReportImage[] } = {}): StudyReport {
  const split = (scale: number) => ({ healthy: Math.round(516 * scale), multiple_diseases: Math.round(91 * scale), rust: Math.round(622 * scale), scab: Math.round(592 * scale) });
  const test = Object.fromEntries(CLASSES.map((c) => [c, TEST_PER_CLASS]));
  return {
    title: 'Synthetic rare-class images for apple-leaf disease classification',
    profile: 'quick',
    created: '2025-12-04T03:14:15.000Z',
    adapter: 'llvmpipe (LLVM 19.1.7, 256 bits) · Vulkan · lavapipe (Mesa 25.0.7)',
    rare_class: RARE,
    class_names: CLASSES,
    seeds: SEEDS,
    method: 'lora',
    data: {
      source: '../shared/data/leaves (Plant Pathology 2020 photographs, subsampled to the Kaggle training counts)',
      dedup: { images: 3651, unique: 3642, duplicate_groups: 9, conflicting_groups: 1, removed: 10 },
      splits: Object.fromEntries(SEEDS.map((s) => [String(s), { train: split(0.9), val: split(0.1), test }])),
      generator_data: 'VAE: every training image of seed 0 (all classes).\nBase model: training images of healthy, rust and scab only; it never saw multiple_diseases.\nDreamBooth: the rare class\'s training images of each seed as instance images.',
    },
    arms: arms(),
    gates: gates(),
    drift: drift(),
    instance_ids: Object.fromEntries(SEEDS.map((s) => [String(s), Array.from({ length: 82 - s }, (_, i) => `Train_${100 + 17 * i + s}`)])),
    verification: {
      per_seed: [
        { seed: 0, scored: 400, accepted: 312, threshold: 0.41, mean_rare_probability: 0.52 },
        { seed: 1, scored: 400, accepted: 297, threshold: 0.38, mean_rare_probability: 0.49 },
      ],
      detail: 'The baseline classifier of the same seed scores every synthetic image; the threshold on its rare-class probability is fixed on the validation split (recall 0.8 of real rare images).',
    },
    images: opts.images ?? [],
    timings: [
      { stage: 'dedup', seed: null, seconds: 41.2, cached: true },
      { stage: 'vae', seed: null, seconds: 1843, cached: true },
      { stage: 'base_model', seed: null, seconds: 5230.5, cached: true },
      ...SEEDS.flatMap((seed) => [
        { stage: 'dreambooth', seed, seconds: 1580 + seed * 30, cached: seed === 0 },
        { stage: 'generate', seed, seconds: 2410.4, cached: false },
        ...ARMS.map((a, i) => ({ stage: `train:${a}`, seed, seconds: 420 + i * 13.3, cached: false })),
      ]),
    ],
    config: {
      profile: 'quick',
      classifier: { epochs: 6, image_size: 64, lr: 0.02, optimizer: 'sgd-nesterov', batch_size: 32 },
      dreambooth: { method: 'lora', rank: 8, steps: 400, prior_loss_weight: 1, instance_prompt: 'a photo of a <diseased-leaf> leaf' },
      generate: { count: 400, steps: 25, guidance: 7.5, negative_prompt: HOSTILE },
      drift: { probe_prompts: ['a photo of a dog', HOSTILE] },
    },
    findings: [
      'DreamBooth images raised multiple_diseases recall over the baseline, but the 95% intervals over 2 seeds are wide.',
      'Against the control (400 base-model images with the same label), the gain is smaller: most of it is label rebalancing.',
      'Without prior preservation the model forgot the other classes more (in-domain drift) and drew unrelated prompts differently.',
      'One VAE gate failed on seed 1 (reconstruction costs multiple_diseases 6.2 points of accuracy); the base model\'s conditioning score could not be computed on seed 1.',
      `Strings are shown as text, never markup: ${HOSTILE}`,
    ],
  };
}

/** Writes two small real PNGs (a leaf-like gradient and a 2x2 grid) under dir and returns their report entries. */
export function writeFixtureImages(dir: string): ReportImage[] {
  const img = (w: number, h: number, f: (x: number, y: number) => [number, number, number]) => {
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(f(x, y), (y * w + x) * 3);
    return encodePng({ width: w, height: h, channels: 3, data });
  };
  mkdirSync(join(dir, 'images'), { recursive: true });
  writeFileSync(join(dir, 'images', 'leaves.png'), img(48, 32, (x, y) => [40 + x * 3, 120 + y * 3, 60]));
  writeFileSync(join(dir, 'images', 'synthetic grid.png'), img(64, 64, (x, y) => ((x >> 5) + (y >> 5)) % 2 ? [180, 60, 50] : [70, 150, 70]));
  return [
    { path: 'images/leaves.png', caption: 'Training images per class (seed 0)', section: 'data' },
    { path: 'images/synthetic grid.png', caption: 'Synthetic multiple_diseases images, accepted and rejected', section: 'verification' },
  ];
}
