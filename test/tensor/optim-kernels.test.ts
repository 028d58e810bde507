import { test } from '../harness.js';
import { shared, readGoldenOpsSync, setup, teardown, backends, requireGpu, skip, withDispatchKeys } from '../helpers.js';
import * as assert from 'uvu/assert';
import { cpuBackend, tensor, copy_, type Backend, type Tensor } from '@foliar/tensor';
import { adamStep, adamSteps, sgdStep, sgdSteps, clipGradNorm, sumOfSquares, ParamArena, type AdamStepItem, type SgdStepItem } from '../../packages/tensor/src/ops/optim/index.js';
import type { WebGPUBackend } from '../../packages/tensor/src/backends/webgpu/webgpu-backend.js';
import { narrow } from '../../packages/tensor/src/ops/views.js';
import { prng } from '../prng.js';

// null (with a SKIP notice) without ../shared; an error instead under FOLIAR_REQUIRE_SHARED
const haveGolden = shared('golden/ops', 'golden ops') !== null;
const readGolden = readGoldenOpsSync;

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let scale = 0, err = 0, at = -1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= err)) { err = d; at = i; }
  }
  if (!(err <= tol * Math.max(scale, 1e-6))) {
    assert.unreachable(`${what}: max error ${err} at ${at} (got ${actual[at]}, want ${expected[at]}; scale ${scale}, tol ${tol})`);
  }
}

const rng = prng;
function randn(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
}

const cpu = cpuBackend();
test.before(async () => {
  await setup();
});
test.after(() => teardown());

const adamCases: [string, number, boolean][] = [['adam_2steps', 0, false], ['adam_l2_2steps', 0.1, false], ['adamw_2steps', 0.01, true]];
for (const [name, wd, decoupled] of adamCases) {
  for (const bname of ['cpu', 'webgpu']) {
    test(`golden ${name}: both steps, state after each (${bname})`, async () => {
      if (!haveGolden) skip(`golden ${name}: ../shared not found`, 'shared');
      const be = bname === 'cpu' ? cpu : requireGpu();
      const g = readGolden(name);
      const put = (n: string): Tensor => tensor(g.get(n)!.data, { backend: be, shape: g.get(n)!.shape });
      const p = put('param0');
      const m = tensor(new Float32Array(p.size), { backend: be, shape: p.shape });
      const v = tensor(new Float32Array(p.size), { backend: be, shape: p.shape });
      for (const step of [1, 2]) {
        adamStep(p, put(`grad_step${step}`), m, v, { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd, decoupled, step });
        close(await p.dataF32(), g.get(`param_step${step}`)!.data, 1e-6, `${name} param step ${step}`);
        close(await m.dataF32(), g.get(`exp_avg_step${step}`)!.data, 1e-6, `${name} exp_avg step ${step}`);
        close(await v.dataF32(), g.get(`exp_avg_sq_step${step}`)!.data, 1e-6, `${name} exp_avg_sq step ${step}`);
      }
    });
  }
}

/** torch.optim.SGD in f64, written out independently of the kernels. */
function sgdRef(p: Float64Array, grads: Float32Array[], o: { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean; maximize: boolean }): Float64Array {
  let buf: Float64Array | null = null;
  for (const g0 of grads) {
    const g = Float64Array.from(g0, (x, i) => (o.maximize ? -x : x) + o.weightDecay * p[i]!);
    let d: Float64Array = g;
    if (o.momentum !== 0) {
      buf = buf ? buf.map((b, i) => o.momentum * b + (1 - o.dampening) * g[i]!) : g.slice();
      d = o.nesterov ? g.map((x, i) => x + o.momentum * buf![i]!) : buf;
    }
    for (let i = 0; i < p.length; i++) p[i]! -= o.lr * d[i]!;
  }
  return p;
}

