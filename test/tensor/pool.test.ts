import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { tensor, type Backend, type Tensor } from '@foliar/tensor';
import { maxPool2d, avgPool2d, adaptiveAvgPool2d, interpolate, nearestIndices, nearestTable } from '../../packages/tensor/src/ops/pool/index.js';
import { SafetensorsFile } from '../../packages/tensor/src/io/safetensors.js';
import { setup, teardown, backends, requireGpu, skip, shared, assertClose, assertExact, compareBackends, gradcheck, randnArray, numelOf, assertThrowsWith, prng } from '../helpers.js';

test.before(async () => {
  await setup();
});
test.after(() => teardown());

type Golden = Map<string, { shape: number[]; data: Float32Array }>;

/** The golden case's tensors (skips the test without ../shared). */
async function readGolden(name: string): Promise<Golden> {
  const dir = shared('golden/ops', `golden ${name}`);
  if (!dir) skip(`golden ${name}: ../shared not found`, 'shared');
  const f = await SafetensorsFile.open(path.join(dir, `${name}.safetensors`));
  const out: Golden = new Map();
  for (const k of f.keys()) {
    const { shape, data } = await f.read(k, { as: 'float32' });
    out.set(k, { shape: [...shape], data: data as Float32Array });
  }
  f.close();
  return out;
}

const goldenCases: [string, (x: Tensor) => Tensor][] = [
  ['max_pool2d_k2_s2', (x) => maxPool2d(x, { kernelSize: 2, stride: 2 })],
  ['max_pool2d_k3_s2_p1', (x) => maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 })],
  ['avg_pool2d_k2_s2', (x) => avgPool2d(x, { kernelSize: 2, stride: 2 })],
  ['avg_pool2d_k3_s2_p1', (x) => avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1, countIncludePad: true })],
  ['adaptive_avg_pool2d_1', (x) => adaptiveAvgPool2d(x, [1, 1])],
  ['upsample_nearest_x2', (x) => interpolate(x, { scaleFactor: 2, mode: 'nearest' })],
];
for (const [name, fn] of goldenCases) {
  for (const which of ['cpu', 'gpu'] as const) {
    test(`golden ${name} (${which})`, async () => {
      const g = await readGolden(name);
      const be: Backend = which === 'gpu' ? requireGpu() : backends().cpu;
      const e = g.get('x')!;
      const x = tensor(e.data, { shape: e.shape, backend: be, requiresGrad: true });
      const y = fn(x);
      await assertClose(y, g.get('out')!.data, { msg: `${name} (${which}) out` });
      y.backward(tensor(g.get('R')!.data, { shape: g.get('R')!.shape, backend: be }));
      assert.ok(x.grad, `${name}: no gradient`);
      await assertClose(x.grad!, g.get('grad_x')!.data, { msg: `${name} (${which}) grad_x` });
    });
  }
}

// ---- randomized WebGPU vs CPU at awkward sizes

const shapes: [number, number, number, number][] = [[1, 3, 7, 7], [3, 5, 13, 13], [1, 17, 13, 7]];
const poolOps: [string, (x: Tensor) => Tensor][] = [
  ['maxPool2d k3 s2 p1', (x) => maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 })],
  ['maxPool2d k2 (default stride) ceilMode', (x) => maxPool2d(x, { kernelSize: 2, ceilMode: true })],
  ['maxPool2d k3 s1 dilation 2 p2', (x) => maxPool2d(x, { kernelSize: 3, stride: 1, dilation: 2, padding: 2 })],
  ['maxPool2d k[3,2] s[2,1]', (x) => maxPool2d(x, { kernelSize: [3, 2], stride: [2, 1] })],
  ['avgPool2d k3 s2 p1', (x) => avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1 })],
  ['avgPool2d k3 s2 p1 excl. pad ceilMode', (x) => avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1, countIncludePad: false, ceilMode: true })],
  ['avgPool2d k2 divisorOverride 3', (x) => avgPool2d(x, { kernelSize: 2, divisorOverride: 3 })],
  ['adaptiveAvgPool2d 3', (x) => adaptiveAvgPool2d(x, 3)],
  ['adaptiveAvgPool2d [5, null]', (x) => adaptiveAvgPool2d(x, [5, null])],
  ['adaptiveAvgPool2d 17 (upsampling windows)', (x) => adaptiveAvgPool2d(x, 17)],
  ['interpolate nearest x2', (x) => interpolate(x, { scaleFactor: 2 })],
  ['interpolate nearest size [5, 17]', (x) => interpolate(x, { size: [5, 17] })],
  ['interpolate nearest scaleFactor 1.5', (x) => interpolate(x, { scaleFactor: 1.5 })],
  ['interpolate nearest scaleFactor [0.5, 2.5]', (x) => interpolate(x, { scaleFactor: [0.5, 2.5] })],
  ['interpolate nearest x2 of a transposed view', (x) => interpolate(x.transpose(2, 3), { scaleFactor: 2 })],
];
for (const shape of shapes) {
  for (const [tag, fn] of poolOps) {
    test(`${tag} WebGPU vs CPU ${JSON.stringify(shape)}`, async () => {
      await compareBackends((x) => fn(x!), [{ data: randnArray(numelOf(shape), 3), shape, requiresGrad: true }]);
    });
  }
}

