import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { tensor, type Tensor } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import {
  setup, teardown, backends, randArray, numelOf, assertClose, assertExact, gradcheck, compareBackends, prng,
} from '../helpers.js';

const test = suite('reduce');
test.before(async () => { await setup(); });
test.after(() => teardown());

/** Independent f64 reference: groups the elements of each output position and applies `fn`. */
function refReduce(data: ArrayLike<number>, shape: number[], dims: number[], fn: (xs: number[]) => number): { data: number[]; shape: number[] } {
  const rank = shape.length;
  const dd = dims.map((d) => (d < 0 ? d + rank : d));
  const outShape = shape.map((s, i) => (dd.includes(i) ? 1 : s));
  const groups = new Map<number, number[]>();
  const strides = shape.map((_, i) => numelOf(shape.slice(i + 1)));
  const ostrides = outShape.map((_, i) => numelOf(outShape.slice(i + 1)));
  for (let i = 0; i < data.length; i++) {
    let o = 0;
    for (let d = 0; d < rank; d++) {
      const idx = Math.floor(i / strides[d]!) % shape[d]!;
      if (!dd.includes(d)) o += idx * ostrides[d]!;
    }
    let g = groups.get(o);
    if (!g) groups.set(o, (g = []));
    g.push(data[i]!);
  }
  const n = numelOf(outShape);
  return { data: Array.from({ length: n }, (_, o) => fn(groups.get(o) ?? [])), shape: outShape };
}

const sumF = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const meanF = (xs: number[]) => sumF(xs) / xs.length;
const maxF = (xs: number[]) => Math.max(...xs);
const minF = (xs: number[]) => Math.min(...xs);
const argF = (better: (a: number, b: number) => boolean) => (xs: number[]) => {
  let bi = 0;
  for (let i = 1; i < xs.length; i++) if (better(xs[i]!, xs[bi]!)) bi = i;
  return bi;
};
const varF = (corr: number) => (xs: number[]) => {
  const m = meanF(xs);
  return xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - corr);
};
const lseF = (xs: number[]) => {
  const m = maxF(xs);
  if (m === -Infinity) return -Infinity;
  return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
};

const CASES: [number[], number | number[] | undefined][] = [
  [[7], 0], [[7], undefined], [[3, 5, 17], 2], [[3, 5, 17], 1], [[3, 5, 17], 0], [[3, 5, 17], [0, 2]], [[3, 5, 17], [0, 1]],
  [[3, 5, 17], [-1, -2]], [[3, 5, 17], undefined], [[1, 129, 3], 1], [[2, 3, 4, 5], [1, 3]], [[2, 300], 1],
  // separated runs of dims (reduced run by run): a conv bias gradient's [0, 2, 3], and two runs of two
  [[5, 6, 17, 19], [0, 2, 3]], [[2, 3, 4, 5, 6], [0, 1, 3]], [[2, 3, 4, 5, 6], [0, 1, 3, 4]],
  // a kept middle run reduced by one grouped kernel: one pass, and one whose chunks cross the groups
  [[3, 40, 70], [0, 2]], [[3, 5, 40, 50], [0, 2, 3]], [[7, 3, 300], [0, 2]],
];

type Red = (x: Tensor, dim: number | number[] | undefined, keepdim: boolean) => Tensor;
const REDUCTIONS: [string, Red, (xs: number[]) => number][] = [
  ['sum', (x, d, k) => F.sum(x, d, k), sumF],
  ['mean', (x, d, k) => F.mean(x, d, k), meanF],
  ['max', (x, d, k) => F.max(x, d, k), maxF],
  ['min', (x, d, k) => F.min(x, d, k), minF],
  ['var', (x, d, k) => F.variance(x, d, { keepdim: k }), varF(1)],
  ['var biased', (x, d, k) => F.variance(x, d, { unbiased: false, keepdim: k }), varF(0)],
  ['std', (x, d, k) => F.std(x, d, { keepdim: k }), (xs) => Math.sqrt(varF(1)(xs))],
  ['std biased', (x, d, k) => F.std(x, d, { unbiased: false, keepdim: k }), (xs) => Math.sqrt(varF(0)(xs))],
  ['logsumexp', (x, d, k) => F.logsumexp(x, d ?? x.shape.map((_, i) => i), k), lseF],
];