test('sgdStep matches torch.optim.SGD semantics (momentum, dampening, nesterov, weight decay, maximize) on both backends', async () => {
  const n = 1037;
  const p0 = randn(n, 1), grads = [randn(n, 2), randn(n, 3), randn(n, 4)];
  const configs = [
    { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false },
    { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01, nesterov: false, maximize: false },
    { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0.001, nesterov: true, maximize: true },
  ];
  for (const o of configs) {
    const ref = sgdRef(Float64Array.from(p0), grads, o);
    for (const be of [cpu, backends().gpu]) {
      const p = tensor(p0, { backend: be, shape: [n] });
      const buf = tensor(new Float32Array(n), { backend: be, shape: [n] });
      grads.forEach((g, k) => sgdStep(p, tensor(g, { backend: be, shape: [n] }), o.momentum ? buf : null, { ...o, step: k + 1 }));
      close(await p.dataF32(), ref, 1e-5, `sgd ${JSON.stringify(o)} on ${be.name}`);
    }
  }
});

test('sumOfSquares and clipGradNorm match f64 references; scaling happens on the device', async () => {
  const sizes = [100003, 1, 4096, 77];
  const data = sizes.map((s, i) => randn(s, 10 + i));
  let ss = 0;
  for (const d of data) for (const x of d) ss += x * x;
  const total = Math.sqrt(ss);
  for (const be of [cpu, backends().gpu]) {
    const s0 = await sumOfSquares(tensor(data[0]!, { backend: be, shape: [sizes[0]!] })).item();
    let ref0 = 0;
    for (const x of data[0]!) ref0 += x * x;
    assert.ok(Math.abs(s0 - ref0) < 1e-5 * ref0, `sumOfSquares ${s0} vs ${ref0} on ${be.name}`);
    for (const maxNorm of [total / 3, total * 2]) {
      const grads = data.map((d, i) => tensor(d, { backend: be, shape: [sizes[i]!] }));
      const norm = clipGradNorm(grads, maxNorm);
      assert.equal(norm.shape, []);
      const nv = await norm.item();
      assert.ok(Math.abs(nv - total) < 1e-5 * total, `norm ${nv} vs ${total} on ${be.name}`);
      const coef = Math.min(maxNorm / (total + 1e-6), 1);
      for (let i = 0; i < grads.length; i++) close(await grads[i]!.dataF32(), Array.from(data[i]!, (x) => x * coef), 1e-5, `clipped grad ${i} on ${be.name}`);
    }
  }
});

test('adamSteps (multi-tensor, several per dispatch) on WebGPU matches the CPU and per-tensor adamStep', async () => {
  // sizes off the 64-wide workgroups, an empty tensor, more tensors than one dispatch takes, and two
  // parameters that are views (with offsets) of one storage
  // and a set of whole vec4s (sizes and view offsets multiples of 4): the kernels' vec4 form
  const sets: [number[][], [number, number][]][] = [
    [[[1], [63], [65], [3, 5], [0], [1037], [4097], [7, 9, 2], [2], [130], [33]], [[3, 17], [25, 11]]],
    [[[4], [64], [3, 8], [0], [1036], [4096], [2, 2, 4], [128]], [[4, 16], [24, 12]]],
  ];
  const keys = await withDispatchKeys(requireGpu(), async () => {
  for (const [shapes, viewsAt] of sets) {
  const configs = [
    { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true, maximize: false },
    { lr: 0.003, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1, decoupled: false, maximize: true },
  ];
  for (const [ci, o] of configs.entries()) {
    const run = async (be: Backend, perTensor: boolean): Promise<Float32Array[]> => {
      const big = tensor(randn(40, 99), { backend: be, shape: [40] });
      const params = shapes.map((s, i) => tensor(randn(s.reduce((a, b) => a * b, 1), 20 + i), { backend: be, shape: s }));
      params.push(...viewsAt.map(([at, len]) => narrow(big, 0, at, len)));
      const state = params.map((p) => [tensor(new Float32Array(p.size), { backend: be, shape: p.shape }), tensor(new Float32Array(p.size), { backend: be, shape: p.shape })] as const);
      for (let round = 0; round < 3; round++) {
        const items: AdamStepItem[] = params.map((p, i) => ({
          param: p,
          grad: tensor(randn(p.size, 1000 * round + 50 + i), { backend: be, shape: p.shape }),
          expAvg: state[i]![0],
          expAvgSq: state[i]![1],
          // step counts differ per parameter (as after a partial resume)
          step: round + 1 + (i % 3),
        }));
        if (perTensor) for (const it of items) adamStep(it.param, it.grad, it.expAvg, it.expAvgSq, { ...o, step: it.step });
        else adamSteps(items, o);
      }
      const out: Float32Array[] = [];
      for (const [i, p] of params.entries()) out.push(await p.dataF32(), await state[i]![0].dataF32(), await state[i]![1].dataF32());
      out.push(await big.dataF32());
      return out;
    };
    const ref = await run(cpu, true);
    const cpuMulti = await run(cpu, false);
    ref.forEach((r, i) => assert.equal(Array.from(cpuMulti[i]!), Array.from(r), `config ${ci}: CPU multi vs per-tensor, array ${i}`));
    const gpu = await run(requireGpu(), false);
    ref.forEach((r, i) => close(gpu[i]!, r, 1e-6, `config ${ci} (${shapes.length} shapes): WebGPU multi vs CPU, array ${i}`));
  }
  }
  });
  assert.ok(keys.some((k) => k.startsWith('adam_step') && k.endsWith(':v4')), 'the vec4 form ran');
  assert.ok(keys.some((k) => k.startsWith('adam_step') && !k.endsWith(':v4')), 'the element form ran');
});

