/**
 * Files the classifier reads as untrusted input (issue 14, items 3 and the smaller ones): image ids in
 * a dataset CSV stay inside the image folder; a model file with bad JSON metadata, an unknown arch or
 * malformed fields, and a training checkpoint (folder) whose state.json has tampered position fields
 * (epoch beyond the config's epochs, negative or non-integer batch, inconsistent step) are refused
 * with the file and the field named.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { readPlantPathology2020, readPlantPathology2021, readDataset } from '../../packages/classifier/src/data/index.js';
import {
  train, resolveConfig, loadCheckpoint, CheckpointDir, loadTrainedModel, saveModelFile, buildModel, type TrainConfig,
} from '../../packages/classifier/src/train/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-untrusted-cls-'));
test.before(async () => {
  await ft.init({ backend: 'cpu' });
});
test.after(() => {
  ft.shutdown();
  rmSync(tmp, { recursive: true, force: true });
});

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
async function rejects(p: Promise<unknown>, patterns: RegExp[]): Promise<string> {
  try {
    await p;
  } catch (e) {
    const m = (e as Error).message;
    for (const pat of patterns) assert.match(m, pat);
    return m;
  }
  assert.unreachable(`expected an error matching ${patterns.join(', ')}`);
  return '';
}

test('Plant Pathology 2020/2021 CSVs: image ids with ../ or absolute paths are refused naming the file, line and column', async () => {
  const d = join(tmp, 'pp2020');
  mkdirSync(join(d, 'images'), { recursive: true });
  writeFileSync(join(tmp, 'x.jpg'), 'outside');
  const csv = join(d, 'train.csv');
  for (const [id, re] of [
    ['../../x', /train\.csv:3: image_id: path "\.\.\/\.\.\/x\.jpg" leads outside .*images/],
    ['../images/../../x', /leads outside/],
    [join(tmp, 'x'), /train\.csv:3: image_id: absolute path .* refused/],
  ] as [string, RegExp][]) {
    writeFileSync(csv, `image_id,healthy,multiple_diseases,rust,scab\nok,1,0,0,0\n${id},0,1,0,0\n`);
    await rejects(readPlantPathology2020(d, { skipFileCheck: true }), [new RegExp(esc(csv)), re]);
    await rejects(readDataset(d), [re]);
  }
  // names inside the folder (a subfolder too) are fine
  writeFileSync(csv, 'image_id,healthy,multiple_diseases,rust,scab\nok,1,0,0,0\nsub/./b,0,1,0,0\n');
  const set = await readPlantPathology2020(d, { skipFileCheck: true });
  assert.equal(set.items.map((i) => i.path), [join(d, 'images', 'ok.jpg'), join(d, 'images', 'sub', 'b.jpg')]);

  const d21 = join(tmp, 'pp2021');
  mkdirSync(join(d21, 'train_images'), { recursive: true });
  writeFileSync(join(d21, 'train.csv'), 'image,labels\na.jpg,healthy\n../../x.jpg,scab\n');
  await rejects(readPlantPathology2021(d21, { skipFileCheck: true }), [/train\.csv:3: image: path "\.\.\/\.\.\/x\.jpg" leads outside .*train_images/]);
  writeFileSync(join(d21, 'train.csv'), 'image,labels\na.jpg,healthy\n/etc/passwd,scab\n');
  await rejects(readPlantPathology2021(d21, { skipFileCheck: true }), [/train\.csv:3: image: absolute path "\/etc\/passwd" refused/]);
});

/** Rewrites a safetensors file with the same tensors and `meta(old metadata)`. */
async function rewriteMeta(src: string, dest: string, meta: (m: Record<string, string>) => Record<string, string>): Promise<void> {
  const f = await ft.SafetensorsFile.open(src);
  try {
    const entries: [string, ft.TensorToWrite][] = [];
    for (const k of f.keys()) {
      const r = await f.read(k);
      entries.push([k, { dtype: r.dtype, shape: r.shape, data: r.data } as ft.TensorToWrite]);
    }
    await ft.writeSafetensors(dest, entries, meta({ ...f.metadata }));
  } finally {
    await f.close();
  }
}

