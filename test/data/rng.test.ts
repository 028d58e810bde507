/**
 * The one seeded host RNG (@foliar/data's Rng and the diffusion trainers' frozen streams): what seeded
 * code produces must not change, because cached experiment stages, splits.json files and resumed runs
 * depend on it bit for bit. The hashes below were taken before the generators moved into @foliar/data
 * (issue 13, item 5) and must stay as they are.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { Rng, hashSeed, hashStream, permutation } from '@foliar/data';
import {
  renderLeaf, syntheticLeafDataset, LEAF_CLASSES, stratifiedSplit, protocolSplit, classBalancedSampler, subsampleByClass,
  randomResizedCropBox, trainTransform, type LabeledImageSet,
} from '@foliar/classifier';
import { epochIndex } from '@foliar/diffusion';

const h = (x: string | Uint8Array): string => createHash('sha256').update(x).digest('hex').slice(0, 16);

test('procedural leaves: the same bytes for a (label, seed) as before the move', () => {
  const want: Record<string, string> = {
    'healthy 0': 'bf8df4a7fabe14ff', 'healthy 7': '75390554b009e455', 'healthy 123456': 'fd9ed0f6ad7b8b0b',
    'multiple_diseases 0': 'fd4269eadec989e0', 'multiple_diseases 7': '89740511ad6be91a', 'multiple_diseases 123456': '1607ac9c7829fab3',
    'rust 0': 'bc563e91eae68e1a', 'rust 7': '77c1d2b86daa808f', 'rust 123456': '02b3d6493fc28b10',
    'scab 0': '4a1801eb99d0a126', 'scab 7': '7329d37ea3011d48', 'scab 123456': '30615fd3a4879f68',
  };
  for (const [i, label] of LEAF_CLASSES.entries()) {
    for (const seed of [0, 7, 123456]) assert.is(h(renderLeaf({ label, seed: seed + i, width: 48, height: 40 }).data), want[`${label} ${seed}`], `${label} ${seed}`);
  }
  const ds = syntheticLeafDataset({ seed: 3, size: 32, counts: { healthy: 5, multiple_diseases: 2, rust: 6, scab: 4 } });
  assert.is(h(ds.labels.join(',')), '21b687e25bcd2148');
  assert.is(h(Array.from({ length: ds.length }, (_, i) => h(ds.get(i).image.data)).join()), '151bf1532a717e38');
});

test('splits, sampler, crops and augmentations: the same as before the move', () => {
  const set: LabeledImageSet = { classNames: ['a', 'b', 'c'], source: 'x', items: Array.from({ length: 90 }, (_, i) => ({ path: `/p/${i}.png`, id: `img${i}`, label: i % 3 })) };
  assert.is(h(JSON.stringify(stratifiedSplit(set, { train: 0.7, val: 0.15, test: 0.15 }, 5))), 'dad18312d18f8536');
  assert.is(h(JSON.stringify(protocolSplit(set, { seed: 9, testPerClass: 5, trainCounts: { a: 10, b: 12, c: 8 } }))), 'f67501a98cbcdb08');
  assert.is(h(JSON.stringify(subsampleByClass(set, [4, 5, 6], 11))), '574bedde4838ff26');
  const sampler = classBalancedSampler(set.items.map((x) => x.label), { seed: 2, numSamples: 50 });
  assert.is(h(JSON.stringify([0, 1, 2].map((e) => Array.from(sampler(e))))), '5c170a8364bcae3d');
  const r = new Rng(1, 2, 3);
  assert.is(h(Array.from({ length: 100 }, () => r.nextUint32()).join()), '63bf32921fd64d8b');
  assert.is(h(JSON.stringify(Array.from({ length: 20 }, (_, k) => randomResizedCropBox(64, 48, new Rng(4, 0xa06, 0, k))))), 'acc8bb4e37f9ea17');
  const leaf = renderLeaf({ label: 'rust', seed: 1, width: 64, height: 64 });
  const tt = trainTransform({ size: 32 });
  assert.is(h(Array.from({ length: 5 }, (_, k) => h(tt(leaf, new Rng(4, 0xa06, 1, k)).data)).join()), 'dfdbd28cfcc41093');
});

test('the diffusion trainers\' streams: data order and VAE crop offsets as before the move', () => {
  assert.is(h(Array.from({ length: 200 }, (_, k) => epochIndex(17, k, 42)).join()), '5cf0b33a3e7592ba');
  assert.equal(permutation(5, 0).sort(), [0, 1, 2, 3, 4]);
  const v: number[] = [];
  for (const seed of [0, 1, 42, 123456789]) {
    for (let k = 0; k < 50; k++) {
      const next = hashStream(seed, k);
      v.push(Math.floor(next() * 38), Math.floor(next() * 38));
    }
  }
  assert.is(v.slice(0, 12).join(), '0,22,28,21,4,33,31,34,9,8,16,1');
  assert.is(h(v.join()), '5d639dd82d04897a');
});

test('Rng: one class over two cores; mulberry32 for the leaves, sfc32 keyed by integers', () => {
  const m = Rng.mulberry32(hashSeed(1, 2));
  const a = m.next();
  assert.ok(a >= 0 && a < 1);
  assert.is(Rng.mulberry32(7).nextUint32(), Rng.mulberry32(7).nextUint32());
  assert.is.not(new Rng(7).nextUint32(), Rng.mulberry32(7).nextUint32());
  const x = new Rng(5);
  for (let i = 0; i < 100; i++) {
    const k = x.intBetween(2, 4);
    assert.ok(k >= 2 && k <= 4 && Number.isInteger(k));
  }
  assert.throws(() => x.int(0), /positive integer/);
});

test.run();