test('reductions over any dims, keepdim or not, on both backends match an f64 reference', async () => {
  const { cpu, gpu } = backends();
  for (const [shape, dim] of CASES) {
    const data = randArray(numelOf(shape), numelOf(shape), -3, 3);
    const dims = dim === undefined ? shape.map((_, i) => i) : typeof dim === 'number' ? [dim] : dim;
    for (const [name, f, ref] of REDUCTIONS) {
      const want = refReduce(data, shape, dims, ref);
      for (const be of [cpu, gpu]) {
        for (const keepdim of [false, true]) {
          const x = tensor(data, { shape, backend: be });
          const y = f(x, dim, keepdim);
          const wantShape = keepdim ? want.shape : want.shape.filter((_, i) => !dims.map((d) => (d < 0 ? d + shape.length : d)).includes(i));
          assert.equal(y.shape, wantShape, `${name} ${JSON.stringify(shape)} dim ${JSON.stringify(dim)} keepdim ${keepdim} shape on ${be.name}`);
          await assertClose(y, want.data, { rtol: 1e-4, msg: `${name} ${JSON.stringify(shape)} dim ${JSON.stringify(dim)} keepdim ${keepdim} on ${be.name}` });
          x.dispose();
          y.dispose();
        }
      }
    }
  }
});

test('argmax/argmin: first index of the extreme, int32, any dim, keepdim, flattened', async () => {
  const { cpu, gpu } = backends();
  for (const [shape, dim] of CASES) {
    if (Array.isArray(dim)) continue;
    // coarse values so ties occur: the first occurrence must win
    const data = randArray(numelOf(shape), 3, -3, 3).map((v) => Math.round(v));
    for (const [name, f, better] of [
      ['argmax', F.argmax, (a: number, b: number) => a > b],
      ['argmin', F.argmin, (a: number, b: number) => a < b],
    ] as const) {
      const want = dim === undefined ? [argF(better)(Array.from(data))] : refReduce(data, shape, [dim], argF(better)).data;
      for (const be of [cpu, gpu]) {
        for (const keepdim of [false, true]) {
          const y = f(tensor(data, { shape, backend: be }), dim, keepdim);
          assert.is(y.dtype, 'int32');
          if (dim !== undefined && keepdim) assert.is(y.rank, shape.length);
          assert.equal(Array.from(await y.data()), want, `${name} ${JSON.stringify(shape)} dim ${dim} keepdim ${keepdim} on ${be.name}`);
        }
      }
    }
  }
  // a long axis (> one chunk) with the extreme near the end and a tie with a later element
  const n = 1000;
  const d = new Float32Array(n).fill(0);
  d[777] = 5;
  d[901] = 5;
  d[13] = -2;
  for (const be of [cpu, gpu]) {
    assert.is(await F.argmax(tensor(d, { backend: be })).item(), 777, `long argmax on ${be.name}`);
    assert.is(await F.argmin(tensor(d, { backend: be })).item(), 13, `long argmin on ${be.name}`);
  }
});

test('logsumexp: -inf rows, large values, mixed -inf', async () => {
  const { cpu, gpu } = backends();
  const data = new Float32Array([
    -Infinity, -Infinity, -Infinity, -Infinity, // all -inf -> -inf
    1000, 1000, 999, -Infinity, // large: no overflow
    -1000, -1001, -1002, -1003, // very negative: no underflow to -inf
    0, -Infinity, 0, -Infinity, // mixed -> log 2
  ]);
  const want = [-Infinity, 1000 + Math.log(2 + Math.exp(-1)), -1000 + Math.log(1 + Math.exp(-1) + Math.exp(-2) + Math.exp(-3)), Math.log(2)];
  for (const be of [cpu, gpu]) {
    const y = F.logsumexp(tensor(data, { shape: [4, 4], backend: be }), 1);
    await assertClose(y, want, { rtol: 1e-6, atol: 1e-4, msg: `logsumexp on ${be.name}` });
    const k = F.logsumexp(tensor(data, { shape: [4, 4], backend: be }), -1, true);
    assert.equal(k.shape, [4, 1]);
  }
  // gradient of logsumexp is softmax, also for large values
  const x = tensor([1000, 1000, 999, 0], { backend: cpu, requiresGrad: true });
  F.logsumexp(x, 0).backward();
  const e = [1, 1, Math.exp(-1), 0], s = e.reduce((a, b) => a + b);
  await assertClose(x.grad!, e.map((v) => v / s), { rtol: 1e-5, atol: 1e-6 });
});

