import { test } from '../harness.js';
import { WebGPUBackend, tensor, narrow, cat, profile, type Tensor, type Backend } from '@foliar/tensor';
import { conv2d, type Conv2dOptions } from '../../packages/tensor/src/ops/conv/index.js';
import * as assert from 'uvu/assert';
import { convVariants, convWindowLanes } from '../../packages/tensor/src/ops/conv/webgpu.js';
import { withVariant } from './conv-variant.js';
import { setup, teardown, requireGpu, compareBackends, randnArray, numelOf, backends } from '../helpers.js';

test.before(async () => {
  await setup();
});
test.after(() => teardown());

/**
 * conv2d's residual epilogue: conv2d(x, w, b, { addend: r }) adds r in the kernel's store (window and
 * GEMM forward), and its backward adds x's gradient from its other uses in the input-gradient kernel's
 * store. Every case is checked against the CPU reference of conv2d(x, w, b) + r, with gradients, on
 * each variant; shapes are not multiples of the tiles, the addend may sit at an odd offset, and the
 * few-pixel case takes the im2col path, which adds after its product. The CPU reference itself is
 * checked against the composition below.
 */
interface Case {
  x: [number, number, number, number];
  w: [number, number, number, number];
  bias: boolean;
  opts: Conv2dOptions;
  /** The addend is a view at an offset (one image more in front). */
  offset?: boolean;
  /**
   * How the addend is laid out: a per-image, per-channel term expanded over the pixels (read in the
   * store with pixel stride 0), a channel slice of a wider tensor (image stride not k·ho·wo), or
   * transposed pixels (no in-store layout: added after the kernel).
   */
  layout?: 'expand' | 'slice' | 'transposed';
  four?: boolean;
  /** Run with the subgroup matmul (the im2col path where it applies). */
  subgroupMatmul?: boolean;
}
const cases: Case[] = [
  { x: [2, 5, 9, 11], w: [7, 5, 3, 3], bias: true, opts: { padding: 1 }, four: true },
  { x: [3, 6, 10, 9], w: [6, 6, 3, 3], bias: false, opts: { padding: 1 }, offset: true },
  { x: [2, 8, 13, 12], w: [5, 8, 3, 3], bias: true, opts: { stride: 2, padding: 1 }, offset: true },
  { x: [2, 9, 7, 7], w: [11, 9, 1, 1], bias: true, opts: {} },
  { x: [2, 6, 10, 10], w: [4, 3, 3, 3], bias: true, opts: { groups: 2, padding: [1, 2] } },
  { x: [2, 24, 4, 4], w: [20, 24, 3, 3], bias: true, opts: { padding: 1 }, subgroupMatmul: true },
  { x: [3, 5, 9, 10], w: [7, 5, 3, 3], bias: true, opts: { padding: 1 }, layout: 'expand', four: true },
  { x: [2, 9, 7, 7], w: [11, 9, 1, 1], bias: false, opts: {}, layout: 'expand' },
  { x: [2, 6, 8, 9], w: [5, 6, 3, 3], bias: false, opts: { padding: 1 }, layout: 'slice' },
  { x: [2, 6, 8, 8], w: [5, 6, 3, 3], bias: true, opts: { padding: 1 }, layout: 'transposed' },
];

function outShape(c: Case): [number, number, number, number] {
  const y = conv2d(tensor(new Float32Array(numelOf(c.x)), { shape: c.x, backend: backends().cpu }), tensor(new Float32Array(numelOf(c.w)), { shape: c.w, backend: backends().cpu }), null, c.opts);
  const s = [...y.shape] as [number, number, number, number];
  y.dispose();
  return s;
}