/**
 * Random parameter shapes off the 64-wide workgroups and the 64-element arena alignment, more of them
 * than one dispatch binds, plus one that cannot be packed (a view sharing its storage) and an empty one.
 */
function arenaShapes(seed: number): number[][] {
  const r = rng(seed);
  const shapes: number[][] = [[1], [0], [63], [65], [3, 5], [129, 3]];
  for (let i = 0; i < 34; i++) shapes.push(r() < 0.5 ? [1 + Math.floor(r() * 300)] : [1 + Math.floor(r() * 19), 1 + Math.floor(r() * 23)]);
  return shapes;
}

type OptimRun = (be: Backend, pack: boolean) => Promise<{ out: Float32Array[]; dispatches: number; packed: number }>;

/** Runs 3 rounds of an optimizer kernel over arenaShapes on one backend, parameters packed or not. */
function optimRun(slots: string[], step: (params: Tensor[], grads: Tensor[], state: Tensor[][], round: number) => void): OptimRun {
  return async (be, pack) => {
    const shapes = arenaShapes(7);
    const params = shapes.map((s, i) => tensor(randn(s.reduce((a, b) => a * b, 1), 300 + i), { backend: be, shape: s }));
    // a parameter that is a view of a larger storage (kept alive by `big`): never packed
    const big = tensor(randn(50, 299), { backend: be, shape: [50] });
    params.push(narrow(big, 0, 5, 37));
    const arena = pack ? new ParamArena(params, slots) : null;
    const state = params.map((p) => slots.map((name) => arena?.state(p, name) ?? tensor(new Float32Array(p.size), { backend: be, shape: p.shape })));
    const gpuStats = (be as Partial<WebGPUBackend>).rt?.stats;
    const d0 = gpuStats?.dispatches ?? 0;
    for (let round = 0; round < 3; round++) {
      const grads = params.map((p, i) => tensor(randn(p.size, 5000 + 100 * round + i), { backend: be, shape: p.shape }));
      step(params, grads, state, round);
      for (const g of grads) g.dispose();
    }
    const dispatches = (gpuStats?.dispatches ?? 0) - d0;
    const out: Float32Array[] = [];
    for (const [i, p] of params.entries()) out.push(await p.dataF32(), ...(await Promise.all(state[i]!.map((t) => t.dataF32()))));
    out.push(await big.dataF32());
    const packed = arena?.size ?? 0;
    for (const t of [...params, ...state.flat(), big]) t.dispose();
    arena?.dispose();
    return { out, dispatches, packed };
  };
}