test('long reductions (1e6 elements) keep f32 precision', async () => {
  const { cpu, gpu } = backends();
  const n = 1_000_000;
  const data = randArray(n, 99, 0, 1);
  let s = 0, mx = -Infinity;
  for (const v of data) { s += v; mx = Math.max(mx, v); }
  const m = s / n;
  let v2 = 0;
  for (const v of data) v2 += (v - m) ** 2;
  for (const be of [cpu, gpu]) {
    const x = tensor(data, { backend: be });
    await assertClose(F.sum(x), [s], { rtol: 1e-5, atol: 0, msg: `sum of 1e6 on ${be.name}` });
    await assertClose(F.mean(x), [m], { rtol: 1e-5, atol: 0, msg: `mean of 1e6 on ${be.name}` });
    await assertClose(F.max(x), [mx], { rtol: 0, atol: 0, msg: `max of 1e6 on ${be.name}` });
    await assertClose(F.variance(x), [v2 / (n - 1)], { rtol: 1e-4, atol: 0, msg: `var of 1e6 on ${be.name}` });
    // a constant offset must not destroy the variance (two-pass algorithm)
    const shifted = F.add(x, 1000);
    await assertClose(F.variance(shifted), [v2 / (n - 1)], { rtol: 1e-2, atol: 0, msg: `var of 1e6 shifted by 1000 on ${be.name}` });
    // a long axis inside a 2-D tensor
    const rows = F.sum(tensor(data, { shape: [4, n / 4], backend: be }), 1);
    const want = [0, 1, 2, 3].map((r) => { let a = 0; for (let i = 0; i < n / 4; i++) a += data[r * (n / 4) + i]!; return a; });
    await assertClose(rows, want, { rtol: 1e-5, atol: 0, msg: `row sums of [4, 250000] on ${be.name}` });
    const cols = F.sum(tensor(data, { shape: [n / 4, 4], backend: be }), 0);
    const wantC = [0, 1, 2, 3].map((c) => { let a = 0; for (let i = 0; i < n / 4; i++) a += data[i * 4 + c]!; return a; });
    await assertClose(cols, wantC, { rtol: 1e-5, atol: 0, msg: `column sums of [250000, 4] on ${be.name}` });
    x.dispose();
  }
});

test('reductions of strided views and of empty / size-1 dims', async () => {
  const { cpu, gpu } = backends();
  const data = randArray(3 * 5 * 17, 4);
  for (const be of [cpu, gpu]) {
    const base = tensor(data, { shape: [17, 5, 3], backend: be });
    const p = F.permute(base, [2, 1, 0]); // [3,5,17], non-contiguous
    const want = refReduce(await p.contiguous().data(), [3, 5, 17], [2], sumF).data;
    await assertClose(F.sum(p, 2), want, { msg: `sum of a permuted view on ${be.name}` });
    const nar = F.narrow(base, 0, 3, 10);
    const wantN = refReduce(await nar.contiguous().data(), [10, 5, 3], [0, 2], maxF).data;
    await assertClose(F.max(nar, [0, 2]), wantN, { msg: `max of a narrowed view on ${be.name}` });
    const ex = F.expand(tensor([1, 2, 3], { shape: [3, 1], backend: be }), [3, 4]);
    assert.equal(Array.from(await F.sum(ex, 1).data()), [4, 8, 12]);
    // empty: sum over a zero-size dim is 0, over other dims keeps the zero size
    const e = tensor(new Float32Array(0), { shape: [2, 0, 3], backend: be });
    assert.equal(Array.from(await F.sum(e, 1).data()), [0, 0, 0, 0, 0, 0], `sum over an empty dim on ${be.name}`);
    assert.equal(F.sum(e, 2).shape, [2, 0]);
    assert.equal(F.mean(tensor([[5]], { backend: be }), 0, true).shape, [1, 1]);
    assert.is(await F.sum(tensor(new Float32Array(0), { shape: [0], backend: be })).item(), 0);
  }
});

test('gradcheck: sum, mean, max, min, var, std, logsumexp (CPU)', async () => {
  const { cpu } = backends();
  // distinct values, well separated, so max/min are differentiable at the point
  const r = prng(5);
  const vals = Array.from({ length: 24 }, (_, i) => (i - 12) * 0.25 + 0.05 * r());
  for (let i = vals.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [vals[i], vals[j]] = [vals[j]!, vals[i]!]; }
  const mk = () => tensor(vals, { shape: [2, 3, 4], backend: cpu, requiresGrad: true });
  for (const [name, f] of REDUCTIONS) {
    for (const dim of [1, [0, 2], undefined] as (number | number[] | undefined)[]) {
      for (const keepdim of [false, true]) {
        await gradcheck((x) => f(x, dim, keepdim), [mk()], { msg: `${name} dim ${JSON.stringify(dim)} keepdim ${keepdim}` });
      }
    }
  }
});

test('max/min gradient with ties is shared evenly (amax semantics)', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const x = tensor([[1, 3, 3], [2, 0, 2]], { backend: be, requiresGrad: true });
    F.sum(F.max(x, 1)).backward();
    assert.equal(await x.grad!.array(), [[0, 0.5, 0.5], [0.5, 0, 0.5]], `max tie grad on ${be.name}`);
  }
});