for (const [ci, c] of cases.entries()) {
  test(`conv2d with an addend vs CPU conv2d + addend x${JSON.stringify(c.x)} w${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}`, async () => {
    const gpu = requireGpu('conv2d with an addend');
    if (!(gpu instanceof WebGPUBackend)) return;
    const ys = outShape(c);
    const [n, ...rest] = ys;
    const [k, ho, wo] = rest as [number, number, number];
    // the tensor the addend is a view of
    const rShape = c.layout === 'expand' ? [n, k, 1, 1] : c.layout === 'slice' ? [n, k + 3, ho, wo] : c.layout === 'transposed' ? [n, k, wo, ho] : c.offset ? [n + 1, ...rest] : ys;
    const specs = [
      { data: randnArray(numelOf(c.x), 40 + ci), shape: c.x, requiresGrad: true },
      { data: randnArray(numelOf(c.w), 50 + ci, 0.2), shape: c.w, requiresGrad: true },
      { data: randnArray(rShape.reduce((a, b) => a * b, 1), 60 + ci), shape: rShape, requiresGrad: true },
      ...(c.bias ? [{ data: randnArray(c.w[0], 70 + ci), shape: [c.w[0]], requiresGrad: true }] : []),
    ];
    const addendOf = (r: Tensor) =>
      c.layout === 'expand' ? r.expand(ys) : c.layout === 'slice' ? narrow(r, 1, 2, k) : c.layout === 'transposed' ? r.transpose(2, 3) : c.offset ? narrow(r, 0, 1, n) : r;
    // x feeds the convolution and, through a 1x1 map of its own shape, its gradient arrives twice
    const fused = (x: Tensor, w: Tensor, r: Tensor, b?: Tensor) => conv2d(x, w, b ?? null, { ...c.opts, addend: addendOf(r) });
    const prev = process.env.FOLIAR_MATMUL_VARIANT;
    if (c.subgroupMatmul) process.env.FOLIAR_MATMUL_VARIANT = 'subgroup';
    try {
      for (const v of convVariants(gpu)) {
        const lanes: (4 | 8 | undefined)[] = [undefined];
        if (c.four && v === 'window' && convWindowLanes(gpu) === 8) lanes.push(4);
        for (const l of lanes) {
          await withVariant(v, l, () => compareBackends((x, w, r, b) => fused(x!, w!, r!, b), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: `${v}${l ? `, ${l} lanes` : ''}` }));
        }
      }
    } finally {
      if (prev === undefined) delete process.env.FOLIAR_MATMUL_VARIANT;
      else process.env.FOLIAR_MATMUL_VARIANT = prev;
    }
  });
}

test('conv2d with an addend equals conv2d + addend on the CPU reference (values and gradients)', async () => {
  const x = tensor(randnArray(2 * 4 * 6 * 6, 81), { shape: [2, 4, 6, 6], backend: backends().cpu, requiresGrad: true });
  const w = tensor(randnArray(3 * 4 * 3 * 3, 82, 0.3), { shape: [3, 4, 3, 3], backend: backends().cpu, requiresGrad: true });
  const b = tensor(randnArray(3, 83), { shape: [3], backend: backends().cpu, requiresGrad: true });
  const r = tensor(randnArray(2 * 3 * 6 * 6, 84), { shape: [2, 3, 6, 6], backend: backends().cpu, requiresGrad: true });
  const g = tensor(randnArray(2 * 3 * 6 * 6, 85), { shape: [2, 3, 6, 6], backend: backends().cpu });
  const grads = async (y: Tensor) => {
    y.backward(g);
    const out = [await y.data(), ...(await Promise.all([x, w, b, r].map((t) => t.grad!.data())))];
    for (const t of [x, w, b, r]) {
      t.grad?.dispose();
      t.grad = null;
    }
    return out;
  };
  const want = await grads(conv2d(x, w, b, { padding: 1 }).add(r));
  const got = await grads(conv2d(x, w, b, { padding: 1, addend: r }));
  for (let i = 0; i < want.length; i++) {
    const [a, e] = [got[i]!, want[i]!];
    for (let j = 0; j < e.length; j++) assert.ok(Math.abs(a[j]! - e[j]!) <= 1e-5 * (1 + Math.abs(e[j]!)), `tensor ${i} element ${j}: ${a[j]} vs ${e[j]}`);
  }
  assert.throws(() => conv2d(x, w, b, { padding: 1, addend: tensor(new Float32Array(2 * 3 * 5 * 6), { shape: [2, 3, 5, 6], backend: backends().cpu }) }), /addend .*\[2, 3, 6, 6\]/);
});