test('maxPool2d: ties send the gradient to the first maximum (both backends)', async () => {
  for (const be of [backends().cpu, backends().gpu]) {
    const x = tensor([1, 5, 5, 2, 5, 0, 3, 3, 3], { shape: [1, 1, 3, 3], backend: be, requiresGrad: true });
    const y = maxPool2d(x, { kernelSize: 2, stride: 1 });
    await assertClose(y, [5, 5, 5, 5], { msg: be.name });
    y.backward(tensor([1, 10, 100, 1000], { shape: [1, 1, 2, 2], backend: be }));
    // windows (0,0) and (0,1) both hold several 5s and pick x[0,1] (index 1); (1,0) and (1,1) pick x[1,1] (index 4)
    await assertClose(x.grad!, [0, 1 + 10, 0, 0, 100 + 1000, 0, 0, 0, 0], { msg: `${be.name} grad` });
  }
});

/** Reference max-pool over a [planes, h, w] array: PyTorch's `val > max || isnan(val)` scan (NaN wins, its last one takes the index). */
function refMaxPool(x: Float32Array, planes: number, h: number, w: number, k: number, st: number, pad: number): { out: number[]; idx: number[] } {
  const ho = Math.floor((h + 2 * pad - k) / st) + 1, wo = Math.floor((w + 2 * pad - k) / st) + 1;
  const out: number[] = [], idx: number[] = [];
  for (let p = 0; p < planes; p++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        let best = -Infinity, bi = -1, first = -1;
        for (let r = 0; r < k; r++) {
          for (let c = 0; c < k; c++) {
            const iy = oy * st - pad + r, ix = ox * st - pad + c;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const v = x[(p * h + iy) * w + ix]!;
            if (first < 0) first = iy * w + ix;
            if (v > best || Number.isNaN(v)) { best = v; bi = iy * w + ix; }
          }
        }
        out.push(best);
        idx.push(p * h * w + (bi >= 0 ? bi : first));
      }
    }
  }
  return { out, idx };
}

test('maxPool2d: NaN propagates and takes the gradient, ±Inf compare as numbers (randomized, both backends, PyTorch semantics)', async () => {
  const { cpu, gpu } = backends();
  const [N, C, H, W] = [2, 3, 9, 7];
  const r = prng(41);
  const x = randnArray(N * C * H * W, 40);
  // about 1 in 6 special: NaN, +Inf, -Inf; and one window made all -Inf
  for (let i = 0; i < x.length; i++) if (r() < 1 / 6) x[i] = [NaN, Infinity, -Infinity][Math.floor(r() * 3)]!;
  for (const i of [0, 1, W, W + 1]) x[i] = -Infinity;
  for (const [k, st, pad] of [[2, 2, 0], [3, 2, 1], [3, 1, 1]] as const) {
    const want = refMaxPool(x, N * C, H, W, k, st, pad);
    const grads: Record<string, ArrayLike<number>> = {};
    for (const be of [cpu, gpu]) {
      const msg = `maxPool2d k${k} s${st} p${pad} on ${be.name}`;
      const xt = tensor(x, { shape: [N, C, H, W], backend: be, requiresGrad: true });
      const y = maxPool2d(xt, { kernelSize: k, stride: st, padding: pad });
      assertExact(await y.data(), want.out, `${msg}: forward vs PyTorch semantics`);
      // the gradient of each output lands on its argmax: weights 1, 2, 3… tell the windows apart
      const R = Float32Array.from({ length: y.size }, (_, i) => i + 1);
      y.backward(tensor(R, { shape: [...y.shape], backend: be }));
      const g = new Float64Array(x.length);
      want.idx.forEach((j, o) => { g[j] += o + 1; });
      grads[be.name] = await xt.grad!.data();
      assertExact(grads[be.name]!, Float32Array.from(g), `${msg}: gradient (argmax) vs PyTorch semantics`);
    }
  }
});

