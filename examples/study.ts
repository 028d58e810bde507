/**
 * The study end to end: does a fine-tuned diffusion model's synthetic data help the classifier on the
 * rare class?
 *
 *   1. baseline/        ResNet18 on the leaves with the Plant Pathology 2020 imbalance (as `npm run experiment`)
 *   2. synthetic/       --count images of the instance prompt from the DreamBooth model, one seed each
 *   3. verify.json      the baseline classifier scores those images: do they look like the rare class?
 *                       (the study's wish for "a way to verify that synthetic images really show the class")
 *   4. with-synthetic/  the same training (same seed, split and test set) with the synthetic images added
 *                       to the rare class's training split only
 *   5. study.md, study.json, study.png, verify.png   baseline vs with synthetic, per class
 *
 *   npm run study -- --model runs/dreambooth-leaves/dreambooth/final --data ../shared/data/leaves
 *   npm run study -- --synthetic-dir <folder of images> --data ../shared/data/leaves   # images made elsewhere
 *
 * Every stage keeps its result under --out (default runs/study) and is skipped when done, or resumed
 * (classifier runs, interrupted image sets) when it stopped half-way: re-running continues the study.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ft from '@foliar/tensor';
import { writeFileAtomic } from '@foliar/tensor';
import { barChart, encodePng, imageGrid, readPng } from '@foliar/nn';
import { StableDiffusionPipeline, LoRA, generateImageSet } from '@foliar/diffusion';
import {
  train, resolveConfig, loadTrainedModel, predictImages, listImages, PP2020_COUNTS,
  type TrainConfig, type ClassificationReport,
} from '@foliar/classifier';
import { CLASSIFIER_PROFILES, profileOf, intFlag } from './lib/profiles.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    lora: { type: 'string' },
    'synthetic-dir': { type: 'string' },
    prompt: { type: 'string', default: 'a photo of a <diseaes-leaf> leaf' },
    class: { type: 'string', default: 'multiple_diseases' },
    count: { type: 'string', default: '400' },
    steps: { type: 'string', default: '25' },
    guidance: { type: 'string', default: '7.5' },
    'batch-size': { type: 'string', default: '8' },
    data: { type: 'string' },
    profile: { type: 'string', default: 'quick' },
    epochs: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string', default: join('runs', 'study') },
    backend: { type: 'string' },
  },
});
if (!args.model === !args['synthetic-dir']) throw new Error('give --model <DreamBooth pipeline folder> (to generate the synthetic images) or --synthetic-dir <folder> (images made elsewhere), not both');
const profile = profileOf(args.profile);
const count = intFlag(args.count, 'count')!;
if (count < 1) throw new Error(`--count must be positive, got ${count}`);
const guidance = Number(args.guidance);
if (!Number.isFinite(guidance)) throw new Error(`--guidance must be a number, got "${args.guidance}"`);
const out = resolve(args.out!);
const rareClass = args.class!;

const backend = await ft.init({ backend: (args.backend as 'webgpu' | 'cpu' | undefined) ?? 'auto' });
console.log(`foliar study (${profile}) on ${backend.describe()}; results in ${out}`);
const ac = new AbortController();
process.on('SIGINT', () => {
  if (ac.signal.aborted) process.exit(130);
  process.stderr.write('\nstopping after this step (Ctrl-C again to quit at once); re-run the same command to continue…\n');
  ac.abort();
});

const base: Partial<TrainConfig> = {
  arch: 'resnet18',
  data: args.data ? resolve(args.data) : null,
  counts: { ...PP2020_COUNTS },
  epochs: intFlag(args.epochs, 'epochs'),
  seed: intFlag(args.seed, 'seed'),
};

interface RunSummary {
  classNames: string[];
  report: ClassificationReport;
  trainCounts: Record<string, number>;
  extraTrainCounts?: Record<string, number>;
}

/** A classifier run in `dir`: read when finished, resumed when interrupted, else trained. */
async function classifierRun(dir: string, config: TrainConfig, label: string): Promise<RunSummary | null> {
  const reportPath = join(dir, 'report.json');
  if (!existsSync(reportPath)) {
    const resume = existsSync(join(dir, 'checkpoints'));
    console.log(`\n== ${label}: ${resume ? 'resuming' : 'training'} in ${dir}`);
    const r = await train(config, { runDir: dir, resume, signal: ac.signal });
    if (r.interrupted) return null;
  } else console.log(`\n== ${label}: done before, reading ${reportPath}`);
  const json = JSON.parse(readFileSync(reportPath, 'utf8')) as ClassificationReport & { extra?: { trainCounts: Record<string, number>; extraTrainCounts?: Record<string, number> } };
  return { classNames: json.perClass.map((c) => c.name), report: json, trainCounts: json.extra?.trainCounts ?? {}, ...(json.extra?.extraTrainCounts ? { extraTrainCounts: json.extra.extraTrainCounts } : {}) };
}

