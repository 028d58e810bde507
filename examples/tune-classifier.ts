/**
 * Chooses the study arms' classifier budget and optimiser settings on ONE seed's VALIDATION images
 * (never test): each candidate overrides the profile's `classifier` settings, trains the named control
 * arms (baseline by default) on the seed's training split, and is scored on the validation split:
 * balanced accuracy, mean AUC and the rare class's recall and AUC. The runs skip the trainer's final test
 * evaluation: the best checkpoint scores the validation images, and no test image is scored.
 *
 *   npm run tune-classifier -- [--profile quick] [--data <folder>] [--out runs/study-quick] [--seed 0]
 *        [--arms baseline,oversample] [--candidates '[{}, {"epochs": 10, "maxStepsPerEpoch": 30}]']
 *
 * The trainer keeps the weights of the epoch with the best validation mean AUC, so each figure is
 * measured on the images that chose its epoch: optimistic, and alike for every candidate. The choice is
 * the highest validation balanced accuracy averaged over the arms; candidates within 0.02 of it go to
 * the one with the fewest training steps (the study trains every arm on every seed).
 *
 * Writes <out>/tune-classifier/seed-<seed>.{json,md}.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ft from '@foliar/tensor';
import { writeFileAtomic } from '@foliar/tensor';
import { armMetrics, loadTrainedModel, resolveConfig, splitIds, train, type TrainConfig } from '@foliar/classifier';
import { reportCliError } from '@foliar/nn';
import { parseCandidateList, type SettingChecks } from './lib/candidates.js';
import { studyProfile, type StudyProfile } from './study/profiles.js';
import { StageRunner } from './study/stages.js';
import { imagesOf, loadStudyData, studySplits } from './study/data.js';
import { classifierScorer } from './study/features.js';
import { CONTROL_ARMS, classifierBaseConfig, splitStage } from './study/arms.js';

type ClassifierSettings = StudyProfile['classifier'];

/** Settings a candidate may override, and the check each value must pass. */
const TUNABLE: SettingChecks = {
  epochs: (v) => Number.isInteger(v) && (v as number) > 0,
  maxStepsPerEpoch: (v) => Number.isInteger(v) && (v as number) > 0,
  batchSize: (v) => Number.isInteger(v) && (v as number) > 0,
  warmupEpochs: (v) => Number.isInteger(v) && (v as number) >= 0,
  lr: (v) => typeof v === 'number' && Number.isFinite(v) && v > 0,
  weightDecay: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0,
  optimizer: (v) => v === 'adamw' || v === 'sgd',
  arch: (v) => typeof v === 'string' && v.length > 0,
};

/** The default grid: the profile's budget and two longer ones (the arms' cost grows with steps). */
function candidates(p: StudyProfile): Partial<ClassifierSettings>[] {
  const steps = p.classifier.maxStepsPerEpoch ?? 30;
  const epochs = p.classifier.epochs ?? 1;
  return [{}, { epochs: epochs * 2, maxStepsPerEpoch: Math.max(steps, 30) }, { epochs: epochs * 3, maxStepsPerEpoch: Math.max(steps, 30) }];
}

const stepsOf = (s: ClassifierSettings) => (s.epochs ?? 1) * (s.maxStepsPerEpoch ?? Number.POSITIVE_INFINITY);
const labelOf = (s: ClassifierSettings) => `${s.arch}, ${s.optimizer} lr ${s.lr}, ${s.epochs ?? 1}×${s.maxStepsPerEpoch ?? 'all'} steps of ${s.batchSize}`;
const f = (v: number | null | undefined, d = 2) => (v == null ? 'n/a' : v.toFixed(d));

interface ValidationRun { labels: number[]; probs: number[]; seconds: number; steps: number; bestEpoch: number | null }

