import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { philox4x32, Generator, manualSeed, rand, randn, randint, Tensor, type RandomAttrs, type Backend } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import { setup, teardown, backends, assertClose, assertExact } from '../helpers.js';

const test = suite('random');
test.before(async () => { await setup(); });
test.after(() => teardown());

const hex = (a: Uint32Array) => Array.from(a, (v) => '0x' + v.toString(16).padStart(8, '0'));

test('Philox4x32-10 known answers (Random123 reference vectors)', () => {
  const out = new Uint32Array(4);
  philox4x32(0, 0, 0, 0, 0, 0, out);
  assert.equal(hex(out), ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8'], 'counter 0, key 0');
  const f = 0xffffffff;
  philox4x32(f, f, f, f, f, f, out);
  assert.equal(hex(out), ['0x408f276d', '0x41c83b0e', '0xa20bc7c6', '0x6d5451fd'], 'counter and key all ones');
});

function bits(be: Backend, a: Omit<RandomAttrs, 'dist'>): Promise<ArrayLike<number>> {
  const s = be.run('random', [], { ...a, dist: 'bits' }) as F.Storage;
  const t = new Tensor(s, [a.n]);
  return t.data().finally(() => t.dispose());
}

test('same seed, same bits on CPU and WebGPU; the CPU stream is Philox itself', async () => {
  const { cpu, gpu } = backends();
  for (const attrs of [
    { n: 1001, seedLo: 42, seedHi: 0, counter: 0, p0: 0, p1: 1 },
    { n: 13, seedLo: 0xdeadbeef, seedHi: 7, counter: 0xfffffffe, p0: 0, p1: 1 }, // counter crosses 2^32
  ]) {
    const c = await bits(cpu, attrs), g = await bits(gpu, attrs);
    assertExact(g, c, `bits WebGPU vs CPU (counter ${attrs.counter})`);
    // element i is lane i % 4 of block counter + i / 4
    const block = new Uint32Array(4);
    for (const i of [0, 5, attrs.n - 1]) {
      const ctr = attrs.counter + Math.floor(i / 4);
      philox4x32(ctr >>> 0, Math.floor(ctr / 2 ** 32), 0, 0, attrs.seedLo, attrs.seedHi, block);
      assert.is(c[i], block[i % 4], `element ${i} is Philox(block ${ctr}) lane ${i % 4}`);
    }
  }
});

test('rand is bit-identical on both backends; randn agrees within 1e-5', async () => {
  const { cpu, gpu } = backends();
  for (const shape of [[7], [3, 5, 17], [1, 129, 3]]) {
    const uc = await rand(shape, { generator: new Generator(123), backend: cpu }).data();
    const ug = await rand(shape, { generator: new Generator(123), backend: gpu }).data();
    assertExact(ug, uc, `rand ${JSON.stringify(shape)}`);
    const lc = await rand(shape, { generator: new Generator(5), backend: cpu, low: -2, high: 3 }).data();
    const lg = await rand(shape, { generator: new Generator(5), backend: gpu, low: -2, high: 3 }).data();
    await assertClose(lg, lc, { rtol: 0, atol: 1e-6, msg: 'rand in [-2, 3)' });
    const nc = await randn(shape, { generator: new Generator(123), backend: cpu }).data();
    const ng = await randn(shape, { generator: new Generator(123), backend: gpu }).data();
    await assertClose(ng, nc, { rtol: 0, atol: 1e-5, msg: `randn ${JSON.stringify(shape)}` });
  }
});

test('generators: determinism, different seeds differ, successive calls differ, state save/restore', async () => {
  const { cpu } = backends();
  const g1 = new Generator(1), g2 = new Generator(2);
  const a = await rand([64], { generator: g1, backend: cpu }).data();
  const b = await rand([64], { generator: g2, backend: cpu }).data();
  const same = a.filter((v, i) => v === b[i]).length;
  assert.ok(same < 2, `different seeds give different numbers (${same} equal of 64)`);
  const st = g1.getState();
  const c = await rand([64], { generator: g1, backend: cpu }).data();
  assert.ok(c.some((v, i) => v !== a[i]), 'the second call continues the stream');
  g1.setState(st);
  assertExact(await rand([64], { generator: g1, backend: cpu }).data(), c, 'restored state replays the stream');
  assertExact(await rand([64], { generator: new Generator(1), backend: cpu }).data(), a, 'same seed replays');
  // a 64-bit seed: the high word matters
  const hi = await rand([8], { generator: new Generator(2 ** 32 + 1), backend: cpu }).data();
  const lo = await rand([8], { generator: new Generator(1), backend: cpu }).data();
  assert.ok(hi.some((v, i) => v !== lo[i]), 'seed 2^32+1 differs from seed 1');
  // the default generator follows manualSeed
  manualSeed(77);
  const d1 = await rand([8], { backend: cpu }).data();
  manualSeed(77);
  assertExact(await rand([8], { backend: cpu }).data(), d1, 'manualSeed');
  // fork: an independent sub-stream
  const f = await rand([64], { generator: new Generator(1).fork(3), backend: cpu }).data();
  assert.ok(f.filter((v, i) => v === a[i]).length < 2);
});

test('distribution sanity: uniform range and moments, randn mean/std, randint range', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const n = 200_000;
    const u = await rand([n], { generator: new Generator(9), backend: be }).data();
    let mn = Infinity, mx = -Infinity, s = 0;
    for (const v of u) { mn = Math.min(mn, v); mx = Math.max(mx, v); s += v; }
    assert.ok(mn >= 0 && mx < 1, `uniform in [0, 1) on ${be.name} (got ${mn}..${mx})`);
    assert.ok(Math.abs(s / n - 0.5) < 0.005, `uniform mean ${s / n}`);
    const z = await randn([n], { generator: new Generator(10), backend: be, mean: 3, std: 2 }).data();
    let zs = 0, zq = 0;
    for (const v of z) { zs += v; zq += v * v; }
    const mean = zs / n, std = Math.sqrt(zq / n - mean * mean);
    assert.ok(Math.abs(mean - 3) < 0.02, `randn mean ${mean} on ${be.name}`);
    assert.ok(Math.abs(std - 2) < 0.02, `randn std ${std} on ${be.name}`);
    assert.ok(z.every(Number.isFinite), 'randn is finite');
    const ri = randint(-3, 4, [10_000], { generator: new Generator(11), backend: be });
    assert.is(ri.dtype, 'int32');
    const rd = await ri.data();
    const counts = new Map<number, number>();
    for (const v of rd) counts.set(v, (counts.get(v) ?? 0) + 1);
    assert.equal([...counts.keys()].sort((x, y) => x - y), [-3, -2, -1, 0, 1, 2, 3], `randint values on ${be.name}`);
    for (const c of counts.values()) assert.ok(Math.abs(c - 10_000 / 7) < 200);
  }
});

test('randn requiresGrad option and empty shapes', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const t = randn([2, 3], { backend: be, requiresGrad: true });
    assert.ok(t.requiresGrad && t.isLeaf);
    assert.is((await rand([0, 4], { backend: be }).data()).length, 0);
  }
});

test('randint refuses an empty range (low >= high) as PyTorch does; a one-value range works', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    for (const [lo, hi] of [[5, 5], [5, 4], [0, -3]] as const) {
      assert.throws(() => randint(lo, hi, [3], { backend: be }), (e: unknown) => e instanceof RangeError && /randint/.test((e as Error).message) && new RegExp(`\\b${lo}\\b`).test((e as Error).message), `randint(${lo}, ${hi}) on ${be.name}`);
    }
    assert.equal(Array.from(await randint(4, 5, [3], { backend: be }).data()), [4, 4, 4], `randint(4, 5) on ${be.name}`);
  }
});

test.run();
