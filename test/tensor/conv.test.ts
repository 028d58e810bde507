import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { tensor, pad, WebGPUBackend, type Backend, type Tensor } from '@foliar/tensor';
import { conv2d, convTranspose2d, type Conv2dOptions, type ConvTranspose2dOptions } from '../../packages/tensor/src/ops/conv/index.js';
import { SafetensorsFile } from '../../packages/tensor/src/io/safetensors.js';
import { setup, teardown, backends, requireGpu, skip, shared, assertClose, compareBackends, gradcheck, randnArray, numelOf, assertThrowsWith } from '../helpers.js';

test.before(async () => {
  await setup();
});
test.after(() => teardown());

/** The CPU backend, or WebGPU (skipping the test where there is none). */
const on = (which: 'cpu' | 'gpu'): Backend => (which === 'gpu' ? requireGpu() : backends().cpu);

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

function put(be: Backend, g: Golden, name: string, grad = false): Tensor {
  const e = g.get(name)!;
  return tensor(e.data, { backend: be, shape: e.shape, requiresGrad: grad });
}

/** Forward and every gradient of a golden case on one backend (loss = sum(out · R)). */
async function checkGolden(name: string, be: Backend, inputs: string[], fn: (...xs: Tensor[]) => Tensor): Promise<void> {
  const g = await readGolden(name);
  const xs = inputs.map((n) => put(be, g, n, true));
  const y = fn(...xs);
  await assertClose(y, g.get('out')!.data, { msg: `${name} (${be.name}) out` });
  y.backward(put(be, g, 'R'));
  for (let i = 0; i < inputs.length; i++) {
    const want = g.get(`grad_${inputs[i]}`);
    if (!want) continue;
    assert.ok(xs[i]!.grad, `${name}: ${inputs[i]} has no gradient`);
    await assertClose(xs[i]!.grad!, want.data, { rtol: 2e-4, msg: `${name} (${be.name}) grad_${inputs[i]}` });
  }
}

const goldenCases: [string, string[], (...xs: Tensor[]) => Tensor][] = [
  ['conv2d_s1_p1', ['x', 'weight', 'bias'], (x, w, b) => conv2d(x!, w!, b, { stride: 1, padding: 1 })],
  ['conv2d_s2_p1', ['x', 'weight', 'bias'], (x, w, b) => conv2d(x!, w!, b, { stride: 2, padding: 1 })],
  ['conv2d_k7_s2_p3_nobias', ['x', 'weight'], (x, w) => conv2d(x!, w!, null, { stride: 2, padding: 3 })],
  ['conv2d_1x1', ['x', 'weight', 'bias'], (x, w, b) => conv2d(x!, w!, b)],
  ['conv2d_groups2', ['x', 'weight', 'bias'], (x, w, b) => conv2d(x!, w!, b, { padding: 1, groups: 2 })],
  ['conv_transpose2d_s2', ['x', 'weight', 'bias'], (x, w, b) => convTranspose2d(x!, w!, b, { stride: 2, padding: 1 })],
];
for (const [name, inputs, fn] of goldenCases) {
  for (const which of ['cpu', 'gpu'] as const) {
    test(`golden ${name} (${which})`, async () => checkGolden(name, on(which), inputs, fn));
  }
}

for (const which of ['cpu', 'gpu'] as const) {
  // diffusers' Downsample2D: F.pad(x, (0, 1, 0, 1)) then a stride-2 conv; asymmetric padding does it in one op
  test(`golden conv2d_s2_asympad via padding [0, 1, 0, 1] (${which})`, async () =>
    checkGolden('conv2d_s2_asympad', on(which), ['x', 'weight', 'bias'], (x, w, b) => conv2d(x!, w!, b, { stride: 2, padding: [0, 1, 0, 1] })));
  test(`golden conv2d_s2_asympad via pad() then conv2d (${which})`, async () =>
    checkGolden('conv2d_s2_asympad', on(which), ['x', 'weight', 'bias'], (x, w, b) => conv2d(pad(x!, [0, 1, 0, 1]), w!, b, { stride: 2 })));
}

// ---- randomized WebGPU vs CPU at awkward sizes (forward and all gradients)

