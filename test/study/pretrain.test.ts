import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dedupeByContent, protocolSplit, syntheticSource } from '@foliar/classifier';
import { studyProfile } from '../../examples/study/profiles.js';
import { photoPretrainPool, proceduralPretrainPool, pretrainExamples, promptWords } from '../../examples/study/pretrain.js';
import type { StudyData } from '../../examples/study/data.js';

/**
 * The generator's pretraining pool may hold no rare-class image and nothing that any seed validates
 * or tests on: for photographs only images inside every seed's training split; for the procedural
 * leaves a pool rendered from another generator seed, whose pixels match no image of the study's set.
 */
const test = suite('study pretraining pool');
const P = studyProfile('smoke');
const COMMON = ['healthy', 'rust', 'scab'];
const RARE = 'multiple_diseases';

function studyData(): StudyData {
  const counts = { healthy: 30, multiple_diseases: 12, rust: 30, scab: 30 };
  const source = syntheticSource(counts, P.imageSize, 0);
  return { source, set: source.set, dedup: null as never, classifierData: null, poolCounts: counts, describe: 'test' };
}

const pixelsKey = (im: { data: Uint8Array }) => Buffer.from(im.data).toString('base64');

test('photographs: every pool image lies in the training split of every seed, none of the rare class', async () => {
  const data = studyData();
  const splits = [0, 1, 2].map((seed) => protocolSplit(data.set, { seed, trainCounts: { healthy: 14, multiple_diseases: 4, rust: 14, scab: 14 }, valPerClass: 3, testPerClass: 5 }));
  const pool = await photoPretrainPool({ ...P, pretrain: { perClass: 100 } }, data, splits, COMMON);
  assert.ok(pool.items.length > 0, 'pool is empty');
  const ids = (pool.key as { ids: string[] }).ids;
  assert.is(ids.length, pool.items.length);
  for (const s of splits) {
    const train = new Set(s.train.items.map((it) => it.id));
    const held = new Set([...s.val.items, ...s.test.items].map((it) => it.id));
    for (const id of ids) {
      assert.ok(train.has(id), `seed ${s.seed}: ${id} is not in the training split`);
      assert.not.ok(held.has(id), `seed ${s.seed}: ${id} is a validation or test image`);
    }
  }
  assert.not.ok(pool.items.some((it) => it.className === RARE), 'rare class in the pool');
  // the images are the items' own pixels
  const first = await data.source.open([data.set.items.find((it) => it.id === ids[0])!]).get(0);
  assert.is(pixelsKey(pool.items[0]!.image), pixelsKey(first.image));
});

test('photographs: the per-class cap holds and a pool with no common image is an error', async () => {
  const data = studyData();
  const splits = [0, 1].map((seed) => protocolSplit(data.set, { seed, trainCounts: { healthy: 14, multiple_diseases: 4, rust: 14, scab: 14 }, valPerClass: 3, testPerClass: 5 }));
  const pool = await photoPretrainPool({ ...P, pretrain: { perClass: 2 } }, data, splits, COMMON);
  for (const c of COMMON) assert.ok(pool.items.filter((it) => it.className === c).length <= 2, c);
  try {
    await photoPretrainPool(P, data, splits, ['no_such_class']);
    assert.unreachable('no error');
  } catch (e) {
    assert.match((e as Error).message, /no common-class image/);
  }
});

test('procedural: common classes only, and no image equals one of the study set', async () => {
  const pool = await proceduralPretrainPool({ ...P, pretrain: { perClass: 6 } }, COMMON);
  assert.is(pool.items.length, 18);
  assert.equal([...new Set(pool.items.map((it) => it.className))].sort(), COMMON);
  const data = studyData();
  const seen = new Set<string>();
  const ds = data.source.open(data.set.items);
  for (let i = 0; i < ds.length; i++) seen.add(pixelsKey((await ds.get(i)).image));
  for (const it of pool.items) assert.not.ok(seen.has(pixelsKey(it.image)), 'a pretraining image equals a study image');
  // and the study's own dedup would not merge them either: all pool images are distinct
  const d = await dedupeByContent({ classNames: ['a'], items: pool.items.map((_, i) => ({ path: `p${i}`, id: `p${i}`, label: 0 })), source: 't' }, async (it) => pool.items[Number(it.id.slice(1))]!.image);
  assert.is(d.counts.duplicateGroups, 0);
});

test('captions: own class and class prompt for each image, an empty caption for every 4th', async () => {
  const pool = await proceduralPretrainPool({ ...P, pretrain: { perClass: 4 } }, COMMON);
  const ex = pretrainExamples(pool, 'a photo of a leaf', (c) => `a photo of a ${c} leaf`);
  assert.is(ex.length, 12 * 2 + 3);
  assert.is(ex.filter((e) => e.caption === '').length, 3);
  for (const it of pool.items) assert.ok(ex.some((e) => e.image === it.image && e.caption === `a photo of a ${it.className} leaf`));
});

test('captions: genericEvery / emptyEvery thin the class-prompt and empty captions; promptWords hold the prompts\' words, not the identifier', async () => {
  const pool = await proceduralPretrainPool({ ...P, pretrain: { perClass: 4 } }, COMMON);
  const ex = pretrainExamples(pool, 'a photo of a leaf', (c) => `a photo of a ${c} leaf`, { genericEvery: 3, emptyEvery: 5 });
  assert.is(ex.filter((e) => e.caption === 'a photo of a leaf').length, 4, 'images 0, 3, 6, 9 under the class prompt');
  assert.is(ex.filter((e) => e.caption === '').length, 3, 'images 0, 5, 10 unconditioned');
  assert.is(ex.filter((e) => e.caption.includes(' leaf') && e.caption !== 'a photo of a leaf').length, 12, 'every image under its own class');
  assert.throws(() => pretrainExamples(pool, 'x', (c) => c, { genericEvery: 0 }), /genericEvery must be a positive integer/);
  const words = promptWords('a photo of a leaf', ['a photo of a multiple diseases leaf', 'a photo of a rust leaf']);
  for (const w of ['photo', 'leaf', 'multiple', 'diseases', 'rust', 'pirate', 'wallpaper']) assert.ok(words.includes(w), w);
  assert.not.ok(words.some((w) => w.includes('diseaes')), 'the DreamBooth identifier stays rare');
});

test.run();
