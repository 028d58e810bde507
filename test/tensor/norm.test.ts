import { test } from '../harness.js';
import { shared, readGoldenOpsSync, setup, teardown, backends as both, requireGpu, skip, withDispatchKeys } from '../helpers.js';
import * as assert from 'uvu/assert';
import { cpuBackend, tensor, profile, type Backend, type Tensor } from '@foliar/tensor';
import { setNormRowMapping } from '@foliar/tensor/internal';
import { groupNorm, groupNormSilu, layerNorm, batchNorm } from '../../packages/tensor/src/ops/norm/index.js';
import { prng } from '../prng.js';

// null (with a SKIP notice) without ../shared; an error instead under FOLIAR_REQUIRE_SHARED
const haveGolden = shared('golden/ops', 'golden ops') !== null;
const readGolden = readGoldenOpsSync;

/** floor: the smallest scale the tolerance is relative to (the size of the terms that cancel to give `expected`). */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string, floor = 1e-6): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let scale = floor, err = 0, at = -1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= err)) { err = d; at = i; }
  }
  if (!(err <= tol * scale)) {
    assert.unreachable(`${what}: max error ${err} at ${at} (got ${actual[at]}, want ${expected[at]}; scale ${scale}, tol ${tol})`);
  }
}

const cpu = cpuBackend();
/** [name, backend] for the CPU and WebGPU (WebGPU read where there is none: a skipped part, run on the CPU). */
const backends = (): [string, Backend][] => [['cpu', cpu], ['webgpu', both().gpu]];
/** The golden cases' backend by name (skipping the test where WebGPU is missing). */
const named = (bname: string): Backend => (bname === 'cpu' ? cpu : requireGpu());

test.before(async () => {
  await setup();
});
test.after(() => teardown());

function put(be: Backend, g: Map<string, { shape: number[]; data: Float32Array }>, name: string, grad = false): Tensor {
  const e = g.get(name)!;
  const t = tensor(e.data, { backend: be, shape: e.shape });
  return grad ? t.requiresGrad_() : t;
}

async function checkGrads(g: Map<string, { shape: number[]; data: Float32Array }>, pairs: [Tensor, string][], tol: number, tag: string): Promise<void> {
  for (const [t, name] of pairs) {
    assert.ok(t.grad, `${tag}: ${name} has no grad`);
    close(await t.grad!.dataF32(), g.get(name)!.data, tol, `${tag} ${name}`);
  }
}

const gnCases: [string, number, number][] = [['group_norm_g32', 32, 1e-5], ['group_norm_g2', 2, 1e-6]];
for (const [name, groups, eps] of gnCases) {
  for (const bname of ['cpu', 'webgpu']) {
    test(`golden ${name} (${bname})`, async () => {
      if (!haveGolden) skip(`golden ${name}: ../shared not found`, 'shared');
      const be = named(bname);
      const g = readGolden(name);
      const x = put(be, g, 'x', true), w = put(be, g, 'weight', true), b = put(be, g, 'bias', true);
      const y = groupNorm(x, groups, w, b, eps);
      close(await y.dataF32(), g.get('out')!.data, 1e-5, `${name} out`);
      y.backward(put(be, g, 'R'));
      await checkGrads(g, [[x, 'grad_x'], [w, 'grad_weight'], [b, 'grad_bias']], 2e-5, name);
    });
  }
}

