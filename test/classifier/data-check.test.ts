/**
 * The classifier's up-front dataset check (issue 14, item 4): before anything trains, every image of
 * every split (and the extra training images) is decoded, every split must be non-empty, every class
 * with images must reach train, val and test, and the training split must hold a batch. All problems
 * come as one DatasetCheckError naming file, CSV line, id and split; nothing is written to the run
 * directory. Before, a corrupt test image failed the run after every epoch had trained, and a dataset
 * too small for the split failed after epoch 1 with "metrics: no samples".
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as ft from '@foliar/tensor';
import { DatasetCheckError } from '@foliar/nn';
import { train, prepareData, resolveConfig, type TrainConfig } from '../../packages/classifier/src/train/index.js';
import { repoRoot } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-data-check-'));
test.before(async () => {
  await ft.init({ backend: 'cpu' });
});
test.after(() => {
  ft.shutdown();
  rmSync(tmp, { recursive: true, force: true });
});

const CLASSES = ['healthy', 'multiple_diseases', 'rust', 'scab'] as const;
const COLOURS = [[40, 160, 40], [120, 120, 30], [200, 110, 20], [90, 70, 40]] as const;

/** A JPEG of one colour with a little noise (so the classes differ). */
async function jpeg(path: string, c: number, i: number): Promise<void> {
  const [r, g, b] = COLOURS[c]!;
  const px = new Uint8Array(24 * 24 * 3);
  for (let k = 0; k < px.length; k += 3) {
    px[k] = r + ((k * 7 + i) % 13);
    px[k + 1] = g + ((k * 3 + i) % 11);
    px[k + 2] = b;
  }
  await sharp(Buffer.from(px), { raw: { width: 24, height: 24, channels: 3 } }).jpeg({ quality: 90 }).toFile(path);
}

/** A Plant Pathology 2020 folder (train.csv + images/) with `perClass[c]` images of class c. */
async function pp2020(dir: string, perClass: number[]): Promise<{ csv: string }> {
  mkdirSync(join(dir, 'images'), { recursive: true });
  const rows = ['image_id,healthy,multiple_diseases,rust,scab'];
  for (let c = 0; c < perClass.length; c++) {
    for (let i = 0; i < perClass[c]!; i++) {
      const id = `${CLASSES[c]}_${i}`;
      await jpeg(join(dir, 'images', `${id}.jpg`), c, i);
      rows.push(`${id},${CLASSES.map((_, k) => (k === c ? 1 : 0)).join(',')}`);
    }
  }
  const csv = join(dir, 'train.csv');
  writeFileSync(csv, rows.join('\n') + '\n');
  return { csv };
}

const base: Partial<TrainConfig> = {
  arch: 'tiny', imageSize: 16, counts: null, valFraction: 0.2, testFraction: 0.2, batchSize: 4, evalBatchSize: 8, epochs: 2, lr: 0.05, warmupEpochs: 0,
};
const quiet = { progress: false, verbose: false } as const;

async function checkError(p: Promise<unknown>): Promise<DatasetCheckError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, DatasetCheckError, (e as Error).stack);
    return e as DatasetCheckError;
  }
  assert.unreachable('expected a DatasetCheckError');
  throw new Error('unreachable');
}

/** Nothing of a training run was written: no config, log, checkpoints or weights. */
function nothingTrained(runDir: string): void {
  const left = existsSync(runDir) ? readdirSync(runDir) : [];
  assert.equal(left.filter((f) => ['config.json', 'train.jsonl', 'checkpoints', 'model.safetensors'].includes(f)), [], `left in the run dir: ${left.join(', ')}`);
}

