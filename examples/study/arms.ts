/**
 * The classifier arms: one training run per arm and seed on that seed's split (the same train, val
 * and test ids for every arm), and their aggregation over seeds into the report's figures: means
 * with 95% t-intervals and paired differences against `baseline` and `control`.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { train, resolveConfig, splitIds, armMetrics, summarize, pairedDifference, confusionMatrix, argmaxRows, type TrainConfig, type ProtocolSplit } from '@foliar/classifier';
import type { ArmMetrics, ArmReport } from './report-types.js';
import { hashOf, type StageRunner, type StageResult } from './stages.js';
import { splitsJson } from '@foliar/classifier';
import type { StudyProfile } from './profiles.js';
import type { StudyData } from './data.js';

/** The classifier configuration every arm (and the gate classifier) starts from. */
export function classifierBaseConfig(p: StudyProfile, data: StudyData): Partial<TrainConfig> {
  return { ...p.classifier, data: data.classifierData, counts: data.poolCounts, syntheticSeed: 0, heldOutTest: 0 };
}

/** A seed's split as a stage dependency: stages that read it rerun when its image ids change. */
export function splitStage(split: ProtocolSplit, runDir: string): StageResult<unknown> {
  return { key: hashOf(splitsJson([split])), dir: runDir, value: null, seconds: 0, cached: true };
}

export interface ArmRun {
  arm: string;
  seed: number;
  runDir: string;
  /** Test image ids, labels and N×C probabilities (row-major), aligned. */
  ids: string[];
  labels: number[];
  probs: number[];
  metrics: Record<string, Record<string, number | null>>;
  trainCounts: number[];
  extraCounts: number[];
  seconds: number;
}

export interface ArmSpec {
  name: string;
  description: string;
  /** What this arm changes in the classifier's configuration (balanced sampling, class weights, extra images). */
  config: Partial<TrainConfig>;
}

/** The simple controls every synthetic arm is compared with: they need only the training split. */
export const CONTROL_ARMS: readonly ArmSpec[] = [
  { name: 'baseline', description: 'the imbalanced training split as it is', config: {} },
  { name: 'oversample', description: 'class-balanced sampling of the training split (with replacement)', config: { balancedSampling: true } },
  { name: 'class_weight', description: 'cross-entropy weighted by inverse class frequency', config: { classWeights: 'inverse' } },
];

/** The classifier configuration of one arm on one seed's split (its stage's config, so its cache key). */
export function armConfig(spec: ArmSpec, seed: number, base: Partial<TrainConfig>, split: ProtocolSplit): TrainConfig {
  return resolveConfig(base, spec.config, { seed, split: splitIds(split) });
}

/** The body of an arm's stage: trains (resuming from `dir`'s checkpoints) and evaluates on the test split. */
export async function trainArm(arm: string, seed: number, config: TrainConfig, dir: string, signal?: AbortSignal): Promise<ArmRun> {
  const runDir = join(dir, 'run');
  const r = await train(config, { runDir, resume: existsSync(join(runDir, 'checkpoints')), signal, verbose: false });
  if (r.interrupted || !r.test) throw new Error(`arm ${arm} (seed ${seed}) interrupted: run the same command again to continue`);
  return {
    arm,
    seed,
    runDir,
    ids: r.test.ids,
    labels: [...r.test.labels],
    probs: [...r.test.probs].map((v) => Number(v.toFixed(6))),
    metrics: armMetrics(r.test.labels, r.test.probs, r.classNames),
    trainCounts: r.data.trainCounts,
    extraCounts: r.data.extraCounts,
    seconds: r.seconds,
  };
}

/** Trains (or reuses) one arm on one seed's split. */
export async function runArm(
  runner: StageRunner, spec: ArmSpec, seed: number, base: Partial<TrainConfig>, split: ProtocolSplit, deps: readonly StageResult<unknown>[], signal?: AbortSignal,
): Promise<StageResult<ArmRun>> {
  const config = armConfig(spec, seed, base, split);
  return runner.run(`arm-${spec.name}`, seed, config, deps, (dir) => trainArm(spec.name, seed, config, dir, signal));
}

/** metrics.<key>.<metric> over seeds (same seed order for every arm: paired). */
function collect(runs: ArmRun[]): Map<string, Map<string, (number | null)[]>> {
  const out = new Map<string, Map<string, (number | null)[]>>();
  for (const r of runs) {
    for (const [key, ms] of Object.entries(r.metrics)) {
      if (!out.has(key)) out.set(key, new Map());
      for (const [m, v] of Object.entries(ms)) {
        const list = out.get(key)!.get(m) ?? [];
        list.push(v);
        out.get(key)!.set(m, list);
      }
    }
  }
  return out;
}

function statsOf(runs: ArmRun[]): ArmMetrics {
  const m: ArmMetrics = {};
  for (const [key, ms] of collect(runs)) m[key] = Object.fromEntries([...ms].map(([name, vals]) => [name, summarize(vals)]));
  return m;
}

function diffOf(runs: ArmRun[], ref: ArmRun[]): ArmMetrics {
  const a = collect(runs), b = collect(ref);
  const m: ArmMetrics = {};
  for (const [key, ms] of a) {
    m[key] = Object.fromEntries([...ms].map(([name, vals]) => [name, pairedDifference(vals, b.get(key)?.get(name) ?? vals.map(() => null))]));
  }
  return m;
}

/** The report's entry for one arm; `runs` and the references are ordered by seed. */
export function armReport(spec: ArmSpec, runs: ArmRun[], baseline: ArmRun[], control: ArmRun[] | null, numClasses: number, reportDir: string, predictionFiles: string[]): ArmReport {
  const confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (const r of runs) {
    const cm = confusionMatrix(r.labels, argmaxRows(r.probs, numClasses), numClasses);
    cm.forEach((row, t) => row.forEach((v, p) => (confusion[t]![p]! += v)));
  }
  const extraClass = spec.config.extraTrain?.[0]?.className;
  return {
    name: spec.name,
    description: spec.description,
    seeds: runs.map((r) => r.seed),
    metrics: statsOf(runs),
    diff_vs_baseline: diffOf(runs, baseline),
    ...(control && spec.name !== 'control' ? { diff_vs_control: diffOf(runs, control) } : {}),
    confusion,
    ...(extraClass ? { extra_images: { class_name: extraClass, per_seed: runs.map((r) => r.extraCounts.reduce((a, b) => a + b, 0)) } } : {}),
    predictions: Object.fromEntries(runs.map((r, i) => [String(r.seed), relative(reportDir, predictionFiles[i]!)])),
  };
}