test('conv2d with an addend: no elementwise add in a residual block, forward or backward (WebGPU)', async () => {
  const gpu = requireGpu('the dispatch count of conv2d with an addend');
  if (!(gpu instanceof WebGPUBackend)) return;
  // a resnet block: y = conv2(relu(conv1(x) + t)) + x, t one value per image and channel (a time
  // embedding, expanded over the pixels). x's gradient arrives first through the addend, then through
  // conv1, whose input-gradient kernel adds the first in its store (x is no leaf, as in a UNet)
  const block = (x0: Tensor, w1: Tensor, w2: Tensor, t: Tensor, fused: boolean) => {
    const x = x0.mul(1.5);
    const te = t.reshape([2, 8, 1, 1]);
    const h = (fused ? conv2d(x, w1, null, { padding: 1, addend: te.expand([2, 8, 8, 8]) }) : conv2d(x, w1, null, { padding: 1 }).add(te)).relu();
    return fused ? conv2d(h, w2, null, { padding: 1, addend: x }) : conv2d(h, w2, null, { padding: 1 }).add(x);
  };
  const make = (be: Backend) => [
    tensor(randnArray(2 * 8 * 8 * 8, 91), { shape: [2, 8, 8, 8], backend: be, requiresGrad: true }),
    tensor(randnArray(8 * 8 * 3 * 3, 92, 0.2), { shape: [8, 8, 3, 3], backend: be, requiresGrad: true }),
    tensor(randnArray(8 * 8 * 3 * 3, 93, 0.2), { shape: [8, 8, 3, 3], backend: be, requiresGrad: true }),
    tensor(randnArray(2 * 8, 94), { shape: [2, 8], backend: be, requiresGrad: true }),
  ] as const;
  const [x0, w1, w2, t] = make(gpu);
  // a dense upstream gradient (sum()'s is a broadcast view, which the convolution would copy)
  const up = randnArray(2 * 8 * 8 * 8, 95);
  const R = tensor(up, { shape: [2, 8, 8, 8], backend: gpu });
  const { report } = await profile(async () => {
    const y = block(x0, w1, w2, t, true);
    y.backward(R);
    await x0.grad!.data();
    y.dispose();
  }, { gpuTime: false });
  const count = (name: string) => report.byOp.find((r) => r.name === name)?.dispatches ?? 0;
  const ops = report.byOp.map((r) => `${r.name} ${r.dispatches}`).join(', ');
  assert.is(count('add'), 0, `add dispatches (${ops})`);
  assert.is(count('copy'), 0, `copy dispatches: the expanded term is not materialised (${ops})`);
  // the gradients equal the unfused block's on the CPU
  const [cx, c1, c2, ct] = make(backends().cpu);
  block(cx, c1, c2, ct, false).backward(tensor(up, { shape: [2, 8, 8, 8], backend: backends().cpu }));
  for (const [a, e, name] of [[x0, cx, 'x'], [w1, c1, 'w1'], [w2, c2, 'w2'], [t, ct, 't']] as const) {
    const [ga, ge] = [await a.grad!.data(), await e.grad!.data()];
    for (let j = 0; j < ge.length; j++) assert.ok(Math.abs(ga[j]! - ge[j]!) <= 1e-4 * (1 + Math.abs(ge[j]!)), `${name}.grad[${j}] ${ga[j]} vs ${ge[j]}`);
  }
  for (const v of [x0, w1, w2, t, cx, c1, c2, ct, R]) v.dispose();
});


/**
 * The gradient kernels read dy with any image stride: the gradient of cat([conv(x), z], 1) reaches the
 * convolution as a channel slice, which it no longer copies. Every variant (and 4 lanes) against the CPU,
 * for dgrad and wgrad (with the bias gradient), at strides 1 and 2 and on the im2col path.
 */