test('a model file with bad JSON, an unknown arch or malformed fields names the file', async () => {
  const good = join(tmp, 'model.safetensors');
  const model = buildModel('tiny', 4);
  await saveModelFile(good, model, { arch: 'tiny', classNames: ['a', 'b', 'c', 'd'], imageSize: 16 });
  model.dispose();
  const loaded = await loadTrainedModel(good);
  assert.is(loaded.info.arch, 'tiny');
  loaded.model.dispose();
  const KEY = 'foliar.classifier';
  const info = { arch: 'tiny', classNames: ['a', 'b', 'c', 'd'], imageSize: 16 };
  const cases: [string, RegExp][] = [
    ['{"arch": "tiny",', /"foliar\.classifier" metadata is not valid JSON/],
    ['[1,2]', /"foliar\.classifier" metadata must be an object, got \[1,2\]/],
    [JSON.stringify({ ...info, arch: 'vgg16' }), /unknown arch "vgg16" \(known: resnet18, resnet34, tiny\)/],
    [JSON.stringify({ ...info, arch: undefined }), /unknown arch undefined/],
    [JSON.stringify({ ...info, classNames: 'abcd' }), /"classNames" must be a non-empty array of distinct class names, got "abcd"/],
    [JSON.stringify({ ...info, classNames: ['a', 'a', 'b', 'c'] }), /"classNames" must be a non-empty array of distinct/],
    [JSON.stringify({ ...info, imageSize: '16' }), /"imageSize" must be a positive integer, got "16"/],
    [JSON.stringify({ ...info, config: 3 }), /"config" must be an object, got 3/],
  ];
  for (const [raw, re] of cases) {
    const p = join(tmp, 'bad-model.safetensors');
    await rewriteMeta(good, p, (m) => ({ ...m, [KEY]: raw }));
    await rejects(loadTrainedModel(p), [new RegExp(`^${esc(p)}: `), re]);
  }
});

const base: Partial<TrainConfig> = {
  arch: 'tiny', imageSize: 16, counts: { healthy: 8, multiple_diseases: 6, rust: 8, scab: 8 },
  valFraction: 0.2, testFraction: 0.2, batchSize: 6, evalBatchSize: 16, epochs: 2, lr: 0.05, warmupEpochs: 0.5, keepLast: 3,
};
const quiet = { progress: false, verbose: false, skipReport: true } as const;