test('WebGPU gradients of reductions agree with CPU', async () => {
  for (const [shape, dim] of CASES) {
    if (dim === undefined && shape.length > 2) continue;
    for (const [name, f] of REDUCTIONS) {
      if (name === 'max' || name === 'min') continue; // ties are measure-zero but cheap to avoid
      await compareBackends((x) => f(x, dim, true), [{ data: randArray(numelOf(shape), 6, -2, 2), shape, requiresGrad: true }], {
        rtol: 2e-4, gradRtol: 5e-4, msg: `${name} ${JSON.stringify(shape)} dim ${JSON.stringify(dim)}`,
      });
    }
  }
});

/** Uniform data with NaN / ±Inf at random positions (`rate` of them; `specials` picks which). */
function withSpecials(n: number, seed: number, rate: number, specials = [NaN, Infinity, -Infinity]): Float32Array {
  const r = prng(seed);
  const out = randArray(n, seed + 1, -3, 3);
  for (let i = 0; i < n; i++) if (r() < rate) out[i] = specials[Math.floor(r() * specials.length)]!;
  return out;
}

// PyTorch: max/min/argmax/argmin treat NaN as the extreme (argmax returns the first NaN's index)
const nanMax = (xs: number[]) => (xs.some(Number.isNaN) ? NaN : Math.max(...xs));
const nanMin = (xs: number[]) => (xs.some(Number.isNaN) ? NaN : Math.min(...xs));
const nanArg = (better: (a: number, b: number) => boolean) => (xs: number[]) => {
  const n = xs.findIndex(Number.isNaN);
  return n >= 0 ? n : argF(better)(xs);
};

test('NaN and ±Inf: max/min/argmax/argmin let NaN win (first NaN index), sum/mean propagate it, on both backends', async () => {
  const { cpu, gpu } = backends();
  const cases: [number[], number | number[] | undefined, number][] = [
    [[7], 0, 0.3], [[3, 5, 17], 2, 0.04], [[3, 5, 17], 1, 0.04], [[3, 5, 17], 0, 0.04], [[3, 5, 17], [0, 2], 0.01],
    [[2, 300], 1, 0.002], [[300, 2], 0, 0.002], [[1000], undefined, 0.002], [[6, 9], 1, 0],
  ];
  const reds: [string, (x: Tensor, d: number | number[] | undefined) => Tensor, (xs: number[]) => number, boolean][] = [
    ['max', (x, d) => F.max(x, d), nanMax, true],
    ['min', (x, d) => F.min(x, d), nanMin, true],
    ['sum', (x, d) => F.sum(x, d), sumF, false],
    ['mean', (x, d) => F.mean(x, d), meanF, false],
    ['argmax', (x, d) => F.argmax(x, d as number | undefined), nanArg((a, b) => a > b), true],
    ['argmin', (x, d) => F.argmin(x, d as number | undefined), nanArg((a, b) => a < b), true],
  ];
  for (const [shape, dim, rate] of cases) {
    for (const specials of [[NaN, Infinity, -Infinity], [Infinity, -Infinity]]) {
      const data = withSpecials(numelOf(shape), numelOf(shape) + specials.length, rate || 0.2, specials);
      const dims = dim === undefined ? shape.map((_, i) => i) : typeof dim === 'number' ? [dim] : dim;
      for (const [name, f, ref, exact] of reds) {
        if (name.startsWith('arg') && Array.isArray(dim)) continue;
        const want = refReduce(data, shape, dims, ref).data;
        const msg = `${name} ${JSON.stringify(shape)} dim ${JSON.stringify(dim)} with ${specials.join('/')}`;
        const got: Record<string, ArrayLike<number>> = {};
        for (const be of [cpu, gpu]) {
          got[be.name] = await f(tensor(data, { shape, backend: be }), dim).data();
          if (exact) assertExact(got[be.name]!, want, `${msg} on ${be.name}`);
          else await assertClose(got[be.name]!, want, { msg: `${msg} on ${be.name}` });
        }
        await assertClose(got[gpu.name]!, got[cpu.name]!, { msg: `${msg}: WebGPU vs CPU` });
      }
    }
  }
  // NaN in a later chunk of a long axis than a larger value, and a second NaN further on: the first NaN wins
  const d = new Float32Array(1000).fill(0);
  d[100] = 50;
  d[777] = NaN;
  d[901] = NaN;
  d[950] = Infinity;
  for (const be of [cpu, gpu]) {
    const x = tensor(d, { backend: be });
    assert.is(await F.argmax(x).item(), 777, `long argmax with NaN on ${be.name}`);
    assert.is(await F.argmin(x).item(), 777, `long argmin with NaN on ${be.name}`);
    assert.ok(Number.isNaN(await F.max(x).item()), `long max with NaN on ${be.name}`);
    assert.equal(Array.from(await F.argmax(tensor(d, { shape: [4, 250], backend: be }), 1).data()), [100, 0, 0, 27], `row argmax on ${be.name}`);
  }
});

test.run();