/** Trains one candidate arm (resuming in `dir`) and scores its best weights on the validation images. */
async function trainOnValidation(config: TrainConfig, dir: string, classNames: readonly string[], images: Parameters<ReturnType<typeof classifierScorer>['probabilities']>[0], labels: number[]): Promise<ValidationRun> {
  const runDir = join(dir, 'run');
  const r = await train(config, { runDir, resume: existsSync(join(runDir, 'checkpoints')), verbose: false, skipReport: true });
  if (r.interrupted) throw new Error(`tune-classifier: the run in ${runDir} was interrupted: run the same command again to continue`);
  const checkpoint = r.bestCheckpoint ?? join(runDir, 'checkpoints', 'best');
  if (!existsSync(checkpoint)) throw new Error(`tune-classifier: no best checkpoint at ${checkpoint}`);
  const loaded = await loadTrainedModel(checkpoint);
  try {
    const probs = await classifierScorer(loaded.model, { classNames, imageSize: config.imageSize }).probabilities(images);
    return { labels, probs: [...probs].map((v) => Number(v.toFixed(6))), seconds: r.seconds, steps: r.globalStep, bestEpoch: r.bestEpoch };
  } finally {
    loaded.model.dispose?.();
  }
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      profile: { type: 'string', default: 'quick' },
      data: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string', default: '0' },
      class: { type: 'string', default: 'multiple_diseases' },
      arms: { type: 'string', default: 'baseline' },
      candidates: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (args.help) {
    console.log('usage: npm run tune-classifier -- [--profile quick] [--data <folder>] [--out <study run folder>] [--seed 0] [--arms baseline,oversample] [--candidates \'[{}, {"epochs": 10, "maxStepsPerEpoch": 30}]\']');
    return;
  }
  const P = studyProfile(args.profile);
  const tried = args.candidates ? parseCandidateList<ClassifierSettings>(args.candidates, TUNABLE) : candidates(P);
  const seed = Number(args.seed);
  if (!P.seeds.includes(seed)) throw new Error(`--seed ${args.seed}: not a seed of the ${P.name} profile (${P.seeds.join(', ')})`);
  const armNames = args.arms!.split(',').map((s) => s.trim()).filter(Boolean);
  const specs = armNames.map((n) => {
    const spec = CONTROL_ARMS.find((a) => a.name === n);
    if (!spec) throw new Error(`--arms: unknown arm "${n}" (control arms: ${CONTROL_ARMS.map((a) => a.name).join(', ')})`);
    return spec;
  });
  if (specs.length === 0) throw new Error('--arms: name at least one control arm');
  const out = resolve(args.out ?? join('runs', `study-${P.name}`));
  const dataDir = args.data ? resolve(args.data) : null;
  const rare = args.class!;
  await ft.init({ backend: 'auto' });
  const runner = new StageRunner(out);
  const data = await loadStudyData(P, dataDir);
  if (!data.set.classNames.includes(rare)) throw new Error(`--class ${rare}: not a class of the data (${data.set.classNames.join(', ')})`);
  const split = studySplits(P, data.set)[P.seeds.indexOf(seed)]!;
  const ids = splitIds(split);
  const valImages = await imagesOf(data, split.val.items);
  const valLabels = split.val.items.map((it) => it.label);

  const rows: { settings: ClassifierSettings; arm: string; metrics: ReturnType<typeof armMetrics>; seconds: number; steps: number }[] = [];
  for (const c of tried) for (const spec of specs) {
    const settings = { ...P.classifier, ...c } as ClassifierSettings;
    const base: Partial<TrainConfig> = { ...classifierBaseConfig(P, data), ...c };
    const config = resolveConfig(base, spec.config, { seed, split: ids });
    const r = await runner.run('tune-classifier', seed, { arm: spec.name, config }, [splitStage(split, out)], (dir) => trainOnValidation(config, dir, data.set.classNames, valImages, valLabels));
    const m = armMetrics(r.value.labels, r.value.probs, data.set.classNames);
    rows.push({ settings, arm: spec.name, metrics: m, seconds: r.value.seconds, steps: stepsOf(settings) });
    console.log(`${labelOf(settings)}, ${spec.name}: validation balanced accuracy ${f(m.overall?.balanced_accuracy)}, mean AUC ${f(m.overall?.mean_auc)}, ${rare} recall ${f(m[rare]?.recall)} AUC ${f(m[rare]?.auc)} (${r.value.seconds.toFixed(0)} s)`);
  }
  const byCandidate = tried.map((_, i) => rows.slice(i * specs.length, (i + 1) * specs.length));
  const score = (rs: typeof rows) => rs.reduce((a, r) => a + (r.metrics.overall?.balanced_accuracy ?? 0), 0) / rs.length;
  const top = Math.max(...byCandidate.map(score));
  const chosen = byCandidate.filter((rs) => score(rs) >= top - 0.02).sort((a, b) => a[0]!.steps - b[0]!.steps)[0]![0]!.settings;

  const dir = join(out, 'tune-classifier');
  await writeFileAtomic(join(dir, `seed-${seed}.json`), JSON.stringify({ profile: P.name, seed, rareClass: rare, arms: armNames, validationImages: ids.val.length, runs: rows, chosen }, null, 2) + '\n');
  const md = [
    `# The arms' classifier on seed ${seed}'s validation images (${P.name} profile)`, '',
    `${ids.val.length} validation images; test images not read. Each run keeps the epoch with the best validation mean AUC, so every figure is optimistic by the same rule.`, '',
    `| classifier | arm | balanced accuracy | mean AUC | ${rare} recall | ${rare} AUC | train s |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${labelOf(r.settings)} | ${r.arm} | ${f(r.metrics.overall?.balanced_accuracy)} | ${f(r.metrics.overall?.mean_auc, 3)} | ${f(r.metrics[rare]?.recall)} | ${f(r.metrics[rare]?.auc, 3)} | ${r.seconds.toFixed(0)} |`),
    '', `Chosen (highest mean balanced accuracy over the arms; within 0.02 the fewest steps): ${labelOf(chosen)}`, '',
  ].join('\n');
  await writeFileAtomic(join(dir, `seed-${seed}.md`), md);
  console.log(`\n${md}\nwritten to ${dir}`);
  ft.shutdown();
}

main().catch((e) => reportCliError('tune-classifier', e));