function finish(code = 0): never {
  ft.shutdown();
  process.exit(code);
}

// 1. baseline
const baseConfig = resolveConfig(CLASSIFIER_PROFILES[profile], base);
const baseline = await classifierRun(join(out, 'baseline'), baseConfig, 'baseline classifier');
if (!baseline) finish(130);
if (!baseline.classNames.includes(rareClass)) throw new Error(`--class ${rareClass} is not one of the classes ${baseline.classNames.join(', ')}`);

// 2. synthetic images
let syntheticDir: string;
if (args['synthetic-dir']) {
  syntheticDir = resolve(args['synthetic-dir']);
} else {
  syntheticDir = join(out, 'synthetic');
  console.log(`\n== synthetic images: ${count} of "${args.prompt}" from ${args.model}${args.lora ? ` + LoRA ${args.lora}` : ''}`);
  const pipe = await StableDiffusionPipeline.fromPretrained(resolve(args.model!));
  if (args.lora) (await LoRA.fromPretrained(pipe, resolve(args.lora))).merge();
  const t0 = performance.now();
  const r = await generateImageSet(pipe, {
    prompt: args.prompt!, count, seed: intFlag(args.seed, 'seed') ?? 0, batchSize: intFlag(args['batch-size'], 'batch-size'),
    numInferenceSteps: intFlag(args.steps, 'steps'), guidanceScale: guidance, outDir: syntheticDir, prefix: 'synthetic',
  });
  console.log(`${r.generated} generated, ${r.reused} kept from before (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  pipe.dispose();
}
const syntheticFiles = (await listImages([syntheticDir])).slice(0, count);

// 3. verification by the baseline classifier
const { model, info } = await loadTrainedModel(join(out, 'baseline'));
model.eval();
const preds = await predictImages(model, syntheticFiles, { imageSize: info.imageSize, numClasses: info.classNames.length });
model.dispose();
const rare = info.classNames.indexOf(rareClass);
const predicted = info.classNames.map((_, c) => preds.filter((p) => p.probs.indexOf(Math.max(...p.probs)) === c).length);
const meanProb = preds.reduce((a, p) => a + p.probs[rare]!, 0) / preds.length;
const realRecall = baseline.report.perClass[rare]!.recall;
const verify = {
  images: preds.length, class: rareClass,
  shareClassifiedAsClass: predicted[rare]! / preds.length,
  meanProbability: meanProb,
  predictedCounts: Object.fromEntries(info.classNames.map((c, i) => [c, predicted[i]])),
  realHeldOutRecall: realRecall,
};
await writeFileAtomic(join(out, 'verify.json'), JSON.stringify(verify, null, 2) + '\n');
await writeFileAtomic(join(out, 'verify.png'), encodePng(barChart({
  labels: info.classNames, values: predicted.map((n) => n / preds.length), yMax: 1,
  title: `Baseline classifier on ${preds.length} synthetic "${rareClass}" images: predicted class`,
})));
const sample = syntheticFiles.slice(0, 16).map((f) => readPng(f));
await writeFileAtomic(join(out, 'synthetic-sample.png'), encodePng(imageGrid(sample, { cols: 8, title: `synthetic ${rareClass} (first ${sample.length})` })));
console.log(`\nverification: the baseline classifier calls ${(100 * verify.shareClassifiedAsClass).toFixed(1)}% of the synthetic images "${rareClass}" (mean P ${meanProb.toFixed(3)}); it recalls ${(100 * realRecall).toFixed(1)}% of real held-out ones`);

// 4. with synthetic images
const synConfig = resolveConfig(CLASSIFIER_PROFILES[profile], base, { extraTrain: [{ className: rareClass, dir: syntheticDir, limit: count }] });
const withSyn = await classifierRun(join(out, 'with-synthetic'), synConfig, `classifier + ${syntheticFiles.length} synthetic ${rareClass}`);
if (!withSyn) finish(130);

// 5. comparison
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const f3 = (x: number | null) => (x === null ? '–' : x.toFixed(3));
const rows = baseline.classNames.map((name, i) => {
  const a = baseline.report.perClass[i]!, b = withSyn.report.perClass[i]!;
  return { name, accBase: a.recall, accSyn: b.recall, aucBase: a.auc, aucSyn: b.auc, support: a.support };
});
const study = {
  profile, data: baseConfig.data ?? 'embedded synthetic leaves', rareClass, syntheticImages: syntheticFiles.length,
  source: args.model ? { model: resolve(args.model), lora: args.lora ? resolve(args.lora) : null, prompt: args.prompt, steps: Number(args.steps), guidance } : { dir: syntheticDir },
  trainCounts: baseline.trainCounts, verify,
  perClass: rows,
  accuracy: { baseline: baseline.report.accuracy, withSynthetic: withSyn.report.accuracy },
  meanAuc: { baseline: baseline.report.macro.auc, withSynthetic: withSyn.report.macro.auc },
};
await writeFileAtomic(join(out, 'study.json'), JSON.stringify(study, null, 2) + '\n');
await writeFileAtomic(join(out, 'study.png'), encodePng(barChart({
  labels: rows.map((r) => r.name),
  groups: [
    { name: 'accuracy, baseline', values: rows.map((r) => r.accBase) },
    { name: `accuracy, + ${syntheticFiles.length} synthetic`, values: rows.map((r) => r.accSyn) },
    { name: 'AUC, baseline', values: rows.map((r) => r.aucBase ?? 0) },
    { name: 'AUC, + synthetic', values: rows.map((r) => r.aucSyn ?? 0) },
  ],
  title: `Test accuracy and AUC per class, + synthetic ${rareClass}`, yMax: 1,
})));
const md = [
  `# Study: synthetic ${rareClass} images for the classifier`,
  '',
  `Data: ${study.data} (${Object.entries(baseline.trainCounts).map(([c, n]) => `${c} ${n}`).join(', ')} training images); profile ${profile}; the same seed, split and held-out test set for both runs.`,
  `Synthetic: ${syntheticFiles.length} images ${args.model ? `of "${args.prompt}" from ${args.model}${args.lora ? ` + LoRA ${args.lora}` : ''} (${args.steps} steps, guidance ${guidance})` : `from ${syntheticDir}`}, added to the ${rareClass} training split only.`,
  '',
  '| class | accuracy baseline | accuracy + synthetic | Δ | AUC baseline | AUC + synthetic | test images |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.name === rareClass ? `**${r.name}**` : r.name} | ${pct(r.accBase)} | ${pct(r.accSyn)} | ${(100 * (r.accSyn - r.accBase)).toFixed(1)} pt | ${f3(r.aucBase)} | ${f3(r.aucSyn)} | ${r.support} |`),
  `| overall | ${pct(study.accuracy.baseline)} | ${pct(study.accuracy.withSynthetic)} | ${(100 * (study.accuracy.withSynthetic - study.accuracy.baseline)).toFixed(1)} pt | ${f3(study.meanAuc.baseline)} | ${f3(study.meanAuc.withSynthetic)} | |`,
  '',
  `Verification: the baseline classifier calls ${pct(verify.shareClassifiedAsClass)} of the synthetic images "${rareClass}" (mean probability ${meanProb.toFixed(3)}; predicted: ${Object.entries(verify.predictedCounts).map(([c, n]) => `${c} ${n}`).join(', ')}), against ${pct(realRecall)} of real held-out ${rareClass} images.`,
  '',
  `For reference, the original study (Stable Diffusion 1.x + DreamBooth, 400 images, ResNet18 on the Kaggle data): ${rareClass} 73.6% → 84.6%, overall 97.7%.`,
  '',
  '![per class](study.png) ![verification](verify.png)',
  '',
  '![synthetic sample](synthetic-sample.png)',
  '',
].join('\n');
await writeFileAtomic(join(out, 'study.md'), md);
console.log(`\n${md.split('\n').filter((l) => l.startsWith('|')).join('\n')}\n\nreport: ${join(out, 'study.md')}`);
finish();
