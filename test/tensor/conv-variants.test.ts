import { test } from '../harness.js';
import { WebGPUBackend, tensor, type Backend, type Tensor } from '@foliar/tensor';
import { conv2d, convTranspose2d, conv2dGradInputRaw, conv2dGradWeightRaw, conv2dGradWeightBiasRaw, type Conv2dOptions, type Conv2dAttrs } from '../../packages/tensor/src/ops/conv/index.js';
import { windowApplies, windowDispatch, windowPlan } from '../../packages/tensor/src/ops/conv/webgpu-window.js';
import { sum, narrow, profile } from '@foliar/tensor';
import * as assert from 'uvu/assert';
import { convVariants, convWindowLanes, tuneConv, gemmDispatch, convSplitBelow, setConvSplitBelow, type ConvVariant } from '../../packages/tensor/src/ops/conv/webgpu.js';
import { registerTunable, tune } from '../../packages/tensor/src/backends/webgpu/tuning.js';
import { withVariant } from './conv-variant.js';
import { setup, teardown, requireGpu, skip, backends, compareBackends, assertClose, randnArray, numelOf, prng, withScratchTuneCache } from '../helpers.js';

test.before(async () => {
  await setup();
});
test.after(() => teardown());

/**
 * Every conv kernel variant against the CPU reference (forward, input and weight gradients) at
 * sizes that are not multiples of the tiles (window: 8 or 4 pixels, 4-32 rows, chunks of 4 pixels),
 * odd channel counts, stride 2, dilation, groups, batch 1, and non-square kernels.
 */
interface Case {
  x: [number, number, number, number];
  w: [number, number, number, number];
  bias: boolean;
  opts: Conv2dOptions;
  /** Also run the window variant at 4 lanes. */
  four?: boolean;
}
const cases: Case[] = [
  { x: [1, 3, 7, 7], w: [5, 3, 3, 3], bias: true, opts: { padding: 1 } },
  { x: [2, 5, 13, 11], w: [17, 5, 3, 3], bias: true, opts: { stride: 2, padding: 1 }, four: true },
  { x: [3, 17, 9, 10], w: [5, 17, 1, 1], bias: false, opts: {}, four: true },
  { x: [2, 8, 12, 12], w: [16, 8, 1, 1], bias: true, opts: { stride: 2 } },
  { x: [2, 16, 12, 12], w: [16, 16, 3, 3], bias: true, opts: { padding: 1 } },
  { x: [1, 8, 6, 6], w: [40, 8, 3, 3], bias: false, opts: { padding: 1 } },
  { x: [2, 33, 7, 7], w: [33, 33, 3, 3], bias: true, opts: { padding: 1 } },
  { x: [1, 4, 2, 2], w: [8, 4, 3, 3], bias: false, opts: { padding: 1 }, four: true },
  { x: [2, 6, 10, 10], w: [4, 3, 3, 3], bias: true, opts: { groups: 2, padding: [1, 2] } },
  { x: [2, 4, 9, 9], w: [6, 4, 2, 2], bias: false, opts: {} },
  { x: [1, 5, 13, 13], w: [3, 5, 3, 3], bias: true, opts: { dilation: 2, padding: 2 } },
  { x: [2, 3, 8, 9], w: [4, 3, 3, 1], bias: false, opts: { padding: [1, 0] } },
  { x: [1, 3, 7, 8], w: [5, 3, 3, 3], bias: true, opts: { stride: [1, 2], padding: [0, 1, 1, 0] } },
  { x: [1, 3, 11, 11], w: [4, 3, 5, 5], bias: true, opts: { padding: 2 } },
  { x: [4, 5, 40, 40], w: [3, 5, 3, 3], bias: false, opts: { padding: 1 } },
];

/**
 * The variants to run here: every supported one, and (with `fourLanes`) the window variant at 4
 * lanes where 8 is native. Compiling a window kernel takes ~0.5 s on lavapipe, so the 4-lane path
 * runs on a few cases only.
 */