interface Case {
  x: [number, number, number, number];
  w: [number, number, number, number];
  bias: boolean;
  opts: Conv2dOptions;
}
const cases: Case[] = [
  { x: [1, 3, 7, 7], w: [5, 3, 3, 3], bias: true, opts: { padding: 1 } },
  { x: [3, 5, 13, 13], w: [17, 5, 3, 3], bias: true, opts: { stride: 2, padding: 1 } },
  { x: [1, 17, 13, 7], w: [3, 17, 1, 1], bias: false, opts: {} },
  { x: [3, 3, 13, 13], w: [5, 3, 7, 7], bias: true, opts: { stride: 2, padding: 3 } },
  { x: [1, 5, 13, 13], w: [3, 5, 3, 3], bias: true, opts: { dilation: 2, padding: 2 } },
  { x: [3, 6, 7, 13], w: [10, 3, 3, 3], bias: true, opts: { groups: 2, padding: [1, 2] } },
  { x: [3, 17, 13, 13], w: [17, 1, 3, 3], bias: true, opts: { groups: 17, padding: 1 } },
  { x: [1, 5, 13, 13], w: [10, 1, 3, 3], bias: false, opts: { groups: 5, stride: 2, padding: 1 } },
  { x: [1, 3, 7, 7], w: [5, 3, 3, 2], bias: true, opts: { stride: [2, 3], dilation: [2, 1], padding: [2, 0, 1, 3] } },
  { x: [3, 5, 7, 7], w: [17, 5, 3, 3], bias: true, opts: { padding: 'same' } },
  { x: [1, 64, 13, 13], w: [40, 64, 3, 3], bias: true, opts: { padding: 1 } },
  // long weight-gradient reduction: split over workgroups on the GPU
  { x: [3, 5, 40, 40], w: [3, 5, 3, 3], bias: true, opts: { padding: 1 } },
];
for (const c of cases) {
  test(`conv2d WebGPU vs CPU x${JSON.stringify(c.x)} w${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}`, async () => {
    const specs = [
      { data: randnArray(numelOf(c.x), 1), shape: c.x, requiresGrad: true },
      { data: randnArray(numelOf(c.w), 2, 0.3), shape: c.w, requiresGrad: true },
      ...(c.bias ? [{ data: randnArray(c.w[0], 3), shape: [c.w[0]], requiresGrad: true }] : []),
    ];
    await compareBackends((x, w, b) => conv2d(x!, w!, b ?? null, c.opts), specs, { rtol: 1e-4, gradRtol: 2e-4 });
  });
}

// The kernels also carry a path for adapters without subgroups: run it by hiding the feature.
test('conv2d WebGPU vs CPU without subgroups (plain variant)', async () => {
  const gpu = requireGpu('the plain conv2d variant');
  if (!(gpu instanceof WebGPUBackend)) throw new Error(`the WebGPU backend is a ${gpu.constructor.name}`);
  const had = gpu.rt.features.delete('subgroups');
  try {
    // with biases: their gradients come out of the weight-gradient kernel (case 11 splits its reduction)
    for (const c of [cases[1]!, cases[5]!, cases[6]!, cases[11]!]) {
      const specs = [
        { data: randnArray(numelOf(c.x), 1), shape: c.x, requiresGrad: true },
        { data: randnArray(numelOf(c.w), 2, 0.3), shape: c.w, requiresGrad: true },
        ...(c.bias ? [{ data: randnArray(c.w[0], 3), shape: [c.w[0]], requiresGrad: true }] : []),
      ];
      await compareBackends((x, w, b) => conv2d(x!, w!, b ?? null, c.opts), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: 'plain variant' });
    }
  } finally {
    if (had) gpu.rt.features.add('subgroups');
  }
});