test('a corrupt test image, a non-image and a missing file in train/val/test plus a class too small for the split: one error listing all, before epoch 1', async () => {
  const dir = join(tmp, 'pp');
  const { csv } = await pp2020(dir, [10, 10, 10, 10]);
  const config = resolveConfig(base, { data: dir });
  // which images land in which split (the check does not change the split)
  const intact = await prepareData(config);
  const notRust = (items: typeof intact.test.items) => items.filter((it) => it.label !== 2);
  const [inTest, inVal, inTrain] = [notRust(intact.test.items)[0]!, notRust(intact.val.items)[1]!, notRust(intact.train.items)[2]!];
  await prepareData(config, { check: true }); // the intact folder passes
  const half = statSync(inTest.path).size >> 1;
  truncateSync(inTest.path, half); // a truncated JPEG (decodes half grey without failOn)
  writeFileSync(inVal.path, 'not an image at all');
  rmSync(inTrain.path);
  // and rust shrinks to 2 images: 0.2 of 2 rounds to 0 for val and test
  const rows = readFileSync(csv, 'utf8').trim().split('\n');
  writeFileSync(csv, rows.filter((r) => !/^rust_([2-9])\b/.test(r)).join('\n') + '\n');
  const lineOf = (id: string) => readFileSync(csv, 'utf8').split('\n').findIndex((r) => r.startsWith(`${id},`)) + 1;

  const runDir = join(tmp, 'run-corrupt');
  const err = await checkError(train(resolveConfig(base, { data: dir }), { runDir, ...quiet }));
  nothingTrained(runDir);
  assert.is(err.problems.length, 4, err.message);
  const lines = err.message.split('\n');
  assert.match(lines[0]!, new RegExp(`^dataset plant-pathology-2020:${csv}: 4 problems found before training \\(nothing was trained\\):$`));
  assert.is(lines.length, 5, 'one line per problem');
  const about = (id: string) => err.problems.find((p) => p.id === id);
  const t = about(inTest.id), v = about(inVal.id), m = about(inTrain.id);
  assert.ok(t && v && m, err.message);
  assert.equal([t.file, t.line, t.part], [inTest.path, `${csv}:${lineOf(inTest.id)}`, 'test split']);
  assert.match(t.why, /^does not decode: /);
  assert.equal([v.file, v.line, v.part], [inVal.path, `${csv}:${lineOf(inVal.id)}`, 'val split']);
  assert.match(v.why, /does not decode: .*(unsupported image format|corrupt|not a known)/i);
  assert.equal([m.file, m.part, m.why], [inTrain.path, 'train split', 'file not found']);
  assert.ok(err.message.includes(`${inTest.path} (${csv}:${lineOf(inTest.id)}, id "${inTest.id}", test split): does not decode`), err.message);
  const small = err.problems.find((p) => /class "rust"/.test(p.why));
  assert.ok(small, err.message);
  assert.match(small.why, /class "rust" is too small for the split \(valFraction 0\.2, testFraction 0\.2\): its 2 images give train 2, val 0, test 0, none in val or test/);
});

test('a dataset too small for the split: empty splits, a short training split and each class named with its counts', async () => {
  const runDir = join(tmp, 'run-small');
  // synthetic leaves (nothing to decode): 2 of each class
  const err = await checkError(train(resolveConfig(base, { data: null, counts: { healthy: 2, multiple_diseases: 2, rust: 2, scab: 2 }, batchSize: 16 }), { runDir, ...quiet }));
  nothingTrained(runDir);
  const whys = err.problems.map((p) => p.why);
  assert.ok(whys.some((w) => /^the val split is empty \(valFraction 0\.2, testFraction 0\.2; pool per class: healthy 2, multiple_diseases 2, rust 2, scab 2\)$/.test(w)), err.message);
  assert.ok(whys.some((w) => /^the test split is empty/.test(w)), err.message);
  assert.ok(whys.some((w) => /^the training split has 8 images, fewer than one batch of 16 \(healthy 2, multiple_diseases 2, rust 2, scab 2\)$/.test(w)), err.message);
  // one class too small among larger ones; a class with a count of 0 is only a warning
  const err2 = await checkError(train(resolveConfig(base, { data: null, counts: { healthy: 10, multiple_diseases: 2, rust: 10, scab: 0 } }), { runDir, ...quiet }));
  assert.equal(err2.problems.map((p) => p.why), ['class "multiple_diseases" is too small for the split (valFraction 0.2, testFraction 0.2): its 2 images give train 2, val 0, test 0, none in val or test']);
  nothingTrained(runDir);
});