async function compareOptimRuns(name: string, run: OptimRun, nTensors: number): Promise<void> {
  const cpuPlain = await run(cpu, false);
  const cpuPacked = await run(cpu, true);
  assert.is(cpuPacked.packed, nTensors - 2, `${name}: every parameter but the empty one and the view is packed`);
  cpuPlain.out.forEach((r, i) => assert.equal(Array.from(cpuPacked.out[i]!), Array.from(r), `${name}: CPU packed vs plain, array ${i}`));
  const gpu = requireGpu();
  const gpuPlain = await run(gpu, false);
  const gpuPacked = await run(gpu, true);
  cpuPlain.out.forEach((r, i) => close(gpuPacked.out[i]!, r, 1e-6, `${name}: WebGPU packed vs CPU, array ${i}`));
  gpuPlain.out.forEach((r, i) => close(gpuPacked.out[i]!, r, 1e-7, `${name}: WebGPU packed vs plain, array ${i}`));
  const limit = (gpu as WebGPUBackend).rt.limits.maxStorageBuffersPerShaderStage;
  // packed: one binding for the arena, one per gradient (plus the view and its state when unpacked)
  const perDispatch = Math.min(24, limit - 1);
  assert.ok(gpuPacked.dispatches <= 3 * (Math.ceil(nTensors / perDispatch) + 1), `${name}: ${gpuPacked.dispatches} dispatches for 3 packed steps of ${nTensors} tensors (limit ${limit})`);
  assert.ok(gpuPacked.dispatches < gpuPlain.dispatches, `${name}: packed ${gpuPacked.dispatches} vs plain ${gpuPlain.dispatches} dispatches`);
}

test('adamSteps over parameters packed in a ParamArena: same as unpacked, WebGPU matches the CPU, few dispatches', async () => {
  const configs = [
    { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true, maximize: false },
    { lr: 0.003, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1, decoupled: false, maximize: true },
  ];
  for (const [ci, o] of configs.entries()) {
    const run = optimRun(['exp_avg', 'exp_avg_sq'], (params, grads, state, round) => {
      const items: AdamStepItem[] = params.map((param, i) => ({ param, grad: grads[i]!, expAvg: state[i]![0]!, expAvgSq: state[i]![1]!, step: round + 1 + (i % 3) }));
      adamSteps(items, o);
    });
    await compareOptimRuns(`adam config ${ci}`, run, arenaShapes(7).length + 1);
  }
});

test('sgdSteps (multi-tensor) over packed and unpacked parameters matches the CPU and per-tensor sgdStep', async () => {
  const configs = [
    { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false },
    { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01, nesterov: false, maximize: false },
    { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0.001, nesterov: true, maximize: true },
  ];
  for (const [ci, o] of configs.entries()) {
    const slots = o.momentum ? ['momentum_buffer'] : [];
    const stepOf = (i: number, round: number) => round + 1 - (i % 2 === 1 && round > 0 ? 1 : 0);
    const multi = optimRun(slots, (params, grads, state, round) => {
      const items: SgdStepItem[] = params.map((param, i) => ({ param, grad: grads[i]!, momentumBuf: state[i]![0] ?? null, step: stepOf(i, round) }));
      sgdSteps(items, o);
    });
    await compareOptimRuns(`sgd config ${ci}`, multi, arenaShapes(7).length + 1);
    // per-tensor sgdStep on the CPU gives the same arrays as the multi-tensor kernel
    const single = optimRun(slots, (params, grads, state, round) => {
      params.forEach((param, i) => sgdStep(param, grads[i]!, state[i]![0] ?? null, { ...o, step: stepOf(i, round) }));
    });
    const [a, b] = [await single(cpu, false), await multi(cpu, true)];
    a.out.forEach((r, i) => assert.equal(Array.from(b.out[i]!), Array.from(r), `sgd config ${ci}: CPU per-tensor vs multi packed, array ${i}`));
  }
});

test('sgdSteps on whole vec4s (sizes and offsets multiples of 4) runs the vec4 form and matches the CPU, packed or not', async () => {
  const gpu = requireGpu();
  const o = { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01, nesterov: false, maximize: false };
  const shapes = [[4], [64, 3], [1036], [2, 2, 8], [4096]];
  const keys = await withDispatchKeys(gpu, async () => {
    for (const pack of [false, true]) {
      const outs: Float32Array[][] = [];
      for (const be of [cpu, gpu] as Backend[]) {
        const params = shapes.map((sh, i) => tensor(randn(sh.reduce((a, b) => a * b, 1), 700 + i), { backend: be, shape: sh }));
        const arena = pack ? new ParamArena(params, ['momentum_buffer']) : null;
        const bufs = params.map((p) => arena?.state(p, 'momentum_buffer') ?? tensor(new Float32Array(p.size), { backend: be, shape: p.shape }));
        for (let round = 0; round < 2; round++) {
          const grads = params.map((p, i) => tensor(randn(p.size, 800 + 10 * round + i), { backend: be, shape: p.shape }));
          sgdSteps(params.map((param, i) => ({ param, grad: grads[i]!, momentumBuf: bufs[i]!, step: round + 1 })), o);
        }
        const out: Float32Array[] = [];
        for (const [i, p] of params.entries()) out.push(await p.dataF32(), await bufs[i]!.dataF32());
        outs.push(out);
        arena?.dispose();
      }
      outs[0]!.forEach((r, i) => close(outs[1]![i]!, r, 1e-6, `sgd vec4 (packed ${pack}): WebGPU vs CPU, array ${i}`));
    }
  });
  assert.ok(keys.some((k) => k.startsWith('sgd_step') && k.endsWith(':v4')), 'the vec4 form ran');
});