const sliceCases: { x: [number, number, number, number]; w: [number, number, number, number]; opts: Conv2dOptions; zc: number; subgroupMatmul?: boolean }[] = [
  { x: [2, 5, 9, 8], w: [6, 5, 3, 3], opts: { padding: 1 }, zc: 3 },
  { x: [3, 4, 11, 10], w: [5, 4, 3, 3], opts: { stride: 2, padding: 1 }, zc: 2 },
  { x: [2, 7, 6, 6], w: [4, 7, 1, 1], opts: {}, zc: 5 },
  { x: [2, 24, 4, 4], w: [20, 24, 3, 3], opts: { padding: 1 }, zc: 4, subgroupMatmul: true },
];
for (const [ci, c] of sliceCases.entries()) {
  test(`conv2d gradients read dy as a channel slice x${JSON.stringify(c.x)} w${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}`, async () => {
    const gpu = requireGpu('conv2d gradients of a channel slice');
    if (!(gpu instanceof WebGPUBackend)) return;
    const [n, , ho, wo] = outShape({ x: c.x, w: c.w, bias: true, opts: c.opts });
    const specs = [
      { data: randnArray(numelOf(c.x), 140 + ci), shape: c.x, requiresGrad: true },
      { data: randnArray(numelOf(c.w), 150 + ci, 0.2), shape: c.w, requiresGrad: true },
      { data: randnArray(c.w[0], 160 + ci), shape: [c.w[0]], requiresGrad: true },
      { data: randnArray(n * c.zc * ho * wo, 170 + ci), shape: [n, c.zc, ho, wo], requiresGrad: true },
    ];
    const fn = (x: Tensor, w: Tensor, b: Tensor, z: Tensor) => cat([z, conv2d(x, w, b, c.opts)], 1);
    const prev = process.env.FOLIAR_MATMUL_VARIANT;
    if (c.subgroupMatmul) process.env.FOLIAR_MATMUL_VARIANT = 'subgroup';
    try {
      for (const v of convVariants(gpu)) {
        const lanes: (4 | 8 | undefined)[] = [undefined];
        if (ci === 0 && v === 'window' && convWindowLanes(gpu) === 8) lanes.push(4);
        for (const l of lanes) {
          await withVariant(v, l, () => compareBackends((x, w, b, z) => fn(x!, w!, b!, z!), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: `${v}${l ? `, ${l} lanes` : ''}` }));
        }
      }
    } finally {
      if (prev === undefined) delete process.env.FOLIAR_MATMUL_VARIANT;
      else process.env.FOLIAR_MATMUL_VARIANT = prev;
    }
  });
}


test('conv2d backward of a channel slice copies nothing (WebGPU)', async () => {
  const gpu = requireGpu('the dispatch count of conv2d gradients');
  if (!(gpu instanceof WebGPUBackend)) return;
  const x = tensor(randnArray(2 * 8 * 8 * 8, 181), { shape: [2, 8, 8, 8], backend: gpu, requiresGrad: true });
  const w = tensor(randnArray(8 * 8 * 3 * 3, 182, 0.2), { shape: [8, 8, 3, 3], backend: gpu, requiresGrad: true });
  const z = tensor(randnArray(2 * 4 * 8 * 8, 183), { shape: [2, 4, 8, 8], backend: gpu });
  const y = cat([conv2d(x, w, null, { padding: 1 }), z], 1);
  const R = tensor(randnArray(2 * 12 * 8 * 8, 184), { shape: [2, 12, 8, 8], backend: gpu });
  const { report } = await profile(async () => {
    y.backward(R);
    await x.grad!.data();
  }, { gpuTime: false });
  const ops = report.byOp.map((r) => `${r.name} ${r.dispatches}`).join(', ');
  assert.is(report.byOp.find((r) => r.name === 'copy')?.dispatches ?? 0, 0, `copies (${ops})`);
  for (const t of [x, w, z, y, R]) t.dispose();
});

test("window forward: one kernel per tile serves every epilogue (none, bias, addend, both)", async () => {
  const gpu = requireGpu('the window kernels\' runtime epilogue');
  if (!(gpu instanceof WebGPUBackend) || !convVariants(gpu).includes('window')) return;
  await withVariant('window', undefined, async () => {
    // shapes of their own, so that no earlier test compiled their tiles; 13 output columns: not a
    // multiple of the 8-pixel tile (scalar stores), 16: vec4 stores
    for (const [ci, wd] of [13, 16].entries()) {
      // 8 in-channels: 24 kernel rows, whole steps of 8 lanes (the window kernel's condition)
      const specs = [
        { data: randnArray(2 * 8 * 7 * wd, 301 + ci), shape: [2, 8, 7, wd] },
        { data: randnArray(5 * 8 * 3 * 3, 302 + ci, 0.2), shape: [5, 8, 3, 3] },
        { data: randnArray(5, 303 + ci), shape: [5] },
        { data: randnArray(2 * 5 * 7 * wd, 304 + ci), shape: [2, 5, 7, wd] },
      ];
      const check = (bias: boolean, addend: boolean) =>
        compareBackends((x, w, b, r) => conv2d(x!, w!, bias ? b! : null, { padding: 1, ...(addend ? { addend: r! } : {}) }), specs, { grad: false, rtol: 1e-4, msg: `width ${wd}, bias ${bias}, addend ${addend}` });
      await check(false, false);
      const before = gpu.rt.stats.pipelinesCompiled;
      await check(true, false);
      await check(false, true);
      await check(true, true);
      assert.is(gpu.rt.stats.pipelinesCompiled - before, 0, `width ${wd}: no pipeline compiled for the other three epilogues`);
    }
  });
});

test.run();