function runs(fourLanes = false): { v: ConvVariant; lanes: 4 | 8 | undefined; name: string }[] {
  const gpu = requireGpu('conv2d variants');
  if (!(gpu instanceof WebGPUBackend)) return [];
  const out: { v: ConvVariant; lanes: 4 | 8 | undefined; name: string }[] = [];
  for (const v of convVariants(gpu)) {
    out.push({ v, lanes: undefined, name: v });
    if (fourLanes && v === 'window' && convWindowLanes(gpu) === 8) out.push({ v, lanes: 4, name: 'window, 4 lanes' });
  }
  return out;
}

for (const c of cases) {
  test(`conv2d variants vs CPU x${JSON.stringify(c.x)} w${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}`, async () => {
    const specs = [
      { data: randnArray(numelOf(c.x), 21), shape: c.x, requiresGrad: true },
      { data: randnArray(numelOf(c.w), 22, 0.3), shape: c.w, requiresGrad: true },
      ...(c.bias ? [{ data: randnArray(c.w[0], 23), shape: [c.w[0]], requiresGrad: true }] : []),
    ];
    for (const r of runs(c.four)) {
      await withVariant(r.v, r.lanes, () => compareBackends((x, w, b) => conv2d(x!, w!, b ?? null, c.opts), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: r.name }));
    }
  });
}

/**
 * Few output pixels and many channels (ResNet18's last stages): forward and input gradient up to
 * 4x4 outputs, weight gradient (without bias) up to 2x2, run as im2col + the matmul kernel's fast
 * form (webgpu-im2col.ts). Odd channel counts, stride 2, dilation, asymmetric padding, a non-square
 * kernel, a 1x1 stride-2 projection, an input at a nonzero offset; the path is asserted taken.
 */
const im2colCases: (Case & { wgrad: boolean; offset?: boolean; fwdImplicit?: boolean })[] = [
  { x: [3, 70, 3, 5], w: [66, 70, 3, 3], bias: true, opts: { padding: 1 }, wgrad: false },
  { x: [2, 65, 7, 6], w: [67, 65, 3, 3], bias: false, opts: { stride: 2, padding: 1 }, wgrad: false },
  { x: [1, 96, 4, 4], w: [64, 96, 3, 3], bias: false, opts: { dilation: 2, padding: 1 }, wgrad: true },
  { x: [5, 256, 4, 4], w: [72, 256, 1, 1], bias: false, opts: { stride: 2 }, wgrad: true, offset: true },
  { x: [2, 66, 3, 4], w: [64, 66, 3, 2], bias: true, opts: { padding: [1, 1, 0, 0] }, wgrad: false },
  { x: [2, 129, 3, 3], w: [65, 129, 3, 3], bias: false, opts: { stride: 2, padding: [1, 0, 0, 1] }, wgrad: true },
  // a 7x7 stride-2 stem (no window kernel): both gradients as products, the forward implicit
  { x: [2, 3, 19, 18], w: [9, 3, 7, 7], bias: false, opts: { stride: 2, padding: 3 }, wgrad: true, fwdImplicit: true },
];
for (const c of im2colCases) {
  test(`conv2d im2col + matmul path vs CPU x${JSON.stringify(c.x)} w${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}`, async () => {
    const gpu = requireGpu('the im2col conv path');
    if (!(gpu instanceof WebGPUBackend) || !gpu.rt.subgroups) skip('the im2col path runs where matmul takes its subgroup form', 'adapter');
    const [n, ...rest] = c.x;
    const specs = [
      { data: randnArray(numelOf(c.x), 31), shape: c.x, requiresGrad: true },
      { data: randnArray(numelOf(c.w), 32, 0.1), shape: c.w, requiresGrad: true },
      ...(c.bias ? [{ data: randnArray(c.w[0], 33), shape: [c.w[0]], requiresGrad: true }] : []),
    ];
    if (c.offset) specs[0] = { data: randnArray((n + 1) * numelOf(rest), 31), shape: [n + 1, ...rest], requiresGrad: true };
    const prev = process.env.FOLIAR_MATMUL_VARIANT;
    process.env.FOLIAR_MATMUL_VARIANT = 'subgroup';
    try {
      const { report } = await profile(() =>
        compareBackends((x, w, b) => conv2d(c.offset ? narrow(x!, 0, 1, n) : x!, w!, b ?? null, c.opts), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: 'im2col' }),
      { gpuTime: false });
      const count = (name: string) => report.byOp.find((r) => r.name === name)?.dispatches ?? 0;
      // forward and weight gradient gather columns, the input gradient scatters them back
      assert.is(count('conv2d_im2col'), (c.fwdImplicit ? 0 : 1) + (c.wgrad ? 1 : 0), 'im2col dispatches');
      assert.is(count('conv2d_col2im'), 1, 'col2im dispatches');
    } finally {
      if (prev === undefined) delete process.env.FOLIAR_MATMUL_VARIANT;
      else process.env.FOLIAR_MATMUL_VARIANT = prev;
    }
  });
}

