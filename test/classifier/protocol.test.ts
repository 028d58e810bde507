/**
 * The leak-free protocol: duplicate removal on real image files (decoded-pixel hashes, so
 * re-encodings are caught), the seeded stratified test/val/train split and its splits.json, the
 * explicit split honoured by prepareData, and the per-image test predictions a training run writes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as ft from '@foliar/tensor';
import {
  dedupeByContent, decodedPixels, protocolSplit, splitsJson, splitsFromJson, splitIds, classCounts,
  type LabeledImageSet, type LabeledItem, type ProtocolSplit, type ImageDataset,
} from '../../packages/classifier/src/data/index.js';
import {
  prepareData, resolveConfig, readConfigFile, syntheticSource, train, ConfigError, type TrainConfig,
} from '../../packages/classifier/src/train/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-protocol-'));

test.before(async () => {
  await ft.init({ backend: 'cpu' });
});
test.after(() => {
  ft.shutdown();
  rmSync(tmp, { recursive: true, force: true });
});

async function rejects(fn: () => Promise<unknown>, check: RegExp | ((e: Error) => boolean)): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const ok = check instanceof RegExp ? check.test((e as Error).message) : check(e as Error);
    assert.ok(ok, `unexpected error: ${(e as Error).message}`);
    return e as Error;
  }
  return assert.unreachable('expected a rejection') as never;
}

/** Deterministic noisy RGB pixels (noise makes every image distinct and compressors work). */
function noise(width: number, height: number, seed: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  let s = seed * 2654435761 >>> 0;
  for (let i = 0; i < out.length; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; out[i] = s >>> 24; }
  return out;
}

const raw = (px: Uint8Array, width: number, height: number) => sharp(Buffer.from(px), { raw: { width, height, channels: 3 } });

// ---------------------------------------------------------------------------------------------
// dedupeByContent

test('dedupeByContent: identical pixels in other encodings are one image; conflicting labels drop the group', async () => {
  const dir = join(tmp, 'dedup');
  mkdirSync(dir);
  const A = noise(8, 6, 1), B = noise(8, 6, 2), C = noise(8, 6, 3);
  const files: Record<string, Buffer> = {
    'a1.png': await raw(A, 8, 6).png({ compressionLevel: 0 }).toBuffer(),
    'a2.png': await raw(A, 8, 6).png({ compressionLevel: 9, adaptiveFiltering: true }).toBuffer(),
    'a3.webp': await raw(A, 8, 6).webp({ lossless: true }).toBuffer(),
    'b1.png': await raw(B, 8, 6).png().toBuffer(),
    'b2.png': await raw(B, 8, 6).png({ compressionLevel: 1 }).toBuffer(),
    'c1.png': await raw(C, 8, 6).png().toBuffer(),
    // A's bytes as a 6x8 image: same pixel buffer, other shape, so another image
    'd1.png': await raw(A, 6, 8).png().toBuffer(),
  };
  for (const [f, buf] of Object.entries(files)) writeFileSync(join(dir, f), buf);
  assert.is.not(files['a1.png']!.equals(files['a2.png']!), true, 'the two PNGs of A differ as files');
  const item = (f: string, label: number): LabeledItem => ({ path: join(dir, f), id: f.replace(/\.\w+$/, ''), label });
  // set order puts a3 first: the kept copy is the first by id (a1), not by position
  const set: LabeledImageSet = {
    classNames: ['x', 'y', 'z'],
    items: [item('a3.webp', 0), item('b1.png', 1), item('a1.png', 0), item('c1.png', 2), item('b2.png', 2), item('a2.png', 0), item('d1.png', 0)],
    source: 'test-dedup',
  };
  const r = await dedupeByContent(set, decodedPixels);
  assert.equal(r.set.items.map((it) => it.id), ['a1', 'c1', 'd1']);
  assert.equal(r.groups.map(({ ids, labels, conflicting }) => ({ ids, labels, conflicting })), [
    { ids: ['a1', 'a2', 'a3'], labels: [0, 0, 0], conflicting: false },
    { ids: ['b1', 'b2'], labels: [1, 2], conflicting: true },
  ]);
  assert.ok(r.groups.every((g) => /^[0-9a-f]{64}$/.test(g.hash)), 'sha256 hex hashes');
  assert.equal(r.removed, [
    { id: 'a2', reason: 'duplicate' }, { id: 'a3', reason: 'duplicate' },
    { id: 'b1', reason: 'conflicting-labels' }, { id: 'b2', reason: 'conflicting-labels' },
  ]);
  assert.equal(r.counts, { images: 7, unique: 4, duplicateGroups: 2, conflictingGroups: 1, removed: 4 });
  // same result with the default decoder, and the input is left alone
  assert.equal((await dedupeByContent(set)).removed, r.removed);
  assert.is(set.items.length, 7);
});

