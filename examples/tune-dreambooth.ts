/**
 * Chooses DreamBooth's learning rate, steps, prior weight and text-encoder training for a study
 * profile on ONE seed's validation images (never test): each candidate is trained from the study's
 * pretrained base model, then its instance-prompt samples are scored by the seed's gate classifier
 * (share assigned to the rare class) and compared in feature space with the real rare-class
 * VALIDATION images, next to the base model's class-prompt samples. Stages share the study's cache:
 * run it with the study's --out and the pretraining and gate classifier are reused (or made).
 *
 *   npm run tune-dreambooth -- [--profile quick] [--data <folder>] [--out runs/study-quick] [--seed 0]
 *        [--candidates '[{}, {"lrFull": 3e-4, "steps": 400}]'] [--repeats 3]
 *
 * --candidates replaces the default grid (the profile's setting, 3x its learning rate, and that with the
 * text encoder trained) by a list of overrides of the profile's DreamBooth settings (steps, lrFull,
 * priorWeight, trainTextEncoder, classImages, batch).
 *
 * --repeats N trains each candidate N times with different training seeds (the split, the gate
 * classifier and the 64 sample seeds stay the same), so the table shows how much of a difference
 * between candidates is DreamBooth's own run-to-run noise. The choice is made on the mean.
 *
 * Writes <out>/tune-dreambooth/seed-<seed>.{json,md} and a grid of each candidate's samples.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ft from '@foliar/tensor';
import { writeFileAtomic } from '@foliar/tensor';
import { StableDiffusionPipeline } from '@foliar/diffusion';
import { loadTrainedModel } from '@foliar/classifier';
import { reportCliError } from '@foliar/nn';
import { parseCandidateList, type SettingChecks } from './lib/candidates.js';
import { studyProfile, type StudyProfile } from './study/profiles.js';
import { StageRunner } from './study/stages.js';
import { loadStudyData, imagesOf, itemsOf, studySplits } from './study/data.js';
import { pretrainGenerator } from './study/pretrain.js';
import { trainStudyDreamBooth } from './study/generator.js';
import { classifierBaseConfig, splitStage } from './study/arms.js';
import { trainGateClassifier } from './study/scorer.js';
import { classifierScorer } from './study/features.js';
import { dreamboothGate, generatorFromPipeline } from './study/gates.js';
import { labelledGrid } from './study/grids.js';

type DreamBoothSettings = StudyProfile['dreambooth'];

/** The candidates around the profile's own setting (a small grid: each costs one DreamBooth run). */
function candidates(p: StudyProfile): Partial<DreamBoothSettings>[] {
  const lr = p.dreambooth.lrFull;
  return [
    {},
    { lrFull: lr * 3 },
    { lrFull: lr * 3, trainTextEncoder: true },
  ];
}

/** A learning rate as people write it: 3e-4 × 1 is 0.0003, not 0.00030000000000000003. */
const num = (x: number) => String(Number(x.toPrecision(6)));

const positiveInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
const nonNegative = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const TUNABLE: SettingChecks = {
  steps: positiveInt, lrFull: nonNegative, priorWeight: nonNegative, trainTextEncoder: (v) => typeof v === 'boolean', classImages: positiveInt, batch: positiveInt,
};

const labelOf = (s: DreamBoothSettings) => `steps ${s.steps}, lr ${num(s.lrFull)}, prior ${s.priorWeight}${s.trainTextEncoder ? ', +text' : ''}`;

interface Spread { mean: number; sd: number; min: number; max: number }
function spread(xs: number[]): Spread {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
}