for (const bname of ['cpu', 'webgpu']) {
  test(`golden layer_norm (${bname})`, async () => {
    if (!haveGolden) skip('golden layer_norm: ../shared not found', 'shared');
    const be = named(bname);
    const g = readGolden('layer_norm');
    const x = put(be, g, 'x', true), w = put(be, g, 'weight', true), b = put(be, g, 'bias', true);
    const y = layerNorm(x, [32], w, b, 1e-5);
    close(await y.dataF32(), g.get('out')!.data, 1e-5, 'layer_norm out');
    y.backward(put(be, g, 'R'));
    await checkGrads(g, [[x, 'grad_x'], [w, 'grad_weight'], [b, 'grad_bias']], 2e-5, 'layer_norm');
  });

  test(`golden batch_norm_train incl. running stats (${bname})`, async () => {
    if (!haveGolden) skip('golden batch_norm_train: ../shared not found', 'shared');
    const be = named(bname);
    const g = readGolden('batch_norm_train');
    const x = put(be, g, 'x', true), w = put(be, g, 'weight', true), b = put(be, g, 'bias', true);
    const rm = put(be, g, 'running_mean'), rv = put(be, g, 'running_var');
    const y = batchNorm(x, rm, rv, w, b, { training: true, momentum: 0.1, eps: 1e-5 });
    close(await y.dataF32(), g.get('out')!.data, 1e-5, 'batch_norm_train out');
    close(await rm.dataF32(), g.get('running_mean_after')!.data, 1e-6, 'running_mean_after');
    close(await rv.dataF32(), g.get('running_var_after')!.data, 1e-6, 'running_var_after');
    y.backward(put(be, g, 'R'));
    await checkGrads(g, [[x, 'grad_x'], [w, 'grad_weight'], [b, 'grad_bias']], 2e-5, 'batch_norm_train');
  });

  test(`golden batch_norm_eval (${bname})`, async () => {
    if (!haveGolden) skip('golden batch_norm_eval: ../shared not found', 'shared');
    const be = named(bname);
    const g = readGolden('batch_norm_eval');
    const x = put(be, g, 'x', true), w = put(be, g, 'weight', true), b = put(be, g, 'bias', true);
    const rm = put(be, g, 'running_mean'), rv = put(be, g, 'running_var');
    const y = batchNorm(x, rm, rv, w, b, { training: false, eps: 1e-5 });
    close(await y.dataF32(), g.get('out')!.data, 1e-5, 'batch_norm_eval out');
    // eval mode leaves the running stats alone
    close(await rm.dataF32(), g.get('running_mean')!.data, 0, 'running_mean unchanged');
    y.backward(put(be, g, 'R'));
    await checkGrads(g, [[x, 'grad_x'], [w, 'grad_weight'], [b, 'grad_bias']], 2e-5, 'batch_norm_eval');
  });
}

// ---- randomized WebGPU vs CPU at awkward sizes ----