test('dedupeByContent: a file that does not decode is named with its item; duplicate ids are refused', async () => {
  const bad = join(tmp, 'broken.png');
  writeFileSync(bad, Buffer.from('not an image'));
  const set: LabeledImageSet = { classNames: ['x'], items: [{ path: bad, id: 'leaf-7', label: 0 }], source: 'test-broken' };
  await rejects(() => dedupeByContent(set), (e) => e.message.includes('leaf-7') && e.message.includes(bad));
  const twice: LabeledImageSet = { classNames: ['x'], items: [{ path: bad, id: 'k', label: 0 }, { path: bad, id: 'k', label: 0 }], source: 'test-twice' };
  await rejects(() => dedupeByContent(twice), /"k" twice/);
});

test('dedupeByContent: custom pixel source (in-memory images)', async () => {
  const px: Record<string, Uint8Array> = { p: noise(4, 4, 9), q: noise(4, 4, 9), r: noise(4, 4, 10) };
  const set: LabeledImageSet = { classNames: ['x'], items: ['r', 'q', 'p'].map((id) => ({ path: `mem:${id}`, id, label: 0 })), source: 'mem' };
  const r = await dedupeByContent(set, async (it) => ({ width: 4, height: 4, data: px[it.id]! }));
  assert.equal(r.set.items.map((it) => it.id), ['r', 'p']);
  assert.equal(r.removed, [{ id: 'q', reason: 'duplicate' }]);
});

// ---------------------------------------------------------------------------------------------
// protocolSplit

const PP = ['healthy', 'multiple_diseases', 'rust', 'scab'];

/** A set with `counts[c]` items per class, ids `<class>-<k>`, classes interleaved (as in a CSV). */
function fakeSet(counts: number[], classNames = PP): LabeledImageSet {
  const items: LabeledItem[] = [];
  const max = Math.max(...counts);
  for (let k = 0; k < max; k++) {
    counts.forEach((n, c) => { if (k < n) items.push({ path: `/x/${classNames[c]}-${k}.jpg`, id: `${classNames[c]}-${String(k).padStart(4, '0')}`, label: c }); });
  }
  return { classNames: [...classNames], items, source: 'fake' };
}

const ids = (s: LabeledImageSet) => s.items.map((it) => it.id);

function assertDisjointSubsets(split: ProtocolSplit, set: LabeledImageSet): void {
  const all = new Set(ids(set));
  const seen = new Set<string>();
  for (const part of [split.train, split.val, split.test]) {
    for (const id of ids(part)) {
      assert.ok(all.has(id), `${id} comes from the set`);
      assert.not.ok(seen.has(id), `${id} is in two parts`);
      seen.add(id);
    }
  }
}

test('protocolSplit: default PP2020 training counts, stratified test and validation, disjoint parts', () => {
  const set = fakeSet([600, 120, 720, 680]);
  const s = protocolSplit(set, { seed: 3, testPerClass: 20 });
  assertDisjointSubsets(s, set);
  assert.equal(classCounts(s.test), [20, 20, 20, 20]);
  // validation: round(0.1 x what the test left) per class
  assert.equal(classCounts(s.val), [58, 10, 70, 66]);
  assert.equal(classCounts(s.train), [516, 90, 622, 592]);
  // multiple_diseases had 120 − 20 − 10 = 90 left for the 91 asked
  assert.equal(s.shortfall, { multiple_diseases: 1 });
  assert.ok(s.warnings.some((w) => w.includes('multiple_diseases') && w.includes('short')), s.warnings.join('; '));
  // parts keep the set's order
  const pos = new Map(set.items.map((it, i) => [it.id, i]));
  for (const part of [s.train, s.val, s.test]) {
    const p = ids(part).map((id) => pos.get(id)!);
    assert.ok(p.every((v, i) => i === 0 || v > p[i - 1]!), 'set order kept');
  }
});