/** One line per candidate over its repeated runs. */
function summarise(rows: { settings: DreamBoothSettings; rareShare: number; nnDistance: number; baseRareShare: number; baseNnDistance: number }[]) {
  const groups = new Map<string, typeof rows>();
  for (const r of rows) groups.set(JSON.stringify(r.settings), [...(groups.get(JSON.stringify(r.settings)) ?? []), r]);
  return [...groups.values()].map((rs) => ({
    settings: rs[0]!.settings, runs: rs.length, rareShare: spread(rs.map((r) => r.rareShare)), nnDistance: spread(rs.map((r) => r.nnDistance)),
    baseRareShare: rs[0]!.baseRareShare, baseNnDistance: rs[0]!.baseNnDistance,
  }));
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      profile: { type: 'string', default: 'quick' },
      data: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string', default: '0' },
      class: { type: 'string', default: 'multiple_diseases' },
      'instance-prompt': { type: 'string', default: 'a photo of a <diseaes-leaf> leaf' },
      'class-prompt': { type: 'string', default: 'a photo of a leaf' },
      candidates: { type: 'string' },
      repeats: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (args.help) {
    console.log('usage: npm run tune-dreambooth -- [--profile quick] [--data <folder>] [--out <study run folder>] [--seed 0] [--candidates \'[{}, {"lrFull": 3e-4}]\']');
    return;
  }
  const P = studyProfile(args.profile);
  const tried = args.candidates ? parseCandidateList<DreamBoothSettings>(args.candidates, TUNABLE) : candidates(P);
  const seed = Number(args.seed);
  const repeats = Number(args.repeats);
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 20) throw new Error(`--repeats ${args.repeats}: expected a whole number from 1 to 20`);
  if (!P.seeds.includes(seed)) throw new Error(`--seed ${args.seed}: not a seed of the ${P.name} profile (${P.seeds.join(', ')})`);
  const out = resolve(args.out ?? join('runs', `study-${P.name}`));
  const dataDir = args.data ? resolve(args.data) : null;
  const rare = args.class!, instancePrompt = args['instance-prompt']!, classPrompt = args['class-prompt']!;
  await ft.init({ backend: 'auto' });
  const runner = new StageRunner(out);
  const data = await loadStudyData(P, dataDir);
  const classNames = [...data.set.classNames];
  const common = classNames.filter((c) => c !== rare);
  const prompt = (c: string) => `a photo of a ${c.replace(/_/g, ' ')} leaf`;
  const splits = studySplits(P, data.set);
  const split = splits[P.seeds.indexOf(seed)]!;
  const pre = await pretrainGenerator({ runner, profile: P, data, splits, photographs: dataDir !== null, common, classPrompt, promptOf: prompt });
  const inst = await trainGateClassifier(runner, seed, classifierBaseConfig(P, data), P.gateClassifier, split, [splitStage(split, out)]);
  const loaded = await loadTrainedModel(inst.value.checkpoint);
  const scorer = classifierScorer(loaded.model, { classNames, imageSize: P.imageSize });
  const rareTrain = await imagesOf(data, itemsOf(split.train, rare));
  const rareVal = await imagesOf(data, itemsOf(split.val, rare));
  const gen = async (model: string) => generatorFromPipeline(await StableDiffusionPipeline.fromPretrained(model), { steps: P.gates.steps, guidance: P.synthetic.guidance, batchSize: P.synthetic.batch, height: P.imageSize, width: P.imageSize });
  const baseGen = await gen(pre.base.value.model);
  const baseSamples = await baseGen.generate(classPrompt, Array.from({ length: P.gates.dreamboothSamples }, (_, i) => 7_000_000 + i));
  baseGen.dispose?.();

  const rows: { settings: DreamBoothSettings; replicate: number; rareShare: number; baseRareShare: number; meanRareProbability: number | null; nnDistance: number; baseNnDistance: number; ratio: number | null; seconds: number }[] = [];
  const grid: { label: string; images: typeof baseSamples }[] = [{ label: `real ${rare} (validation)`, images: rareVal.slice(0, 8) }, { label: `base: ${classPrompt}`, images: baseSamples.slice(0, 8) }];
  for (const c of tried) for (let replicate = 0; replicate < repeats; replicate++) {
    const settings = { ...P.dreambooth, ...c };
    const q: StudyProfile = { ...P, dreambooth: settings };
    // replicate 0 keeps the key (and the training seed) of a run without --repeats, so its cache is reused
    const key = replicate === 0 ? { db: settings, instancePrompt, classPrompt } : { db: settings, instancePrompt, classPrompt, replicate };
    const db = await runner.run('tune-dreambooth', seed, key, [splitStage(split, out), pre.base], (dir) =>
      trainStudyDreamBooth(q, dir, pre.base.value.model, { instanceImages: rareTrain, instancePrompt, classPrompt, method: 'full', validationPrompts: [instancePrompt] }, seed + 1000 * replicate),
    );
    const g = await gen(db.value.model);
    const r = await dreamboothGate({ generate: g.generate, scorer, instancePrompt, rareClass: rare, samples: P.gates.dreamboothSamples, realRare: rareVal, baseSamples, seed, stage: 'tune' });
    g.dispose?.();
    const meanP = r.rareProbabilities.length ? r.rareProbabilities.reduce((a, b) => a + b, 0) / r.rareProbabilities.length : null;
    rows.push({ settings, replicate, rareShare: r.rareShare, baseRareShare: r.baseRareShare, meanRareProbability: meanP, nnDistance: r.nnDistance, baseNnDistance: r.baseNnDistance, ratio: r.ratio, seconds: db.seconds });
    const label = `${labelOf(settings)}${repeats > 1 ? ` (run ${replicate + 1})` : ''}`;
    if (replicate === 0) grid.push({ label, images: r.samples.slice(0, 8) });
    console.log(`${label}: rare share ${r.rareShare.toFixed(2)} (base model's class-prompt samples ${r.baseRareShare.toFixed(2)}), NN distance to real validation ${r.nnDistance.toFixed(3)} (base ${r.baseNnDistance.toFixed(3)})`);
  }
  loaded.model.dispose?.();
  const dir = join(out, 'tune-dreambooth');
  const summary = summarise(rows);
  // the choice: the highest mean rare share; ties (within 2 samples) go to the smaller mean feature distance
  const tol = 2 / P.gates.dreamboothSamples;
  const top = Math.max(...summary.map((r) => r.rareShare.mean));
  const best = summary.filter((r) => r.rareShare.mean >= top - tol).sort((a, b) => a.nnDistance.mean - b.nnDistance.mean)[0]!;
  await writeFileAtomic(join(dir, `seed-${seed}.json`), JSON.stringify({ profile: P.name, seed, instancePrompt, classPrompt, gateClassifier: inst.value, repeats, candidates: rows, summary, chosen: best.settings }, null, 2) + '\n');
  const md = [
    `# DreamBooth settings on seed ${seed}'s validation images (${P.name} profile)`, '',
    `Scored by the seed's gate classifier (validation accuracy ${inst.value.valAccuracy.toFixed(2)}, mean AUC ${inst.value.valMeanAuc?.toFixed(2) ?? 'n/a'}); ${P.gates.dreamboothSamples} instance-prompt samples each; distances: mean nearest-neighbour L2 of classifier avgpool features to the ${rareVal.length} real ${rare} validation images.`, '',
    ...(repeats > 1 ? [
      `Each candidate trained ${repeats} times (training seeds ${Array.from({ length: repeats }, (_, r) => seed + 1000 * r).join(', ')}); mean, sample standard deviation and range over the runs.`, '',
      '| candidate | rare share: mean ± sd | range | NN distance: mean ± sd | base rare share | base NN distance |',
      '| --- | --- | --- | --- | --- | --- |',
      ...summary.map((r) => `| ${labelOf(r.settings)} | ${r.rareShare.mean.toFixed(2)} ± ${r.rareShare.sd.toFixed(2)} | ${r.rareShare.min.toFixed(2)}–${r.rareShare.max.toFixed(2)} | ${r.nnDistance.mean.toFixed(3)} ± ${r.nnDistance.sd.toFixed(3)} | ${r.baseRareShare.toFixed(2)} | ${r.baseNnDistance.toFixed(3)} |`),
      '', 'Every run:', '',
    ] : []),
    '| steps | lr | prior weight | text encoder | run | rare share | base rare share | mean P(rare) | NN distance | base NN distance | train s |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.settings.steps} | ${num(r.settings.lrFull)} | ${r.settings.priorWeight} | ${r.settings.trainTextEncoder ? 'yes' : 'no'} | ${r.replicate + 1} | ${r.rareShare.toFixed(2)} | ${r.baseRareShare.toFixed(2)} | ${r.meanRareProbability?.toFixed(2) ?? 'n/a'} | ${r.nnDistance.toFixed(3)} | ${r.baseNnDistance.toFixed(3)} | ${r.seconds.toFixed(0)} |`),
    '', `Chosen: ${JSON.stringify(best.settings)}`, '',
  ].join('\n');
  await writeFileAtomic(join(dir, `seed-${seed}.md`), md);
  await labelledGrid(grid, join(dir, `seed-${seed}.png`));
  console.log(`\n${md}\nwritten to ${dir}`);
  ft.shutdown();
}

main().catch((e) => reportCliError('tune-dreambooth', e));
