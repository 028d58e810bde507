/**
 * Can the study's synthetic images be told from real ones? For each seed, the 1-NN two-sample accuracy
 * (examples/study/domain.ts) between the seed's real rare-class TRAINING images and each synthetic set
 * of the study run (the images its arms added), in the feature space of that seed's gate classifier.
 * References: the real rare images split in two halves (chance), and the real rare images against the
 * real images of another class. Training images only; no validation or test image is read.
 *
 *   node --conditions=foliar-source --import tsx scripts/domain-probe.ts --out runs/q64 [--profile quick]
 *        [--data <folder>] [--seeds 0,1,2] [--json file]
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import * as ft from '@foliar/tensor';
import { writeFileAtomic } from '@foliar/tensor';
import { loadTrainedModel, type RgbImage } from '@foliar/classifier';
import { studyProfile } from '../examples/study/profiles.js';
import { StageRunner } from '../examples/study/stages.js';
import { loadStudyData, imagesOf, itemsOf, studySplits } from '../examples/study/data.js';
import { classifierBaseConfig, splitStage } from '../examples/study/arms.js';
import { trainGateClassifier } from '../examples/study/scorer.js';
import { classifierScorer } from '../examples/study/features.js';
import { oneNnTwoSample, type TwoSampleResult } from '../examples/study/domain.js';

const { values: args } = parseArgs({ options: { out: { type: 'string' }, profile: { type: 'string', default: 'quick' }, data: { type: 'string' }, seeds: { type: 'string' }, class: { type: 'string', default: 'multiple_diseases' }, other: { type: 'string', default: 'rust' }, json: { type: 'string' } } });
if (!args.out) {
  console.error('usage: scripts/domain-probe.ts --out <study run folder> [--profile quick] [--data <folder>] [--seeds 0,1,2] [--json file]');
  process.exit(2);
}
const P = studyProfile(args.profile);
const out = resolve(args.out);
const seeds = args.seeds ? args.seeds.split(',').map(Number) : P.seeds;
for (const s of seeds) if (!P.seeds.includes(s)) throw new Error(`--seeds: ${s} is not a seed of the ${P.name} profile (${P.seeds.join(', ')})`);
await ft.init({ backend: 'auto' });
const data = await loadStudyData(P, args.data ? resolve(args.data) : null);
const splits = studySplits(P, data.set);
const runner = new StageRunner(out, () => {});
const names = [...data.set.classNames];

/** The newest finished stage folder's images/ for each synthetic set of a seed. */
function syntheticSets(seedDir: string): { name: string; dir: string }[] {
  if (!existsSync(seedDir)) return [];
  return readdirSync(seedDir).filter((d) => d.startsWith('synthetic-')).flatMap((d) => {
    const done = readdirSync(join(seedDir, d)).map((h) => join(seedDir, d, h)).filter((p) => existsSync(join(p, 'result.json')) && existsSync(join(p, 'images')));
    done.sort((a, b) => statSync(join(b, 'result.json')).mtimeMs - statSync(join(a, 'result.json')).mtimeMs);
    return done.length ? [{ name: d.slice('synthetic-'.length), dir: join(done[0]!, 'images') }] : [];
  });
}

async function readImages(dir: string): Promise<RgbImage[]> {
  const files = readdirSync(dir).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort();
  return Promise.all(files.map(async (f) => {
    const { data: px, info } = await sharp(join(dir, f)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(px) };
  }));
}

const rows: { seed: number; comparison: string; result: TwoSampleResult }[] = [];
for (const seed of seeds) {
  const split = splits[P.seeds.indexOf(seed)]!;
  const inst = await trainGateClassifier(runner, seed, classifierBaseConfig(P, data), P.gateClassifier, split, [splitStage(split, out)]);
  const loaded = await loadTrainedModel(inst.value.checkpoint);
  const scorer = classifierScorer(loaded.model, { classNames: names, imageSize: P.imageSize });
  const real = await scorer.features(await imagesOf(data, itemsOf(split.train, args.class!)));
  const other = await scorer.features(await imagesOf(data, itemsOf(split.train, args.other!)));
  const D = scorer.dim, n = real.length / D, half = Math.floor(n / 2);
  const add = (comparison: string, result: TwoSampleResult) => {
    rows.push({ seed, comparison, result });
    console.log(`seed ${seed}: ${comparison}: 1-NN accuracy ${result.accuracy.toFixed(2)} (${result.perSet} per set; real→real ${result.realSelf.toFixed(2)}, other→other ${result.syntheticSelf.toFixed(2)})`);
  };
  add(`real ${args.class} train, one half vs the other (chance)`, oneNnTwoSample(real.subarray(0, half * D), real.subarray(half * D, 2 * half * D), D));
  add(`real ${args.class} vs real ${args.other} (two real classes)`, oneNnTwoSample(real, other, D));
  for (const set of syntheticSets(join(out, `seed-${seed}`))) {
    const images = await readImages(set.dir);
    add(`real ${args.class} vs synthetic ${set.name} (${images.length} images)`, oneNnTwoSample(real, await scorer.features(images), D));
  }
  loaded.model.dispose?.();
}
if (args.json) await writeFileAtomic(resolve(args.json), JSON.stringify({ profile: P.name, out, rareClass: args.class, otherClass: args.other, rows }, null, 2) + '\n');
ft.shutdown();