test('tampered checkpoint fields (epoch 99, batch -3, non-integers, inconsistent history/step) are refused naming the file and field', async () => {
  const runDir = join(tmp, 'run');
  // 2 batches per epoch: step 3 is batch 1 of epoch 2
  const r = await train(resolveConfig(base), { runDir, ...quiet, stopAfterSteps: 3 });
  assert.ok(r.interrupted, 'stopped mid-epoch');
  const ck = (await new CheckpointDir(join(runDir, 'checkpoints')).latest())!;
  const honest = await loadCheckpoint(ck);
  assert.equal([honest.state.epoch, honest.state.batch, honest.state.globalStep], [1, 1, 3]);
  const statePath = join(ck, 'state.json');
  const orig = readFileSync(statePath, 'utf8');
  // the checkpoint folder, its state.json rewritten: `patch` edits the classifier's part ("trainer"), `loop` the loop's fields
  const tamper = (patch: (s: Record<string, unknown>) => void, loop: (s: Record<string, unknown>) => void = () => {}): string => {
    const p = join(tmp, 'tampered');
    rmSync(p, { recursive: true, force: true });
    cpSync(ck, p, { recursive: true });
    const j = JSON.parse(orig) as Record<string, unknown>;
    patch(j.trainer as Record<string, unknown>);
    loop(j);
    writeFileSync(join(p, 'state.json'), JSON.stringify(j));
    return p;
  };
  const cases: [(s: Record<string, unknown>) => void, RegExp][] = [
    [(s) => { s.epoch = 99; }, /checkpoint field "epoch" must be an integer in \[0, 2\] \(the config's epochs\), got 99/],
    [(s) => { s.epoch = -1; }, /"epoch" must be an integer in \[0, 2\].*got -1/],
    [(s) => { s.epoch = 0.5; }, /"epoch" .* got 0\.5/],
    [(s) => { s.epoch = '0'; }, /"epoch" .* got "0"/],
    [(s) => { s.batch = -3; }, /checkpoint field "batch" must be a non-negative integer, got -3/],
    [(s) => { s.batch = 1.5; }, /"batch" must be a non-negative integer, got 1\.5/],
    [(s) => { s.epoch = 2; s.history = [{}, {}]; }, /"batch" must be 0 once all 2 epochs are done, got 1/],
    [(s) => { s.epoch = 0; }, /"history" must be one record per finished epoch \(0\), got "1 records"/],
    [(s) => { s.finished = 'no'; }, /"finished" must be true or false/],
    [(s) => { (s.accum as Record<string, unknown>).correct = 1e9; }, /"accum" must be/],
    [(s) => { (s.monitor as Record<string, unknown>).bestEpoch = 5; }, /"monitor\.bestEpoch" must be null or an epoch in \[1, 1\], got 5/],
    [(s) => { s.classNames = 'healthy'; }, /"classNames" must be/],
    [(s) => { (s.config as Record<string, unknown>).epochs = 0; }, /: checkpoint config: "epochs" must be a positive integer, got 0/],
    [(s) => { s.config = null; }, /"config" must be the run's config object, got null/],
    [(s) => { s.format = 'other'; }, /not a classifier checkpoint \(its "trainer" state is of format "other"/],
  ];
  for (const [patch, re] of cases) {
    const p = tamper(patch);
    await rejects(loadCheckpoint(p), [new RegExp(`^${esc(join(p, 'state.json'))}: `), re]);
  }
  // the loop's own fields: checked by @foliar/nn, naming state.json and the field
  const p = tamper(() => {}, (j) => { j.step = -1; });
  await rejects(loadCheckpoint(p), [new RegExp(`^${esc(join(p, 'state.json'))}: `), /"step" must be a non-negative integer, got -1/]);
  const q = tamper(() => {}, (j) => { delete j.trainer; });
  await rejects(loadCheckpoint(q), [/not a classifier checkpoint \(its "trainer" state is missing/]);
  // fields consistent on their own but not with this data: refused by the trainer on --resume
  for (const [patch, loop, re] of [
    [(s: Record<string, unknown>) => { s.batch = 50; }, (j: Record<string, unknown>) => { j.step = 50; j.losses = new Array(50).fill(1); }, /checkpoint field "batch" is 50, beyond the last of the 2 batches per epoch of this data/],
    [(s: Record<string, unknown>) => { s.batch = 2; s.epoch = 0; s.history = []; (s.monitor as Record<string, unknown>).bestEpoch = null; }, (j: Record<string, unknown>) => { j.step = 2; j.losses = [1, 1]; }, /checkpoint field "batch" is 2, beyond the last of the 2 batches per epoch/],
    [() => {}, (j: Record<string, unknown>) => { j.step = 7; j.losses = new Array(7).fill(1); }, /checkpoint field "globalStep" \(the step\) is 7, but epoch 1 and batch 1 at 2 batches per epoch make 3/],
  ] as [(s: Record<string, unknown>) => void, (j: Record<string, unknown>) => void, RegExp][]) {
    writeFileSync(statePath, readFileSync(join(tamper(patch, loop), 'state.json')));
    await rejects(train(resolveConfig(base), { runDir, resume: true, ...quiet }), [new RegExp(esc(ck)), re]);
  }
  // the honest checkpoint still resumes to the end
  writeFileSync(statePath, orig);
  const done = await train(resolveConfig(base), { runDir, resume: true, ...quiet });
  assert.is(done.history.length, 2);
});

test.run();