test('extra training images are checked too; an image-folder dataset names ids (no CSV line)', async () => {
  const dir = join(tmp, 'folder');
  for (let c = 0; c < 3; c++) {
    mkdirSync(join(dir, CLASSES[c]!), { recursive: true });
    for (let i = 0; i < 6; i++) await jpeg(join(dir, CLASSES[c]!, `${i}.jpg`), c, i);
  }
  const extra = join(tmp, 'extra');
  mkdirSync(extra);
  await jpeg(join(extra, 'a.jpg'), 1, 0);
  writeFileSync(join(extra, 'b.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])); // a PNG cut after its signature
  const bad = join(dir, 'rust', '3.jpg');
  writeFileSync(bad, Buffer.alloc(100));
  const runDir = join(tmp, 'run-extra');
  const err = await checkError(train(resolveConfig(base, { data: dir, extraTrain: [{ className: 'healthy', dir: extra }] }), { runDir, ...quiet }));
  nothingTrained(runDir);
  const e = err.problems.find((p) => p.file === join(extra, 'b.png'));
  assert.ok(e, err.message);
  assert.equal([e.id, e.part, e.line], ['extra:healthy/b.png', 'extra train split', undefined]);
  const f = err.problems.find((p) => p.file === bad);
  assert.ok(f, err.message);
  assert.is(f.id, 'rust/3');
  assert.match(err.message, new RegExp(`^  ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(id "rust/3", (train|val|test) split\\): does not decode`, 'm'));
  assert.is(err.problems.length, 2, err.message);
});

// ---- the CLI: the same check, the list on stderr without a stack; --counts all

const cli = join(repoRoot, 'packages', 'classifier', 'src', 'cli.ts');
function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, FOLIAR_BACKEND: 'cpu' };
  delete env.FOLIAR_DEBUG;
  const r = spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', cli, ...args], { cwd: repoRoot, encoding: 'utf8', env, timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const small = ['--arch', 'tiny', '--image-size', '16', '--batch-size', '4', '--val-fraction', '0.2', '--test-fraction', '0.2', '--no-progress'];

test('foliar-classify train: a corrupt image fails before training with the list of problems (no stack); --counts all trains on every image of --data', async () => {
  const dir = join(tmp, 'cli-pp');
  await pp2020(dir, [6, 6, 6, 6]);
  const good = run(['train', ...small, '--data', dir, '--counts', 'all', '--epochs', '1', '--out', join(tmp, 'cli-ok')]);
  assert.is(good.code, 0, good.stderr);
  const saved = JSON.parse(readFileSync(join(tmp, 'cli-ok', 'config.json'), 'utf8')) as { counts: unknown; dataDescription: string };
  assert.is(saved.counts, null);
  assert.match(saved.dataDescription, /train 16, val 4, test 4/, 'all 24 images used');

  writeFileSync(join(dir, 'images', 'scab_5.jpg'), 'garbage');
  const out = join(tmp, 'cli-bad');
  const r = run(['train', ...small, '--data', dir, '--counts', 'all', '--epochs', '1', '--out', out]);
  assert.is(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[0]!, /^foliar-classify: dataset plant-pathology-2020:.*train\.csv: 1 problem found before training \(nothing was trained\):$/);
  assert.match(lines[1]!, /^ {2}.*scab_5\.jpg \(.*train\.csv:25, id "scab_5", (train|val|test) split\): does not decode: /);
  assert.is(lines.length, 2, r.stderr);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  nothingTrained(out);

  // "all" needs a folder: the synthetic leaves have no "every image"
  const s = run(['train', ...small, '--synthetic', '--counts', 'all', '--out', join(tmp, 'cli-syn')]);
  assert.is(s.code, 1);
  assert.match(s.stderr, /^foliar-classify: config: "counts" null \(--counts all: every image\) needs a dataset folder/);
  assert.is(s.stderr.trim().split('\n').length, 1, s.stderr);
});

test.run();