const rng = prng;
function randn(n: number, seed: number, mean = 0, std = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

type NormFn = (be: Backend, x: Tensor, w: Tensor | null, b: Tensor | null) => Tensor;

/** Runs fn on both backends with the same data; compares y and every grad. */
/** opts.floor: per output (y, dx, dw, db), the scale below which the tolerance stops shrinking (close()). */
async function crossCheck(tag: string, xShape: number[], pShape: number[] | null, fn: NormFn, opts: { affine?: boolean; mean?: number; tol?: number; floor?: number[] } = {}): Promise<void> {
  requireGpu('WebGPU vs CPU norms');
  const n = xShape.reduce((a, b) => a * b, 1);
  const xd = randn(n, 1, opts.mean ?? 0, 1.5);
  const np = pShape ? pShape.reduce((a, b) => a * b, 1) : 0;
  const wd = randn(np, 2, 1, 0.5), bd = randn(np, 3);
  const rd = randn(n, 4);
  const res: Float32Array[][] = [];
  // WebGPU twice: the subgroup-reduction kernels (where the adapter has fixed-size subgroups) and the
  // workgroup-barrier kernels every adapter can run
  const runs: [Backend, string | null][] = backends().flatMap(([name, be]): [Backend, string | null][] => (name === 'webgpu' ? [[be, '1'], [be, '0']] : [[be, null]]));
  for (const [be, sub] of runs) {
    if (sub === null) delete process.env.FOLIAR_ROW_SUBGROUPS;
    else process.env.FOLIAR_ROW_SUBGROUPS = sub;
    const x = tensor(xd, { backend: be, shape: xShape }).requiresGrad_();
    const w = pShape && opts.affine !== false ? tensor(wd, { backend: be, shape: pShape }).requiresGrad_() : null;
    const b = pShape && opts.affine !== false ? tensor(bd, { backend: be, shape: pShape }).requiresGrad_() : null;
    const y = fn(be, x, w, b);
    y.backward(tensor(rd.subarray(0, y.size), { backend: be, shape: y.shape }));
    const r = [await y.dataF32(), await x.grad!.dataF32()];
    if (w) r.push(await w.grad!.dataF32(), await b!.grad!.dataF32());
    res.push(r);
  }
  delete process.env.FOLIAR_ROW_SUBGROUPS;
  const names = ['y', 'dx', 'dw', 'db'];
  for (let k = 1; k < res.length; k++) res[0]!.forEach((ref, i) => close(res[k]![i]!, ref, opts.tol ?? 1e-4, `${tag} ${names[i]} (webgpu${runs[k]![1] === '0' ? ', workgroup reductions' : ''})`, opts.floor?.[i]));
}

test('groupNorm webgpu vs cpu: C=7, groups 1 and 7, odd spatial, long rows, no affine', async () => {
  await crossCheck('gn g1', [3, 7, 5, 3], [7], (_be, x, w, b) => groupNorm(x, 1, w, b));
  await crossCheck('gn g7', [3, 7, 5, 3], [7], (_be, x, w, b) => groupNorm(x, 7, w, b));
  await crossCheck('gn g5 long', [2, 10, 33, 17], [10], (_be, x, w, b) => groupNorm(x, 5, w, b, 1e-6));
  await crossCheck('gn no affine', [2, 6, 9], [6], (_be, x, w, b) => groupNorm(x, 3, w, b), { affine: false });
  // one element per group: x̂ = 0 and dx = rstd·(dy − mean dy − x̂·mean(dy·x̂)) = 0 exactly, but rstd = 1/√eps ≈ 316
  // and a GPU that contracts rstd·dy − rstd·mean(dy) into an FMA (NVIDIA did) leaves the rounding error of
  // a ~316·|dy| product: dx is compared at that scale
  const rstd = 1 / Math.sqrt(1e-5);
  await crossCheck('gn 1 channel, 1x1', [4, 1, 1, 1], [1], (_be, x, w, b) => groupNorm(x, 1, w, b), { floor: [1e-6, rstd * 4, 1e-6, 1e-6] });
});

test('layerNorm webgpu vs cpu: two trailing dims, odd sizes, non-contiguous input', async () => {
  await crossCheck('ln 2d', [3, 5, 6, 7], [6, 7], (_be, x, w, b) => layerNorm(x, [6, 7], w, b));
  await crossCheck('ln 77x13', [77, 13], [13], (_be, x, w, b) => layerNorm(x, [13], w, b));
  await crossCheck('ln long', [3, 1000], [1000], (_be, x, w, b) => layerNorm(x, [1000], w, b));
  await crossCheck('ln transposed', [9, 11], [9], (_be, x, w, b) => layerNorm(x.transpose(0, 1), [9], w, b));
});

test('batchNorm webgpu vs cpu: train with running stats and eval, with and without spatial dims', async () => {
  for (const shape of [[5, 7, 3, 2], [9, 7], [2, 3, 65]]) {
    const C = shape[1]!;
    for (const training of [true, false]) {
      const running: Tensor[] = [];
      await crossCheck(`bn ${shape} ${training}`, shape, [C], (be, x, w, b) => {
        const rm = tensor(randn(C, 7), { backend: be, shape: [C] });
        const rv = tensor(randn(C, 8, 2, 0.3), { backend: be, shape: [C] });
        running.push(rm, rv);
        return batchNorm(x, rm, rv, w, b, { training, momentum: 0.3 });
      });
      if (training) {
        close(await running[2]!.dataF32(), await running[0]!.dataF32(), 1e-5, 'running mean cpu vs gpu');
        close(await running[3]!.dataF32(), await running[1]!.dataF32(), 1e-5, 'running var cpu vs gpu');
      }
    }
  }
});

test('norm statistics are stable for a large mean (two-pass, not E[x²]−E[x]²)', async () => {
  for (const [, be] of backends()) {
    // mean 1e4, std 1: E[x²]−E[x]² in f32 would lose every digit of the variance
    const xd = randn(4 * 512, 11, 1e4, 1);
    const y = layerNorm(tensor(xd, { backend: be, shape: [4, 512] }), [512]);
    const yd = await y.dataF32();
    for (let r = 0; r < 4; r++) {
      let m = 0, v = 0;
      for (let j = 0; j < 512; j++) m += yd[r * 512 + j]!;
      m /= 512;
      for (let j = 0; j < 512; j++) v += (yd[r * 512 + j]! - m) ** 2;
      v /= 512;
      assert.ok(Math.abs(m) < 1e-3 && Math.abs(v - 1) < 1e-3, `${be.name} row ${r}: mean ${m}, var ${v}`);
    }
  }
});

test('norm argument errors name the op and shapes', () => {
  const x = tensor(new Float32Array(2 * 6 * 4), { backend: cpu, shape: [2, 6, 4] });
  assert.throws(() => groupNorm(x, 4), /groupNorm: 6 channels of \[2, 6, 4\] cannot be split into 4 groups/);
  assert.throws(() => layerNorm(x, [6]), /layerNorm: normalized shape \[6\]/);
  assert.throws(() => batchNorm(tensor([1, 2], { backend: cpu, shape: [1, 2] }), null, null, null, null, { training: true }), /more than 1 value per channel/);
});


test('norm backward: dx and the affine gradients in one dispatch on WebGPU; the affine alone and with an accumulated dx match the CPU', async () => {
  const gpu = requireGpu('the fused norm backward');
  const shape = [2, 6, 5, 7];
  const n = shape.reduce((a, b) => a * b, 1);
  const xd = randn(n, 21, 0.2, 1.3), wd = randn(6, 22, 1, 0.5), bd = randn(6, 23), rd = randn(n, 24);
  // xGrad: x takes part in autograd; residual: h = 1.5·x feeds the norm and is added to its output, so
  // the norm's backward accumulates h's other gradient in its kernel
  const run = async (be: Backend, xGrad: boolean, residual: boolean, silu: boolean) => {
    const x = tensor(xd, { backend: be, shape });
    if (xGrad) x.requiresGrad_();
    const w = tensor(wd, { backend: be, shape: [6] }).requiresGrad_();
    const b = tensor(bd, { backend: be, shape: [6] }).requiresGrad_();
    const h = residual ? x.mul(1.5) : x;
    const z = silu ? groupNormSilu(h, 3, w, b) : groupNorm(h, 3, w, b);
    const y = residual ? z.add(h) : z;
    y.backward(tensor(rd, { backend: be, shape }));
    const out = [await y.dataF32(), await w.grad!.dataF32(), await b.grad!.dataF32(), ...(xGrad ? [await x.grad!.dataF32()] : [])];
    for (const t of [x, w, b, y]) t.dispose();
    return out;
  };
  for (const [xGrad, residual, silu] of [[false, false, false], [true, true, false], [true, true, true], [false, false, true]] as const) {
    const c = await run(cpu, xGrad, residual, silu), g = await run(gpu, xGrad, residual, silu);
    c.forEach((ref, i) => close(g[i]!, ref, 1e-4, `x grad ${xGrad}, residual ${residual}, silu ${silu}: ${['y', 'dw', 'db', 'dx'][i]}`));
  }
  // one dispatch for dx, dw and db
  const x = tensor(xd, { backend: gpu, shape }).requiresGrad_();
  const w = tensor(wd, { backend: gpu, shape: [6] }).requiresGrad_();
  const b = tensor(bd, { backend: gpu, shape: [6] }).requiresGrad_();
  const { report } = await profile(async () => {
    groupNorm(x, 3, w, b).sum().backward();
    await x.grad!.data();
  }, { gpuTime: false });
  const count = (name: string) => report.byOp.find((r) => r.name === name)?.dispatches ?? 0;
  assert.is(count('norm_backward_affine'), 1, 'fused dispatches');
  assert.is(count('norm_backward') + count('norm_affine_grad'), 0, 'separate dispatches');
  for (const t of [x, w, b]) t.dispose();
});

test('batchNorm with a fused ReLU: equals relu(batchNorm) on the CPU (training and eval, every gradient, dispatches), and WebGPU matches the CPU at odd sizes', async () => {
  const cpuBe = cpuBackend();
  const cases: [number[], boolean][] = [[[3, 6, 5, 3], true], [[4, 5, 7], false], [[2, 8, 1, 1], true]];
  for (const [shape, affine] of cases) {
    const n = shape.reduce((a, b) => a * b, 1);
    const C = shape[1]!;
    // mean 0.2: about half the pre-activations on each side of zero
    const xd = randn(n, 21, 0.2, 1.5), wd = randn(C, 22, 1, 0.5), bd = randn(C, 23), rd = randn(n, 24);
    for (const training of [true, false]) {
      const outs: Float32Array[][] = [];
      for (const fused of [true, false]) {
        const x = tensor(xd, { backend: cpuBe, shape: [...shape] }).requiresGrad_();
        const w = affine ? tensor(wd, { backend: cpuBe, shape: [C] }).requiresGrad_() : null;
        const b = affine ? tensor(bd, { backend: cpuBe, shape: [C] }).requiresGrad_() : null;
        const rm = tensor(randn(C, 25), { backend: cpuBe, shape: [C] }), rv = tensor(randn(C, 26, 2, 0.3), { backend: cpuBe, shape: [C] });
        const y = fused ? batchNorm(x, rm, rv, w, b, { training, activation: 'relu' }) : batchNorm(x, rm, rv, w, b, { training }).relu();
        y.backward(tensor(rd, { backend: cpuBe, shape: y.shape }));
        outs.push([await y.dataF32(), await x.grad!.dataF32(), ...(w ? [await w.grad!.dataF32(), await b!.grad!.dataF32()] : []), await rm.dataF32(), await rv.dataF32()]);
      }
      const y = outs[0]![0]!;
      assert.ok(y.some((v) => v === 0) && y.some((v) => v > 0), 'both sides of the ReLU are exercised');
      outs[0]!.forEach((v, i) => close(v, outs[1]![i]!, 1e-5, `batchNorm relu ${JSON.stringify(shape)} training ${training}: output ${i} vs composed`));
    }
  }
  for (const training of [true, false]) {
    await crossCheck(`bn relu ${training}`, [3, 6, 5, 3], [6], (be, x, w, b) => batchNorm(x, tensor(randn(6, 7), { backend: be, shape: [6] }), tensor(randn(6, 8, 2, 0.3), { backend: be, shape: [6] }), w, b, { training, activation: 'relu' }), { mean: 0.2 });
  }
  await crossCheck('bn relu long rows', [9, 5, 13, 11], [5], (be, x, w, b) => batchNorm(x, null, null, w, b, { training: true, activation: 'relu' }), { mean: 0.2 });
  await crossCheck('bn relu no affine', [4, 3, 7], [3], (be, x, w, b) => batchNorm(x, null, null, w, b, { training: true, activation: 'relu' }), { affine: false, mean: 0.2 });
  // one kernel each way: the forward and the backward (x and affine gradients together) dispatch once each
  const gpu = requireGpu('dispatch count');
  const x = tensor(randn(2 * 4 * 6, 30), { backend: gpu, shape: [2, 4, 6] }).requiresGrad_();
  const w = tensor(randn(4, 31), { backend: gpu, shape: [4] }).requiresGrad_(), b = tensor(randn(4, 32), { backend: gpu, shape: [4] }).requiresGrad_();
  const g = tensor(randn(48, 33), { backend: gpu, shape: [2, 4, 6] });
  const { report } = await profile(async () => {
    const y = batchNorm(x, null, null, w, b, { training: true, activation: 'relu' });
    y.backward(g);
    await x.grad!.data();
  });
  assert.equal(report.byOp.map((r) => r.name).filter((n) => !/fill|copy/.test(n)).sort(), ['norm_backward_affine', 'norm_forward'], JSON.stringify(report.byOp.map((r) => [r.name, r.dispatches])));
  assert.throws(() => batchNorm(x, null, null, w, b, { training: true, activation: 'gelu' as 'relu' }), /unknown activation 'gelu'/);
});

test('norm row mappings (element loads, vec4 rows per workgroup, vec4 row per lane) match the CPU on random shapes, aligned or not, offsets, residuals', async () => {
  const gpu = requireGpu('norm row mappings');
  const r = rng(4242);
  const ri = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const cases: [string, number[], number[], NormFn][] = [];
  for (let i = 0; i < 2; i++) {
    const G = ri(1, 3), cpg = ri(1, 3), N = ri(1, 3), H = ri(1, 9), W = 4 * ri(1, 3);
    const C = G * cpg;
    cases.push([`gn silu [${N},${C},${H},${W}] g${G}`, [N, C, H, W], [C], (_be, x, w, b) => groupNormSilu(x, G, w, b)]);
    // x's gradient also comes from the residual: the kernel adds it (the accumulate path)
    cases.push([`gn + residual [${N},${C},${H},${W}] g${G}`, [N, C, H, W], [C], (_be, x, w, b) => groupNorm(x, G, w, b).add(x)]);
    const D = ri(1, 24), T = ri(2, 40);
    cases.push([`ln [${T},${D}]`, [2, T, D], [D], (_be, x, w, b) => layerNorm(x, [D], w, b)]);
    // a view at an element offset: aligned when D is a multiple of 4
    cases.push([`ln narrowed [${T},${4 * D}]`, [T, 4 * D], [4 * D], (_be, x, w, b) => layerNorm(x.narrow(0, 1, T - 1), [4 * D], w, b)]);
    const Cb = ri(2, 9), Sb = ri(1, 3) * 4;
    cases.push([`bn relu [${N + 1},${Cb},${Sb}]`, [N + 1, Cb, Sb], [Cb], (_be, x, w, b) => batchNorm(x, null, null, w, b, { training: true, activation: 'relu' })]);
  }
  // a tall case: 160 rows of 64 (lane mode under 'auto')
  cases.push(['ln [160,64]', [160, 64], [64], (_be, x, w, b) => layerNorm(x, [64], w, b)]);
  const keys = await withDispatchKeys(gpu, async () => {
    try {
      for (const mapping of ['workgroup', 'lane', 'auto', 'scalar'] as const) {
        setNormRowMapping(mapping);
        for (const [tag, xs, ps, fn] of cases) await crossCheck(`${tag} [${mapping}]`, xs, ps, fn, { mean: 0.2 });
      }
    } finally {
      setNormRowMapping('auto');
    }
  });
  // the vec4 kernels ran (rows per workgroup and per lane, forward and backward, affine gradients)
  for (const k of [':vw', ':vl']) {
    assert.ok(keys.some((key) => key.startsWith('norm_fwd') && key.includes(k)), `a forward ran with ${k}`);
    assert.ok(keys.some((key) => key.startsWith('norm_bwd') && key.includes(k)), `a backward ran with ${k}`);
  }
  assert.ok(keys.some((key) => key.includes('affinev')), 'the affine gradients ran on vec4s');
});

test('auto mapping of long aligned rows: vec4 loads both ways; the forward\'s statistics bit-identical to the element loads\' (y, mean/rstd, running stats), the backward matching the CPU; FOLIAR_NORM_BWD_VEC=0 and FOLIAR_NORM_FWD_EXACT=0 restore element loads', async () => {
  const gpu = requireGpu('norm row mappings of long rows');
  // BatchNorm: 8 channels of 4 x 16 x 20 = 1,280 values in 4 outer steps of 320 (past the lane form's
  // 1,024); GroupNorm: 6 rows of 2 x 8 x 8 = 128 contiguous values; both with a large mean, where any
  // other summation order would round differently
  const cases: [string, number[], number[], NormFn][] = [
    ['bn relu [4,8,16,20]', [4, 8, 16, 20], [8], (_be, x, w, b) => batchNorm(x, null, null, w, b, { training: true, activation: 'relu' })],
    ['gn [2,6,8,8] g3', [2, 6, 8, 8], [6], (_be, x, w, b) => groupNorm(x, 3, w, b)],
  ];
  const forward = async (xs: number[], ps: number[], fn: NormFn): Promise<Float32Array[]> => {
    const n = xs.reduce((a, b) => a * b, 1);
    const x = tensor(randn(n, 11, 40, 1.5), { backend: gpu, shape: xs });
    const w = tensor(randn(ps[0]!, 12, 1, 0.5), { backend: gpu, shape: ps }), b = tensor(randn(ps[0]!, 13), { backend: gpu, shape: ps });
    const out = [await fn(gpu, x, w, b).dataF32()];
    // the running statistics come from the same sums
    const rm = tensor(new Float32Array(ps[0]!), { backend: gpu }), rv = tensor(new Float32Array(ps[0]!).fill(1), { backend: gpu });
    if (xs.length === 4 && ps[0] === xs[1]) {
      await batchNorm(x, rm, rv, w, b, { training: true }).dataF32();
      out.push(await rm.dataF32(), await rv.dataF32());
    }
    return out;
  };
  for (const [tag, xs, ps, fn] of cases) {
    let exact: Float32Array[] = [];
    const keys = await withDispatchKeys(gpu, async () => {
      exact = await forward(xs, ps, fn);
      await crossCheck(`${tag} auto`, xs, ps, fn, { mean: 0.2 });
    });
    setNormRowMapping('scalar');
    let element: Float32Array[];
    try {
      element = await forward(xs, ps, fn);
    } finally {
      setNormRowMapping('auto');
    }
    assert.ok(keys.some((k) => k.startsWith('norm_fwd') && /:vw0?e/.test(k)), `${tag}: the forward read vec4s in the element order: ${keys.filter((k) => k.startsWith('norm')).join(', ')}`);
    if (tag.startsWith('bn')) assert.ok(keys.some((k) => k.startsWith('norm_bwd') && k.includes(':vw')), `${tag}: the backward read vec4 rows`);
    exact.forEach((v, i) => assert.equal([...v], [...element[i]!], `${tag}: output ${i} bit-identical to the element loads'`));
  }
  for (const knob of ['FOLIAR_NORM_BWD_VEC', 'FOLIAR_NORM_FWD_EXACT']) {
    process.env[knob] = '0';
    try {
      const [tag, xs, ps, fn] = cases[0]!;
      const off = await withDispatchKeys(gpu, () => crossCheck(`${tag} ${knob}=0`, xs, ps, fn, { mean: 0.2 }));
      const kind = knob === 'FOLIAR_NORM_BWD_VEC' ? 'norm_bwd' : 'norm_fwd';
      assert.ok(off.some((k) => k.startsWith(kind)) && !off.some((k) => k.startsWith(kind) && k.includes(':v')), `${knob}=0: element loads`);
    } finally {
      delete process.env[knob];
    }
  }
});

test('groupNormSilu: one kernel each way equals silu(groupNorm) on the CPU, and WebGPU matches the CPU at odd sizes', async () => {
  // the fused op against the composition it replaces (CPU reference, forward and every gradient)
  const cpuBe = cpuBackend();
  const cases: [number[], number, boolean][] = [[[3, 6, 5, 3], 3, true], [[2, 4, 7], 2, false], [[2, 8, 1, 1], 4, true]];
  for (const [shape, groups, affine] of cases) {
    const n = shape.reduce((a, b) => a * b, 1);
    const C = shape[1]!;
    const xd = randn(n, 11, 0.3, 1.5), wd = randn(C, 12, 1, 0.5), bd = randn(C, 13), rd = randn(n, 14);
    const grads: Float32Array[][] = [];
    for (const fused of [true, false]) {
      const x = tensor(xd, { backend: cpuBe, shape: [...shape] }).requiresGrad_();
      const w = affine ? tensor(wd, { backend: cpuBe, shape: [C] }).requiresGrad_() : null;
      const b = affine ? tensor(bd, { backend: cpuBe, shape: [C] }).requiresGrad_() : null;
      const y = fused ? groupNormSilu(x, groups, w, b) : groupNorm(x, groups, w, b).silu();
      y.backward(tensor(rd, { backend: cpuBe, shape: y.shape }));
      grads.push([await y.dataF32(), await x.grad!.dataF32(), ...(w ? [await w.grad!.dataF32(), await b!.grad!.dataF32()] : [])]);
    }
    grads[0]!.forEach((v, i) => close(v, grads[1]![i]!, 1e-5, `groupNormSilu ${JSON.stringify(shape)} output ${i} vs composed`));
  }
  await crossCheck('gn silu', [3, 6, 5, 3], [6], (_be, x, w, b) => groupNormSilu(x, 3, w, b));
  await crossCheck('gn silu long', [2, 10, 33, 17], [10], (_be, x, w, b) => groupNormSilu(x, 5, w, b, 1e-6));
  await crossCheck('gn silu no affine', [2, 6, 9], [6], (_be, x, w, b) => groupNormSilu(x, 3, w, b), { affine: false });
});

test.run();