test('avgPool2d: hand-computed padded corners', async () => {
  for (const be of [backends().cpu, backends().gpu]) {
    const x = tensor([1, 2, 3, 4], { shape: [1, 1, 2, 2], backend: be });
    // kernel 2, stride 2, padding 1 → 4 windows each holding one input value
    await assertClose(avgPool2d(x, { kernelSize: 2, stride: 2, padding: 1 }), [0.25, 0.5, 0.75, 1], { msg: `${be.name} incl` });
    await assertClose(avgPool2d(x, { kernelSize: 2, stride: 2, padding: 1, countIncludePad: false }), [1, 2, 3, 4], { msg: `${be.name} excl` });
  }
});

test('nearestTable: sources, then the first output reading each input (empty ranges where none does)', () => {
  const iy = nearestIndices(3, 6, 2), ix = nearestIndices(5, 3);
  assert.equal([...nearestTable(iy, 3, ix, 5)], [0, 0, 1, 1, 2, 2, 0, 1, 3, 0, 2, 4, 6, 0, 1, 2, 2, 3, 3]);
});

test('interpolate: one dispatch forward and one backward on WebGPU', async () => {
  const be = requireGpu();
  const x = tensor(randnArray(2 * 3 * 5 * 7, 9), { shape: [2, 3, 5, 7], backend: be, requiresGrad: true });
  const rt = (be as unknown as { rt: { stats: { dispatches: number } } }).rt;
  const d0 = rt.stats.dispatches;
  const y = interpolate(x, { scaleFactor: 2 });
  assert.is(rt.stats.dispatches - d0, 1, 'forward dispatches');
  const d1 = rt.stats.dispatches;
  y.backward(tensor(new Float32Array(y.size).fill(1), { shape: y.shape, backend: be }));
  const g = await x.grad!.data();
  assert.ok(rt.stats.dispatches - d1 <= 2, `backward dispatches ${rt.stats.dispatches - d1} (the kernel, and at most the seed's fill)`);
  // every input pixel feeds a 2x2 block
  assert.ok(g.every((v) => v === 4), 'each input gathers its 2x2 block');
  y.dispose(); x.dispose();
});

test('interpolate: an empty spatial input is refused by name, an empty batch gives an empty output', () => {
  for (const be of [backends().cpu]) {
    assertThrowsWith(() => interpolate(tensor(new Float32Array(0), { shape: [1, 2, 0, 3], backend: be }), { size: [4, 4] }), [/interpolate: empty spatial input/, /\[1, 2, 0, 3\]/]);
    const y = interpolate(tensor(new Float32Array(0), { shape: [0, 2, 3, 3], backend: be }), { scaleFactor: 2 });
    assert.equal([...y.shape], [0, 2, 6, 6]);
  }
});

test('nearestIndices follows PyTorch legacy nearest', () => {
  assert.equal([...nearestIndices(3, 6, 2)], [0, 0, 1, 1, 2, 2]);
  // size-driven: scale = in / out = 5/3 → floor(0), floor(1.67), floor(3.33)
  assert.equal([...nearestIndices(5, 3)], [0, 1, 3]);
  assert.equal([...nearestIndices(7, 13)], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
});

test('pool CPU gradients match finite differences', async () => {
  const { cpu } = backends();
  const x = (): Tensor => tensor(randnArray(2 * 3 * 7 * 6, 21), { shape: [2, 3, 7, 6], backend: cpu, requiresGrad: true });
  await gradcheck((t) => avgPool2d(t!, { kernelSize: 3, stride: 2, padding: 1, countIncludePad: false, ceilMode: true }), [x()]);
  await gradcheck((t) => adaptiveAvgPool2d(t!, [4, 5]), [x()]);
  await gradcheck((t) => interpolate(t!, { size: [9, 13] }), [x()]);
});

test('pool ops: clear errors', () => {
  const { cpu } = backends();
  const x = tensor(new Float32Array(2 * 3 * 4 * 4), { shape: [2, 3, 4, 4], backend: cpu });
  assertThrowsWith(() => maxPool2d(tensor(new Float32Array(16), { shape: [4, 4], backend: cpu }), { kernelSize: 2 }), [/maxPool2d/, /4-D/], 'rank');
  assertThrowsWith(() => maxPool2d(x, { kernelSize: 2, padding: 2 }), [/padding/, /half the \(dilated\) kernel/], 'padding');
  assertThrowsWith(() => avgPool2d(x, { kernelSize: 5 }), [/does not fit/], 'kernel too big');
  assertThrowsWith(() => interpolate(x, { scaleFactor: 2, size: 3 }), [/exactly one/], 'both size and scale');
  assertThrowsWith(() => adaptiveAvgPool2d(x, 0), [/positive/], 'output size 0');
});

test.run();