const tcases: { x: [number, number, number, number]; w: [number, number, number, number]; opts: ConvTranspose2dOptions }[] = [
  { x: [3, 5, 7, 7], w: [5, 3, 3, 3], opts: { stride: 2, padding: 1, outputPadding: 1 } },
  { x: [1, 6, 13, 7], w: [6, 5, 4, 4], opts: { stride: 2, padding: 1, groups: 2 } },
  { x: [1, 3, 7, 7], w: [3, 17, 3, 3], opts: { dilation: 2, padding: 2 } },
];
for (const c of tcases) {
  test(`convTranspose2d WebGPU vs CPU x${JSON.stringify(c.x)} w${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}`, async () => {
    const cout = c.w[1] * (c.opts.groups ?? 1);
    const specs = [
      { data: randnArray(numelOf(c.x), 4), shape: c.x, requiresGrad: true },
      { data: randnArray(numelOf(c.w), 5, 0.3), shape: c.w, requiresGrad: true },
      { data: randnArray(cout, 6), shape: [cout], requiresGrad: true },
    ];
    await compareBackends((x, w, b) => convTranspose2d(x!, w!, b, c.opts), specs, { rtol: 1e-4, gradRtol: 2e-4 });
  });
}

// ---- the CPU reference against central differences (independent of both kernels' shared geometry)

test('conv2d CPU gradients match finite differences (stride 2, dilation, groups, asymmetric pad)', async () => {
  const { cpu } = backends();
  const x = tensor(randnArray(2 * 4 * 6 * 5, 7), { shape: [2, 4, 6, 5], backend: cpu, requiresGrad: true });
  const w = tensor(randnArray(6 * 2 * 3 * 2, 8), { shape: [6, 2, 3, 2], backend: cpu, requiresGrad: true });
  const b = tensor(randnArray(6, 9), { shape: [6], backend: cpu, requiresGrad: true });
  await gradcheck((x, w, b) => conv2d(x!, w!, b, { stride: [2, 1], dilation: [1, 2], groups: 2, padding: [1, 0, 2, 1] }), [x, w, b]);
});

test('convTranspose2d CPU gradients match finite differences', async () => {
  const { cpu } = backends();
  const x = tensor(randnArray(1 * 4 * 3 * 4, 10), { shape: [1, 4, 3, 4], backend: cpu, requiresGrad: true });
  const w = tensor(randnArray(4 * 3 * 3 * 3, 11), { shape: [4, 3, 3, 3], backend: cpu, requiresGrad: true });
  await gradcheck((x, w) => convTranspose2d(x!, w!, null, { stride: 2, padding: 1, outputPadding: 1, groups: 2 }), [x, w]);
});

test('conv2d: a hand-computed 1-channel case', async () => {
  for (const be of [backends().cpu, backends().gpu]) {
    // x = 1..9 in a 3x3 plane, w = [[1, 0], [0, -1]] → y[i, j] = x[i, j] − x[i+1, j+1] = −4 everywhere
    const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], { shape: [1, 1, 3, 3], backend: be });
    const w = tensor([1, 0, 0, -1], { shape: [1, 1, 2, 2], backend: be });
    await assertClose(conv2d(x, w), [-4, -4, -4, -4], { msg: be.name });
    // padding 1, stride 2: corners see one tap each
    await assertClose(conv2d(x, w, null, { padding: 1, stride: 2 }), [-1, -3, -7, 5 - 9], { msg: `${be.name} padded` });
  }
});

test('conv2d / convTranspose2d: clear errors', () => {
  const { cpu } = backends();
  const x = tensor(new Float32Array(2 * 4 * 5 * 5), { shape: [2, 4, 5, 5], backend: cpu });
  const w = tensor(new Float32Array(6 * 3 * 3 * 3), { shape: [6, 3, 3, 3], backend: cpu });
  assertThrowsWith(() => conv2d(x, w), [/conv2d/, /\[6, 3, 3, 3\]/, /\[2, 4, 5, 5\]/], 'channel mismatch');
  assertThrowsWith(() => conv2d(x, w, null, { groups: 3 }), [/groups 3/], 'bad groups');
  assertThrowsWith(() => conv2d(x, tensor(new Float32Array(6 * 4 * 9), { shape: [6, 4, 3, 3], backend: cpu }), null, { stride: 0 }), [/stride/], 'stride 0');
  assertThrowsWith(() => conv2d(x, tensor(new Float32Array(6 * 4 * 81), { shape: [6, 4, 9, 9], backend: cpu })), [/larger than the padded input/], 'kernel too big');
  assertThrowsWith(() => convTranspose2d(x, w), [/convTranspose2d/, /4 input channels|expects 6/], 'transpose channels');
});

test.run();