test('protocolSplit: deterministic per seed (whatever the input order), different across seeds; test fixed across trainCounts', () => {
  const set = fakeSet([80, 15, 90, 85]);
  const opts = { testPerClass: 5, valPerClass: 4, trainCounts: { healthy: 30, multiple_diseases: 6, rust: 30, scab: 30 } };
  const a = protocolSplit(set, { seed: 7, ...opts });
  const b = protocolSplit({ ...set, items: [...set.items].reverse() }, { seed: 7, ...opts });
  assert.equal(splitsJson([a]).seeds[0], splitsJson([b]).seeds[0], 'same seed, reversed input: same split');
  assert.equal(classCounts(a.train), [30, 6, 30, 30]);
  assert.equal(classCounts(a.val), [4, 4, 4, 4]);
  assert.equal(a.warnings, []);
  const c = protocolSplit(set, { seed: 8, ...opts });
  assert.not.equal(ids(c.test), ids(a.test), 'another seed, another test set');
  assert.not.equal(ids(c.train), ids(a.train), 'another seed, another training set');
  // the test and validation images do not depend on how many training images are taken
  const all = protocolSplit(set, { seed: 7, ...opts, trainCounts: null });
  assert.equal(ids(all.test), ids(a.test));
  assert.equal(ids(all.val), ids(a.val));
  assert.equal(classCounts(all.train), [71, 6, 81, 76]);
  assert.ok(ids(a.train).every((id) => ids(all.train).includes(id)), 'a subsample of the remaining images');
});

test('protocolSplit: caps test and validation so each class keeps a training image; option errors', () => {
  const set = fakeSet([40, 5, 40, 3]);
  const s = protocolSplit(set, { seed: 0, testPerClass: 10, valPerClass: 2, trainCounts: null });
  assertDisjointSubsets(s, set);
  assert.equal(classCounts(s.test), [10, 4, 10, 2]);
  assert.equal(classCounts(s.val), [2, 0, 2, 0]);
  assert.equal(classCounts(s.train), [28, 1, 28, 1]);
  assert.ok(s.warnings.some((w) => w.includes('multiple_diseases') && w.includes('test capped at 4')), s.warnings.join('; '));
  assert.ok(s.warnings.some((w) => w.includes('scab') && w.includes('validation capped at 0')), s.warnings.join('; '));
  assert.throws(() => protocolSplit(set, { seed: 0, testPerClass: 2, trainCounts: { healthy: 5, rust: 5, scab: 1 } }), /no count for "multiple_diseases"/);
  assert.throws(() => protocolSplit(set, { seed: 0, testPerClass: 2, trainCounts: { healthy: 5, multiple_diseases: 1, rust: 5, scab: 1, frog: 2 } }), /unknown class "frog"/);
  assert.throws(() => protocolSplit(set, { seed: 0, testPerClass: 2, valPerClass: 1, valFraction: 0.1, trainCounts: null }), /not both/);
  assert.throws(() => protocolSplit(set, { seed: 0, testPerClass: -1, trainCounts: null }), /testPerClass/);
  assert.throws(() => protocolSplit({ ...set, items: [...set.items, set.items[0]!] }, { seed: 0, testPerClass: 1, trainCounts: null }), /twice/);
});