test('ParamArena: parameters keep their identity, values and tidy status; only sole owners are packed; freed with the last handle', async () => {
  for (const be of [cpu, ...(backends().hasGpu ? [backends().gpu] : [])]) {
    const before = be.memory().liveBuffers;
    const a = tensor(randn(70, 1), { backend: be, shape: [7, 10] });
    const b = tensor(randn(3, 2), { backend: be, shape: [3] });
    const shared = tensor(randn(8, 3), { backend: be, shape: [8] });
    const alias = shared.detach();
    const base = tensor(randn(6, 4), { backend: be, shape: [2, 3] });
    const nonContig = base.transpose(0, 1);
    base.dispose();
    const want = [await a.dataF32(), await b.dataF32(), await shared.dataF32()];
    const arena = new ParamArena([a, b, shared, nonContig], ['m', 'v']);
    assert.ok(arena.has(a) && arena.has(b), `${be.name}: a and b packed`);
    assert.ok(!arena.has(shared) && !arena.has(nonContig), `${be.name}: a shared storage and a non-contiguous view are not packed`);
    assert.is(a.storage, b.storage);
    assert.is(a.offset % ParamArena.align, 0);
    assert.is(b.offset % ParamArena.align, 0);
    assert.equal(a.shape, [7, 10]);
    assert.equal(Array.from(await a.dataF32()), Array.from(want[0]!));
    assert.equal(Array.from(await b.dataF32()), Array.from(want[1]!));
    assert.equal(Array.from(await shared.dataF32()), Array.from(want[2]!));
    const m = arena.state(a, 'm')!, v = arena.state(b, 'v')!;
    assert.equal(m.shape, [7, 10]);
    assert.equal(Array.from(await m.dataF32()), new Array(70).fill(0));
    assert.is(arena.state(a, 'nope'), null);
    assert.is(arena.state(shared, 'm'), null);
    // writing a parameter in place leaves its neighbours and its state alone
    const twos = tensor(new Float32Array(70).fill(2), { backend: be, shape: [7, 10] });
    copy_(a, twos);
    twos.dispose();
    assert.equal(Array.from(await b.dataF32()), Array.from(want[1]!));
    assert.equal(Array.from(await m.dataF32()), new Array(70).fill(0));
    arena.dispose();
    assert.equal(Array.from(await a.dataF32()), new Array(70).fill(2), 'parameters outlive the arena object');
    for (const t of [a, b, m, v, shared, alias, nonContig]) t.dispose();
    assert.is(be.memory().liveBuffers, before, `${be.name}: the arena is freed with its last handle`);
  }
});

test('optimizer kernel argument errors', () => {
  const p = tensor([1, 2, 3], { backend: cpu, shape: [3] });
  const m = tensor([0, 0, 0], { backend: cpu, shape: [3] });
  const wrong = tensor([0, 0], { backend: cpu, shape: [2] });
  assert.throws(() => adamStep(p, wrong, m, m.clone(), { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, decoupled: false, step: 1 }), /adamStep: grad has shape \[2\], the parameter \[3\]/);
  assert.throws(() => adamStep(p, m, m, m, { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, decoupled: false, step: 1 }), /share storage/);
  assert.throws(() => sgdStep(p, m, null, { lr: 1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, step: 1 }), /needs a momentum buffer/);
  assert.throws(() => clipGradNorm([], 1), /no gradients/);
});

test.run();