/**
 * 1x1, stride 1 convolutions as a batch of products on the matmul kernel (webgpu-pointwise.ts):
 * forward (per-row bias) and input gradient, pixels per image on and off multiples of 4, odd channel
 * counts, one image, an input at a nonzero offset; the path is asserted taken (no conv kernel runs
 * forward or for the input gradient), and FOLIAR_CONV_POINTWISE=0 gives the implicit kernels' result.
 */
const pointwiseCases: { x: [number, number, number, number]; w: [number, number, number, number]; bias: boolean; offset?: boolean }[] = [
  { x: [3, 17, 9, 10], w: [5, 17, 1, 1], bias: true },
  { x: [2, 64, 8, 8], w: [64, 64, 1, 1], bias: true },
  { x: [1, 33, 7, 7], w: [70, 33, 1, 1], bias: false },
  { x: [2, 96, 16, 16], w: [32, 96, 1, 1], bias: true, offset: true },
];
for (const c of pointwiseCases) {
  test(`conv2d 1x1 as products vs CPU x${JSON.stringify(c.x)} w${JSON.stringify(c.w)}${c.bias ? ' bias' : ''}${c.offset ? ' at an offset' : ''}`, async () => {
    const gpu = requireGpu('the pointwise conv path');
    if (!(gpu instanceof WebGPUBackend) || !gpu.rt.subgroups) skip('the pointwise path runs where matmul takes its subgroup form', 'adapter');
    const [n, ...rest] = c.x;
    const specs = [
      { data: randnArray((n + (c.offset ? 1 : 0)) * numelOf(rest), 41), shape: [n + (c.offset ? 1 : 0), ...rest], requiresGrad: true },
      { data: randnArray(numelOf(c.w), 42, 0.2), shape: c.w, requiresGrad: true },
      ...(c.bias ? [{ data: randnArray(c.w[0], 43), shape: [c.w[0]], requiresGrad: true }] : []),
    ];
    const fn = (x?: Tensor, w?: Tensor, b?: Tensor) => conv2d(c.offset ? narrow(x!, 0, 1, n) : x!, w!, b ?? null);
    const prev = process.env.FOLIAR_MATMUL_VARIANT;
    process.env.FOLIAR_MATMUL_VARIANT = 'subgroup';
    try {
      const { report } = await profile(() => compareBackends(fn, specs, { rtol: 1e-4, gradRtol: 2e-4, msg: 'pointwise' }), { gpuTime: false });
      const count = (name: string) => report.byOp.find((r) => r.name === name)?.dispatches ?? 0;
      assert.is(count('conv2d_fwd'), 0, 'no conv forward kernel');
      assert.is(count('conv2d_dgrad'), 0, 'no conv input-gradient kernel');
      assert.ok(count('matmul') >= 2, 'forward and input gradient as products');
      // the same values as the implicit kernels
      const x = tensor(specs[0]!.data, { shape: specs[0]!.shape, backend: gpu }), w = tensor(specs[1]!.data, { shape: c.w, backend: gpu });
      const b = c.bias ? tensor(specs[2]!.data, { shape: [c.w[0]], backend: gpu }) : undefined;
      const viaProduct = await fn(x, w, b).dataF32();
      process.env.FOLIAR_CONV_POINTWISE = '0';
      const implicit = await fn(x, w, b).dataF32();
      await assertClose(viaProduct, implicit, { rtol: 1e-5, atol: 1e-5, msg: 'products vs implicit kernels' });
    } finally {
      delete process.env.FOLIAR_CONV_POINTWISE;
      if (prev === undefined) delete process.env.FOLIAR_MATMUL_VARIANT;
      else process.env.FOLIAR_MATMUL_VARIANT = prev;
    }
  });
}