test('splitsJson / splitsFromJson: round trip through JSON; missing ids, overlaps and other labels are errors', () => {
  const set = fakeSet([30, 8, 30, 30]);
  const opts = { testPerClass: 4, valPerClass: 2, trainCounts: { healthy: 10, multiple_diseases: 2, rust: 10, scab: 10 } };
  const splits = [protocolSplit(set, { seed: 0, ...opts }), protocolSplit(set, { seed: 1, ...opts })];
  const json = splitsJson(splits);
  assert.equal(json.seeds.map((s) => s.seed), [0, 1]);
  const e = json.seeds[0]!;
  assert.equal(e.train, [...e.train].sort(), 'ids sorted');
  assert.equal(e.counts.test, { healthy: 4, multiple_diseases: 4, rust: 4, scab: 4 });
  assert.equal(e.counts.train, { healthy: 10, multiple_diseases: 2, rust: 10, scab: 10 });
  const back = splitsFromJson(JSON.parse(JSON.stringify(json)), set);
  back.forEach((b, k) => {
    assert.is(b.seed, splits[k]!.seed);
    for (const part of ['train', 'val', 'test'] as const) assert.equal(ids(b[part]), ids(splits[k]![part]), `seed ${b.seed} ${part}`);
  });
  assert.equal(splitIds(back[1]!), splitIds(splits[1]!));

  // the set lacks some ids (e.g. another dedup): the error names them and says how many
  const gone = new Set(e.test.slice(0, 7));
  const smaller = { ...set, items: set.items.filter((it) => !gone.has(it.id)) };
  assert.throws(() => splitsFromJson(json, smaller), (err: Error) => /seed 0/.test(err.message) && err.message.includes(e.test[0]!) && /7 in all/.test(err.message));
  const overlap = { seeds: [{ ...e, val: [...e.val, e.train[0]!], counts: undefined }] };
  assert.throws(() => splitsFromJson(overlap, set), (err: Error) => err.message.includes(`"${e.train[0]}" (train and val)`) && /twice/.test(err.message));
  const relabelled = { ...set, items: set.items.map((it) => (it.id === e.test[0] ? { ...it, label: (it.label + 1) % 4 } : it)) };
  assert.throws(() => splitsFromJson(json, relabelled), /test class counts differ/);
  assert.throws(() => splitsFromJson({ seeds: 3 }, set), /expected/);
});

// ---------------------------------------------------------------------------------------------
// TrainConfig.split in prepareData and the trainer

const base: Partial<TrainConfig> = {
  arch: 'tiny', imageSize: 16, counts: { healthy: 10, multiple_diseases: 6, rust: 10, scab: 10 }, syntheticSeed: 5,
  batchSize: 6, evalBatchSize: 16, epochs: 1, lr: 0.05, warmupEpochs: 0.5, augment: false,
};

/** A protocol split of the synthetic pool that `base` renders. */
function syntheticSplit(seed: number): ProtocolSplit {
  const pool = syntheticSource(base.counts!, base.imageSize!, base.syntheticSeed!).set;
  return protocolSplit(pool, { seed, testPerClass: 2, valPerClass: 1, trainCounts: null });
}

test('TrainConfig.split: prepareData loads exactly the listed synthetic items, into the right loaders', async () => {
  const split = syntheticSplit(11);
  const lists = splitIds(split);
  assert.ok(lists.train.every((id) => /^5\/\d+$/.test(id)), 'ids are <syntheticSeed>/<index>');
  const config = resolveConfig(base, { split: lists, heldOutTest: 50 /* not used with a split */ });
  const data = await prepareData(config);
  assert.equal(ids(data.train), lists.train);
  assert.equal(ids(data.val), lists.val);
  assert.equal(ids(data.test), lists.test);
  assert.equal(data.trainCounts, classCounts(split.train));
  assert.equal(data.extraCounts, [0, 0, 0, 0]);
  // the loaders' datasets hold those items' images (compared with an independent render)
  const ref = syntheticSource(base.counts!, 16, 5);
  const check = async (loaderDs: ImageDataset, items: LabeledItem[], what: string) => {
    assert.is(loaderDs.length, items.length, `${what} size`);
    const want = ref.open(items);
    for (let i = 0; i < items.length; i++) {
      const [a, b] = await Promise.all([loaderDs.get(i), want.get(i)]);
      assert.is(a.label, items[i]!.label, `${what} ${i} label`);
      assert.ok(Buffer.from(a.image.data).equals(Buffer.from(b.image.data)), `${what} ${i} (${items[i]!.id}) pixels`);
    }
  };
  await check(data.trainLoader.dataset, split.train.items, 'train');
  await check(data.valLoader.dataset, split.val.items, 'val');
  await check(data.testLoader.dataset, split.test.items, 'test');
  assert.match(data.description, /explicit split/);
});