test('convTranspose2d variants vs CPU (stride 1: its forward is the window input gradient)', async () => {
  const specs = [
    { data: randnArray(2 * 6 * 9 * 9, 24), shape: [2, 6, 9, 9], requiresGrad: true },
    { data: randnArray(6 * 5 * 3 * 3, 25, 0.3), shape: [6, 5, 3, 3], requiresGrad: true },
  ];
  for (const r of runs()) {
    await withVariant(r.v, r.lanes, () => compareBackends((x, w) => convTranspose2d(x!, w!, null, { padding: 1 }), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: r.name }));
  }
});

test('convTranspose2d stride 2 variants vs CPU (its forward is the strided window input gradient)', async () => {
  const specs = [
    { data: randnArray(2 * 8 * 7 * 9, 26), shape: [2, 8, 7, 9], requiresGrad: true },
    { data: randnArray(8 * 5 * 3 * 3, 27, 0.3), shape: [8, 5, 3, 3], requiresGrad: true },
  ];
  for (const r of runs(true)) {
    await withVariant(r.v, r.lanes, () => compareBackends((x, w) => convTranspose2d(x!, w!, null, { stride: 2, padding: 1, outputPadding: 1 }), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: r.name }));
  }
});

/**
 * Random input-gradient problems with stride 2 or 3 along x, all of which the window variant takes
 * (asserted): kernels 1-4 wide and high, padding 0-2 on each side, dilation 1-2, stride 1-3
 * along y, groups 1-3, batch 1-3, odd sizes that are no multiple of the tile or of the stride,
 * channel counts that leave row tiles partly empty; 8 and 4 lanes.
 */
function stridedDgradCases(count: number, seed: number): Conv2dAttrs[] {
  const r = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const out: Conv2dAttrs[] = [];
  while (out.length < count) {
    const kh = int(1, 4), kw = int(1, 4), strideW = int(2, 3), strideH = int(1, 3), dilH = int(1, 2), dilW = int(1, 2);
    const groups = int(1, 3), cg = int(1, 9), kg = int(1, 12), n = int(1, 3);
    const h = int(4, 19), w = int(4, 21);
    const pt = int(0, 2), pb = int(0, 2), pl = int(0, 2), pr = int(0, 2);
    const ho = Math.floor((h + pt + pb - dilH * (kh - 1) - 1) / strideH) + 1;
    const wo = Math.floor((w + pl + pr - dilW * (kw - 1) - 1) / strideW) + 1;
    if (ho < 1 || wo < 1) continue;
    const a: Conv2dAttrs = {
      n, c: cg * groups, h, w, k: kg * groups, ho, wo, kh, kw,
      strideH, strideW, dilH, dilW, padTop: pt, padLeft: pl, groups,
    };
    if (windowApplies('dgrad', a, 8) && windowApplies('dgrad', a, 4)) out.push(a);
  }
  return out;
}

test('conv2d input gradient with stride along x through the window kernel vs CPU (random shapes)', async () => {
  const gpu = requireGpu('the window conv2d input gradient');
  if (!(gpu instanceof WebGPUBackend) || convWindowLanes(gpu) === null) return;
  const { cpu } = backends();
  const list = stridedDgradCases(24, 31);
  // both widths of the pad-mod-stride classes and both strides must be among them
  assert.ok(list.some((a) => a.strideW === 3) && list.some((a) => a.strideW === 2 && a.padLeft % 2 === 1), 'cases cover stride 3 and odd padding');
  let i = 0;
  for (const a of list) {
    const lanes: 4 | 8 | undefined = i++ % 3 === 2 && convWindowLanes(gpu) === 8 ? 4 : undefined;
    const dyData = randnArray(a.n * a.k * a.ho * a.wo, 40 + i), wData = randnArray(a.k * (a.c / a.groups) * a.kh * a.kw, 80 + i, 0.3);
    // odd cases: the weights are a view at offset 1 (the kernel reads them in place, no aligned copy)
    const lead = i % 2;
    const run = async (be: Backend) => {
      const dy = tensor(dyData, { shape: [a.n, a.k, a.ho, a.wo], backend: be });
      const wAll = tensor(lead ? [0.5, ...wData] : wData, { shape: [wData.length + lead], backend: be });
      const wFlat = lead ? narrow(wAll, 0, 1, wData.length) : wAll;
      const w = wFlat.reshape([a.k, a.c / a.groups, a.kh, a.kw]);
      if (lead) assert.is(w.offset, 1, 'the weight view keeps its offset');
      const dx = conv2dGradInputRaw(dy, w, a);
      const data = await dx.data();
      for (const t of new Set([dy, wAll, wFlat, w, dx])) t.dispose();
      return data;
    };
    const want = await run(cpu);
    await withVariant('window', lanes, async () => {
      await assertClose(await run(gpu), want, { rtol: 1e-4, msg: `window dgrad ${lanes ?? 'native'} lanes ${JSON.stringify(a)}` });
    });
  }
});

/**
 * Random weight-gradient problems with a bias: kernels 1-5 (5 wide: the window variant falls back
 * to the GEMM), stride and dilation 1-2, padding 0-2 on each side, groups 1-3, batch 1-3, channel
 * counts that leave row tiles partly empty; half of them small (one workgroup pass over the
 * reduction), half with 500-3000 output pixels per channel, whose reduction both variants split
 * over workgroups.
 */
function wgradBiasCases(count: number, seed: number): Conv2dAttrs[] {
  const r = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const out: Conv2dAttrs[] = [];
  while (out.length < count) {
    const big = out.length % 2 === 1;
    const kh = int(1, 4), kw = int(1, 5), strideH = int(1, 2), strideW = int(1, 2), dilH = int(1, 2), dilW = int(1, 2);
    const groups = int(1, 3), cg = int(1, 6), kg = int(1, 12), n = big ? int(2, 3) : int(1, 3);
    const h = big ? int(24, 44) : int(3, 13), w = big ? int(24, 44) : int(3, 13);
    const pt = int(0, 2), pb = int(0, 2), pl = int(0, 2), pr = int(0, 2);
    const ho = Math.floor((h + pt + pb - dilH * (kh - 1) - 1) / strideH) + 1;
    const wo = Math.floor((w + pl + pr - dilW * (kw - 1) - 1) / strideW) + 1;
    if (ho < 1 || wo < 1) continue;
    out.push({ n, c: cg * groups, h, w, k: kg * groups, ho, wo, kh, kw, strideH, strideW, dilH, dilW, padTop: pt, padLeft: pl, groups });
  }
  return out;
}