test('TrainConfig.split: extra training images join train only; unknown and overlapping ids are errors', async () => {
  const lists = splitIds(syntheticSplit(12));
  const extraDir = join(tmp, 'extra');
  mkdirSync(extraDir);
  for (let k = 0; k < 3; k++) writeFileSync(join(extraDir, `s${k}.png`), await raw(noise(16, 16, 40 + k), 16, 16).png().toBuffer());
  const data = await prepareData(resolveConfig(base, { split: lists, extraTrain: [{ className: 'multiple_diseases', dir: extraDir }], balancedSampling: true }));
  assert.equal(data.extraCounts, [0, 3, 0, 0]);
  assert.is(data.trainLoader.dataset.length, lists.train.length + 3);
  assert.equal(ids(data.val), lists.val);
  assert.equal(ids(data.test), lists.test);

  const unknown = ['5/900', '5/901', '5/902', '5/903', '5/904', '5/905', '5/906'];
  await rejects(() => prepareData(resolveConfig(base, { split: { ...lists, test: [...lists.test, ...unknown] } })),
    (e) => e.message.includes('"5/900"') && /7 id\(s\) are not in/.test(e.message) && /7 in all/.test(e.message));
  // ids of another synthetic seed are not in this pool either
  await rejects(() => prepareData(resolveConfig(base, { split: { ...lists, val: ['0/1'] } })), /"0\/1"/);
  await rejects(() => prepareData(resolveConfig(base, { split: { ...lists, val: [...lists.val, lists.train[0]!] } })),
    (e) => /overlap/.test(e.message) && e.message.includes(`"${lists.train[0]}" (train and val)`));
  // shape errors are config errors naming the key, from a file too
  assert.throws(() => resolveConfig(base, { split: { ...lists, test: [] } }), (e: Error) => e instanceof ConfigError && /"split.test" is empty/.test(e.message));
  assert.throws(() => resolveConfig(base, { split: { ...lists, train: [...lists.train, lists.train[0]!] } }), /"split.train" lists 1 id\(s\) twice/);
  const f = join(tmp, 'split-config.json');
  writeFileSync(f, JSON.stringify({ epochs: 1, split: { train: ['a'], val: 'b', test: ['c'] } }));
  await rejects(() => readConfigFile(f), (e) => e.message.includes(f) && /"split.val"/.test(e.message));
  writeFileSync(f, JSON.stringify({ split: lists }));
  assert.equal((await readConfigFile(f)).split, lists);
});

test('training with an explicit split writes test-predictions.csv: one row per test image, matching the result', async () => {
  const split = syntheticSplit(13);
  const runDir = join(tmp, 'run-split');
  const r = await train(resolveConfig(base, { split: splitIds(split) }), { runDir, progress: false, verbose: false });
  const t = r.test!;
  assert.equal([...t.ids].sort(), ids(split.test).sort());
  const lines = readFileSync(join(runDir, 'test-predictions.csv'), 'utf8').trim().split('\n');
  assert.is(lines[0], 'id,path,label,predicted,p_healthy,p_multiple_diseases,p_rust,p_scab');
  assert.is(lines.length - 1, split.test.items.length);
  const byId = new Map(split.test.items.map((it) => [it.id, it]));
  const conf = PP.map(() => PP.map(() => 0));
  lines.slice(1).forEach((line, i) => {
    const [id, path, label, predicted, ...p] = line.split(',');
    const item = byId.get(id!)!;
    assert.ok(item, `row ${i}: ${id} is a test item`);
    assert.is(id, t.ids[i], 'rows in the order of TrainResult.test');
    assert.is(path, item.path);
    assert.is(label, PP[item.label]);
    assert.is(PP.indexOf(label!), t.labels[i]);
    const probs = p.map(Number);
    assert.ok(Math.abs(probs.reduce((s, v) => s + v, 0) - 1) < 1e-5, 'probabilities sum to 1');
    probs.forEach((v, c) => assert.ok(Math.abs(v - t.probs[i * 4 + c]!) < 1e-8, `row ${i} p_${PP[c]}`));
    assert.is(predicted, PP[probs.indexOf(Math.max(...probs))]);
    conf[item.label]![PP.indexOf(predicted!)]++;
  });
  const rep = JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')) as { confusion: { matrix: number[][] }; split: string };
  assert.equal(rep.confusion.matrix, conf, 'the CSV gives the report\'s confusion matrix');
  assert.match(rep.split, /explicit test split/);
  const saved = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as TrainConfig;
  assert.equal(saved.split, splitIds(split), 'the split is saved with the run');
});

test.run();