test('conv2d bias gradient from the weight-gradient kernel vs CPU weight gradient and Σ dy (random shapes, both variants, split and unsplit)', async () => {
  const gpu = requireGpu('the conv2d weight and bias gradient');
  if (!(gpu instanceof WebGPUBackend)) return;
  const { cpu } = backends();
  const list = wgradBiasCases(12, 57);
  const lanes8 = convWindowLanes(gpu);
  const splits = (v: ConvVariant, a: Conv2dAttrs, lanes: 4 | 8): number =>
    v === 'window' && windowApplies('wgrad', a, lanes)
      ? windowDispatch(windowPlan('wgrad', { ...a, biasGrad: true }, false, lanes, { splitBelow: convSplitBelow(gpu) }), { ...a, biasGrad: true }, { off0: 0, off1: 0, off2: 0 }).splits
      : gemmDispatch('wgrad', { ...a, biasGrad: true }, { off0: 0, off1: 0, off2: 0 }, gpu.rt.subgroups, false).splits;
  // the cases must reach both the split and the unsplit reduction of each variant: the window variant
  // runs at the adapter's own threshold and at a GPU's (64), which splits where a CPU's does not
  const variants = convVariants(gpu);
  const thresholds = [convSplitBelow(gpu), ...(convSplitBelow(gpu) < 64 ? [64] : [])];
  for (const v of variants) {
    const ss = thresholds.flatMap((t) => {
      setConvSplitBelow(gpu, t);
      try {
        return list.map((a) => splits(v, a, lanes8 ?? 8));
      } finally {
        setConvSplitBelow(gpu, undefined);
      }
    });
    assert.ok(ss.some((s) => s > 1) && ss.some((s) => s === 1), `${v}: split factors ${ss.join(',')}`);
  }
  assert.ok(list.some((a) => a.kw === 5) && list.some((a) => a.groups > 1), 'cases cover 5-wide kernels and groups');
  let i = 0;
  for (const a of list) {
    i++;
    const cg = a.c / a.groups;
    const xData = randnArray(a.n * a.c * a.h * a.w, 140 + i);
    // odd cases: dy is a view at an offset that is no multiple of 4 (one image more in front)
    const lead = i % 2;
    const dyData = randnArray((a.n + lead) * a.k * a.ho * a.wo, 180 + i);
    const make = (be: Backend) => {
      const x = tensor(xData, { shape: [a.n, a.c, a.h, a.w], backend: be });
      const dyAll = tensor(dyData, { shape: [a.n + lead, a.k, a.ho, a.wo], backend: be });
      const dy = lead ? narrow(dyAll, 0, 1, a.n) : dyAll;
      return { x, dy, all: [x, dyAll, ...(lead ? [dy] : [])] };
    };
    // reference: the CPU weight gradient alone and the plain reduction of dy
    const c = make(cpu);
    const wantW = await conv2dGradWeightRaw(c.x, c.dy, a).data();
    const wantB = await sum(c.dy, [0, 2, 3]).data();
    // and the CPU kernel's fused output
    const [cw, cb] = conv2dGradWeightBiasRaw(c.x, c.dy, a);
    await assertClose(await cw.data(), wantW, { rtol: 1e-5, msg: `CPU fused dweight ${JSON.stringify(a)}` });
    await assertClose(await cb.data(), wantB, { rtol: 1e-5, msg: `CPU fused dbias ${JSON.stringify(a)}` });
    for (const t of [...c.all, cw, cb]) t.dispose();
    const runsHere: { v: ConvVariant; lanes: 4 | 8 | undefined; splitBelow?: number }[] = variants.map((v) => ({ v, lanes: undefined }));
    if (lanes8 === 8 && i % 3 === 0) runsHere.push({ v: 'window', lanes: 4 });
    if (variants.includes('window') && thresholds.length > 1) runsHere.push({ v: 'window', lanes: undefined, splitBelow: 64 });
    for (const r of runsHere) {
      if (r.splitBelow !== undefined) setConvSplitBelow(gpu, r.splitBelow);
      await withVariant(r.v, r.lanes, async () => {
        const g = make(gpu);
        const [dw, db] = conv2dGradWeightBiasRaw(g.x, g.dy, a);
        const msg = `${r.v} ${r.lanes ?? 'native'} lanes, ${splits(r.v, a, r.lanes ?? lanes8 ?? 8)} splits, ${JSON.stringify(a)}`;
        assert.equal([...dw.shape], [a.k, cg, a.kh, a.kw]);
        assert.equal([...db.shape], [a.k]);
        await assertClose(await dw.data(), wantW, { rtol: 2e-4, msg: `dweight ${msg}` });
        await assertClose(await db.data(), wantB, { rtol: 2e-4, msg: `dbias ${msg}` });
        for (const t of [...g.all, dw, db]) t.dispose();
      }).finally(() => setConvSplitBelow(gpu, undefined));
    }
  }
});

test('the conv2d tuner verifies every candidate it times', async () => {
  const gpu = requireGpu('conv2d tuning');
  if (!(gpu instanceof WebGPUBackend)) throw new Error(`the WebGPU backend is a ${gpu.constructor.name}`);
  await withScratchTuneCache(async () => {
    const r = await tuneConv(gpu, { force: true });
    assert.ok(r, 'tuning ran');
    assert.equal(r!.rejected ?? {}, {}, 'no variant of this adapter computes a wrong conv');
    assert.ok(Number.isFinite(r!.ms[r!.variant]!), `winner ${r!.variant} was timed`);
  });
});

test('the tuner repeats a candidate far shorter than a submit within one timed sample', async () => {
  const gpu = requireGpu('tuning');
  if (!(gpu instanceof WebGPUBackend)) throw new Error(`the WebGPU backend is a ${gpu.constructor.name}`);
  const n = 64;
  const kernel = (f: number) => `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < ${n}u) { y[g.x] = ${f.toFixed(1)} * x[g.x]; }
}`;
  registerTunable('testtiny', {
    version: 1,
    variants: ['a', 'b'],
    heuristic: () => 'a',
    supported: () => true,
    problem: () => ({
      buffers: [n, n],
      candidates: {
        a: [{ key: 'test:tiny:a', wgsl: () => kernel(2), buffers: [0, 1], workgroups: [1, 1, 1] }],
        b: [{ key: 'test:tiny:b', wgsl: () => kernel(2), buffers: [0, 1], workgroups: [1, 1, 1] }],
      },
      check: { output: 1, expected: ([x]) => x!.map((v) => 2 * v), tolerance: 1e-6 },
    }),
  });
  await withScratchTuneCache(async () => {
    const r = await tune(gpu, 'testtiny', { force: true });
    assert.ok(r, 'tuning ran');
    const best = Math.min(r!.ms.a!, r!.ms.b!);
    // one 64-element dispatch takes microseconds: a sample of one run would time the submit
    if (best < 0.1) assert.ok((r!.reps ?? 1) > 1, `runs of ${best} ms were timed ${r!.reps ?? 1} at a time`);
    assert.ok((r!.reps ?? 1) <= 1024);
  });
});

test('a tuning that overturns the heuristic is cached as unconfirmed until a second one agrees; a close race needs no second', async () => {
  const gpu = requireGpu('tuning');
  if (!(gpu instanceof WebGPUBackend)) throw new Error(`the WebGPU backend is a ${gpu.constructor.name}`);
  const n = 4096;
  // y = 2x, with `spin` dependent no-op iterations per element: a slow and a fast way to the same result
  const kernel = (spin: number) => `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= ${n}u) { return; }
  var v = x[g.x];
  for (var i = 0u; i < ${spin}u; i++) { v = v * 1.0000001 - v * 0.0000001; }
  y[g.x] = 2.0 * v;
}`;
  const family = (name: string, slowA: number, slowB: number) => registerTunable(name, {
    version: 1,
    variants: ['a', 'b'],
    heuristic: () => 'a',
    supported: () => true,
    problem: () => ({
      buffers: [n, n],
      candidates: {
        a: [{ key: `${name}:a`, wgsl: () => kernel(slowA), buffers: [0, 1], workgroups: [n / 64, 1, 1] }],
        b: [{ key: `${name}:b`, wgsl: () => kernel(slowB), buffers: [0, 1], workgroups: [n / 64, 1, 1] }],
      },
      check: { output: 1, expected: ([x]) => x!.map((v) => 2 * v), tolerance: 1e-3 },
    }),
  });
  family('testoverturn', 400, 0);
  family('testclose', 0, 0);
  await withScratchTuneCache(async () => {
    const first = await tune(gpu, 'testoverturn', { force: true });
    assert.is(first!.variant, 'b', `the fast candidate wins: ${JSON.stringify(first!.ms)}`);
    assert.is(first!.agreements, 1, 'against the heuristic, one measurement is not yet trusted');
    const second = await tune(gpu, 'testoverturn', { force: true });
    assert.is(second!.variant, 'b');
    assert.is(second!.agreements, 2, 'confirmed by the second');
    const close = await tune(gpu, 'testclose', { force: true });
    // two equal kernels: usually within 20% of each other, then settled at once; a disturbed sample is not
    const [ta, tb] = [close!.ms.a!, close!.ms.b!];
    const within = Math.max(ta, tb) < 1.2 * Math.min(ta, tb);
    assert.is(close!.agreements, within ? 2 : 1, `close race ${JSON.stringify(close!.ms)}`);
  });
});

test.run();
