import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import {
  ELEMENTWISE, ew, tensor, full, where, axpby, addcmul, cast, gelu,
  type ElementwiseName, type ElementwiseDef, type Tensor, type Backend,
} from '@foliar/tensor';
import * as F from '@foliar/tensor';
import { coalesceDims } from '@foliar/tensor/internal';
import {
  setup, teardown, backends, randArray, numelOf, assertClose, assertExact, gradcheck, compareBackends, randTensor, prng,
} from '../helpers.js';

const test = suite('elementwise');
test.before(async () => { await setup(); });
test.after(() => teardown());

/** Shapes that are not multiples of any tile, a size-1 dim, a scalar and empty dims; and whole vec4s (the flat vec4 form). */
const SHAPES: number[][] = [[7], [3, 5, 17], [1, 129, 3], [], [0], [4, 0, 3], [6, 8], [3, 1028]];

/** Input domain per op (so log/sqrt/pow/div stay finite and both backends compute the same thing). */
function domain(op: ElementwiseName, input: number): [number, number] {
  if (['log', 'sqrt', 'rsqrt'].includes(op)) return [0.05, 4];
  if (op === 'reciprocal') return [0.2, 3];
  if (op === 'div' && input === 1) return [0.3, 2];
  if (op === 'pow' && input === 0) return [0.1, 3];
  if (op === 'pow' && input === 1) return [-2, 2];
  if (op === 'pow_scalar' || op === 'rpow_scalar') return [0.1, 2];
  if (op === 'exp') return [-10, 10];
  if (op === 'where' && input === 0) return [-1, 1]; // the mask: rounded to 0/1 below
  return [-4, 4];
}

const PARAMS: Partial<Record<ElementwiseName, number[]>> = {
  fill: [2.5],
  add_scalar: [0.75],
  mul_scalar: [-1.5],
  pow_scalar: [2.5],
  rpow_scalar: [1.7],
  clamp: [-0.5, 0.8],
  axpb: [1.5, -0.25],
  axpby: [0.3, -2],
  clamp_grad: [-0.5, 0.8],
  addcmul: [0.5],
  mse_dinput: [0.25],
};

function inputsFor(op: ElementwiseName, arity: number, shape: number[], be: Backend, seed: number): Tensor[] {
  return Array.from({ length: arity }, (_, k) => {
    const [lo, hi] = domain(op, k);
    const d = randArray(numelOf(shape), seed + 31 * k, lo, hi);
    if (op === 'where' && k === 0) for (let i = 0; i < d.length; i++) d[i] = d[i]! > 0 ? 1 : 0;
    // make comparisons see ties too
    if (['eq', 'ne', 'le', 'ge', 'lt', 'gt', 'maximum', 'minimum'].includes(op) && k === 1) {
      const a = randArray(numelOf(shape), seed, lo, hi);
      for (let i = 0; i < d.length; i += 3) d[i] = a[i]!;
    }
    return tensor(d, { shape, backend: be });
  });
}

test('every row of the elementwise table: WebGPU matches the CPU reference on odd shapes', async () => {
  const { gpu, cpu } = backends();
  for (const [name, def] of Object.entries(ELEMENTWISE)) {
    const op = name as ElementwiseName;
    const params = PARAMS[op] ?? [];
    for (const shape of SHAPES) {
      let c: Tensor, g: Tensor;
      if (def.arity === 0) {
        c = full(shape, params[0]!, { backend: cpu });
        g = full(shape, params[0]!, { backend: gpu });
      } else {
        const ci = inputsFor(op, def.arity, shape, cpu, 5);
        const gi = inputsFor(op, def.arity, shape, gpu, 5);
        c = ew(op, ci, params);
        g = ew(op, gi, params);
        for (const t of [...ci, ...gi]) t.dispose();
      }
      assert.equal(g.shape, shape, `${op} ${JSON.stringify(shape)} shape`);
      await assertClose(g, c, { rtol: 2e-4, msg: `${op} ${JSON.stringify(shape)}` });
      c.dispose();
      g.dispose();
    }
  }
});

test('CPU table rows agree with independent formulas', async () => {
  const x = [-3.1, -1, -0.2, 0, 0.4, 1.3, 2.7];
  const erf = (v: number): number => {
    // Abramowitz-Stegun 7.1.26 is too coarse for 1e-6; integrate exp(-t^2) with Simpson instead
    const n = 2000, h = v / n;
    let s = 0;
    for (let i = 0; i <= n; i++) s += (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
    return ((s * h) / 3) * (2 / Math.sqrt(Math.PI));
  };
  const ref: Partial<Record<ElementwiseName, (a: number) => number>> = {
    gelu: (a) => 0.5 * a * (1 + erf(a / Math.SQRT2)),
    gelu_tanh: (a) => 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a ** 3))),
    quick_gelu: (a) => a / (1 + Math.exp(-1.702 * a)),
    silu: (a) => a / (1 + Math.exp(-a)),
    sigmoid: (a) => 1 / (1 + Math.exp(-a)),
    relu: (a) => Math.max(a, 0),
    tanh: (a) => (Math.exp(2 * a) - 1) / (Math.exp(2 * a) + 1),
  };
  for (const [op, f] of Object.entries(ref)) {
    const row = ELEMENTWISE[op as ElementwiseName];
    for (const v of x) {
      const got = row.cpu(v, 0, 0, []);
      assert.ok(Math.abs(got - f(v)) < 1e-6, `${op}(${v}) = ${got}, expected ${f(v)}`);
    }
  }
  // backward rows (generated from each row's `grad`): g * d/dx forward, checked by central
  // differences of the forward row in f64; params [-2.5, 2.5] for the rows that take them (clamp)
  const pairs = (Object.keys(ELEMENTWISE) as ElementwiseName[])
    .filter((n) => n.endsWith('_grad'))
    .map((n) => [n, n.slice(0, -'_grad'.length) as ElementwiseName] as const);
  assert.equal(pairs.map(([, f]) => f).sort(), ['clamp', 'gelu', 'gelu_tanh', 'quick_gelu', 'relu', 'sigmoid', 'silu', 'tanh']);
  const p = [-2.5, 2.5];
  for (const [gradOp, fwd] of pairs) {
    for (const v of x) {
      if (v === 0) continue;
      const h = 1e-5;
      const num = (ELEMENTWISE[fwd].cpu(v + h, 0, 0, p) - ELEMENTWISE[fwd].cpu(v - h, 0, 0, p)) / (2 * h);
      const got = ELEMENTWISE[gradOp].cpu(1.5, v, 0, p);
      assert.ok(Math.abs(got - 1.5 * num) < 2e-5 * Math.max(1, Math.abs(num)), `${gradOp}(x=${v}) = ${got}, numeric ${1.5 * num}`);
    }
  }
  // rows of fused ops: the MSE loss's term and input gradient, GEGLU's two gradients (d/dgate by differences)
  const row = (n: ElementwiseName) => (ELEMENTWISE[n] as ElementwiseDef).cpu;
  for (const v of x) {
    assert.is(row('sq_diff')(v, 0.5, 0, []), (v - 0.5) ** 2);
    assert.is(row('mse_dinput')(1.5, v, 0.5, [0.25]), 1.5 * 0.25 * (v - 0.5));
    const gelu = (t: number) => 0.5 * t * (1 + erf(t / Math.SQRT2));
    assert.ok(Math.abs(row('geglu_dh')(1.5, 7, v, []) - 1.5 * gelu(v)) < 1e-6, `geglu_dh(${v})`);
    const num = (gelu(v + 1e-5) - gelu(v - 1e-5)) / 2e-5;
    assert.ok(Math.abs(row('geglu_dgate')(1.5, -0.7, v, []) - 1.5 * -0.7 * num) < 2e-5, `geglu_dgate(${v})`);
  }
  // pow of a negative base with an integral exponent is defined (PyTorch)
  assert.is((ELEMENTWISE.pow as ElementwiseDef).cpu(-2, 3, 0, []), -8);
  assert.ok(Number.isNaN((ELEMENTWISE.pow as ElementwiseDef).cpu(-2, 0.5, 0, [])));
});

/**
 * A paired row (ewInto's `pair`) writes a second result `offset` elements past each output element in
 * the same kernel: checked element for element against two separate ewInto calls, on both backends,
 * for the kernel's three forms (a flat contiguous output, a strided one, the rank-3 grid with a long
 * inner dim), and with the binding limit lowered so the flat form falls back to two passes.
 */
test('ewInto with a paired row equals two separate rows, on every kernel form; bad pairs are refused', async () => {
  const { cpu, gpu, hasGpu } = backends();
  const forms: { name: string; shape: number[]; strides: number[]; offset: number; size: number; shift: number }[] = [
    { name: 'flat', shape: [1500], strides: [1], offset: 3, size: 3 + 2 * 1500, shift: 1500 },
    { name: 'strided (two halves of rows)', shape: [5, 7], strides: [14, 1], offset: 0, size: 70, shift: 7 },
    { name: 'rank-3 grid', shape: [2, 3, 600], strides: [3600, 1200, 1], offset: 1, size: 7201, shift: 600 },
  ];
  for (const f of forms) {
    const n = numelOf(f.shape);
    const g = randArray(n, 71, -2, 2), h = randArray(n, 72, -2, 2), gate = randArray(n, 73, -3, 3);
    const results: Float32Array[] = [];
    for (const be of hasGpu ? [cpu, gpu] : [cpu]) {
      const ins = [g, h, gate].map((d) => tensor(d, { shape: f.shape, backend: be }));
      const paired = F.zeros([f.size], { backend: be }), apart = F.zeros([f.size], { backend: be });
      const view = (t: Tensor) => ({ storage: t.storage, shape: f.shape, strides: f.strides, offset: f.offset, dtype: 'float32' as const });
      F.ewInto(view(paired), 'geglu_dh', ins, [], { op: 'geglu_dgate', offset: f.shift });
      F.ewInto(view(apart), 'geglu_dh', ins);
      F.ewInto({ ...view(apart), offset: f.offset + f.shift }, 'geglu_dgate', ins);
      const [pd, ad] = [await paired.data(), await apart.data()];
      assertExact(pd, ad, `${f.name} on ${be.name}`);
      assert.ok(pd.some((v) => v !== 0), `${f.name}: something was written`);
      results.push(pd as Float32Array);
      if (be === gpu && f.name === 'flat') {
        // over the binding limit (4 KiB: 1,024 elements): the flat form's windows cannot hold the pair; two passes instead
        F.setMaxBindingBytes(4096);
        try {
          const low = F.zeros([f.size], { backend: be });
          F.ewInto(view(low), 'geglu_dh', ins, [], { op: 'geglu_dgate', offset: f.shift });
          assertExact(await low.data(), ad, 'flat, binding limit lowered');
          low.dispose();
        } finally {
          F.setMaxBindingBytes(null);
        }
      }
      for (const t of [...ins, paired, apart]) t.dispose();
    }
    if (results.length === 2) await assertClose(results[1]!, results[0]!, { rtol: 2e-4, msg: `${f.name}: WebGPU vs CPU` });
  }
  const t = F.zeros([10], { backend: cpu });
  const x = tensor(randArray(5, 1), { backend: cpu });
  const v = { storage: t.storage, shape: [5], strides: [1], offset: 0, dtype: 'float32' as const };
  assert.throws(() => F.ewInto(v, 'copy', [x], [], { op: 'copy', offset: 6 }), /element 10 of a 10-element storage/);
  assert.throws(() => F.ewInto(v, 'copy', [x], [], { op: 'copy', offset: 0 }), /positive integer offset/);
  assert.throws(() => F.ewInto(v, 'copy', [x], [], { op: 'nope' as ElementwiseName, offset: 5 }), /unknown paired op 'nope'/);
  assert.throws(() => F.ewInto({ ...v, dtype: 'int32' }, 'copy', [x], [], { op: 'copy', offset: 5 }), /writes float32 outputs, got int32/);
  t.dispose();
  x.dispose();
});

test('pow: negative bases, integral exponents and 0^0 agree across backends', async () => {
  const a = new Float32Array([-2, -2, -1.5, 0, 0, 2, -3, 4]);
  const b = new Float32Array([3, 2, 2, 0, 2, 0.5, 0.5, -1]);
  const { gpu, cpu } = backends();
  const want = [-8, 4, 2.25, 1, 0, Math.SQRT2, NaN, 0.25];
  for (const be of [cpu, gpu]) {
    const y = F.pow(tensor(a, { backend: be }), tensor(b, { backend: be }));
    await assertClose(y, want, { rtol: 1e-5, msg: `pow on ${be.name}` });
  }
});

test('broadcasting: size-1 dims and rank-different operands, values and gradients', async () => {
  const cases: [number[], number[]][] = [
    [[3, 5, 17], [17]],
    [[3, 5, 17], [5, 1]],
    [[1, 129, 3], [7, 1, 1]],
    [[3, 1, 17], [1, 5, 1]],
    [[7], []],
    [[2, 0, 3], [1, 3]],
  ];
  const ops: [string, (a: Tensor, b: Tensor) => Tensor][] = [
    ['add', F.add], ['sub', F.sub], ['mul', F.mul], ['div', F.div], ['maximum', F.maximum], ['minimum', F.minimum],
    ['pow', (a, b) => F.pow(F.abs(a), b)], ['axpby', (a, b) => axpby(0.5, a, -2, b)],
  ];
  for (const [sa, sb] of cases) {
    for (const [name, f] of ops) {
      const da = randArray(numelOf(sa), 3, -2, 2), db = randArray(numelOf(sb), 4, 0.5, 2);
      await compareBackends(f, [{ data: da, shape: sa, requiresGrad: true }, { data: db, shape: sb, requiresGrad: true }], {
        rtol: 2e-4, msg: `${name} ${JSON.stringify(sa)} ⊕ ${JSON.stringify(sb)}`,
      });
    }
  }
  // hand-checked broadcast value and reduced gradient shape
  const { cpu } = backends();
  const a = tensor([[1], [2]], { backend: cpu, requiresGrad: true });
  const b = tensor([10, 20, 30], { backend: cpu, requiresGrad: true });
  const y = F.mul(a, b);
  assert.equal(await y.array(), [[10, 20, 30], [20, 40, 60]]);
  F.sum(y).backward();
  assert.equal(await a.grad!.array(), [[60], [60]]);
  assert.equal(await b.grad!.array(), [3, 3, 3]);
});

test('flat contiguous rows: the vec4 form (offsets and count multiples of 4) and the element form (anything else) agree with the CPU, int32 and outputs at offsets included', async () => {
  const { cpu, gpu } = backends();
  const rng = prng(31);
  // the vec4 form runs 4 vec4s per invocation: counts of 4, 8 and 12 past a multiple of 16 end mid-invocation
  for (const [n, off] of [[4096, 0], [4096, 4], [4096, 1], [4100, 8], [4104, 4], [4108, 12], [4101, 0], [8, 4], [12, 0]] as const) {
    const base = Array.from({ length: n + off + 3 }, () => rng() * 4 - 2);
    const other = Array.from({ length: n + off + 3 }, () => rng() * 4 - 2);
    const res: number[][] = [];
    for (const be of [cpu, gpu]) {
      const a = F.narrow(tensor(base, { backend: be }), 0, off, n);
      const b = F.narrow(tensor(other, { backend: be }), 0, off, n);
      // an output view at the same offset: out-of-place ops write a fresh tensor, in-place ones the view
      const dst = tensor(new Array(n + off + 3).fill(7), { backend: be });
      F.copy_(F.narrow(dst, 0, off, n), F.mul(F.add(a, b), F.relu(a)));
      res.push([...(await dst.dataF32())]);
      const ai = cast(F.mul(a, 100), 'int32');
      res.push([...(await cast(F.add(ai, ai), 'float32').dataF32())]);
    }
    assert.equal(res[2], res[0], `vec4/element form (n ${n}, offset ${off}): float32 with an output view (the elements around it untouched)`);
    assert.equal(res[3], res[1], `n ${n}, offset ${off}: int32`);
  }
});

test('strided rows whose last dim is whole vec4s (narrowed columns, GEGLU halves) take the vec4 form and match the CPU; misaligned ones the element form', async () => {
  const { cpu, gpu } = backends();
  const rng = prng(37);
  for (const [rows, width, off, len] of [[5, 24, 4, 16], [3, 40, 8, 8], [7, 20, 1, 16], [4, 22, 2, 12], [2, 1032, 4, 1024]] as const) {
    const base = Array.from({ length: rows * width }, () => rng() * 4 - 2);
    const other = Array.from({ length: rows * width }, () => rng() * 4 - 2);
    const res: number[][] = [];
    for (const be of [cpu, gpu]) {
      const a = F.narrow(tensor(base, { backend: be, shape: [rows, width] }), 1, off, len);
      const b = F.narrow(tensor(other, { backend: be, shape: [rows, width] }), 1, off, len);
      res.push([...(await F.mul(F.sigmoid(a), F.sub(b, a)).dataF32())]);
    }
    await assertClose(tensor(res[1]!), res[0]!, { rtol: 1e-6, msg: `[${rows}, ${width}] columns ${off}..${off + len}` });
  }
  // GEGLU: both halves strided by 2C; its backward's paired row stores the gate half C elements on
  for (const C of [8, 12, 6]) {
    await compareBackends((x: Tensor) => F.geglu(x), [{ data: randArray(3 * 5 * 2 * C, 40 + C), shape: [3, 5, 2 * C], requiresGrad: true }], { rtol: 2e-4, msg: `geglu C=${C}` });
  }
});

test('strided views as inputs (permuted, narrowed, expanded): values and gradients match', async () => {
  const shape = [3, 5, 17];
  const pa = randArray(numelOf(shape), 8), pb = randArray(3 * 5 * 20, 9, 0.5, 2), pc = randArray(5, 10);
  const fn = (A: Tensor, B: Tensor, C: Tensor): Tensor => {
    const a = F.permute(A, [2, 1, 0]); // [17,5,3] -> [3,5,17]
    const b = F.narrow(B, 2, 2, 17); // [3,5,20] -> [3,5,17]
    const c = F.expand(C, [3, 5, 17]); // [5,1] -> [3,5,17]
    return F.add(F.div(F.mul(a, F.sigmoid(b)), b), F.exp(F.mul(c, a)));
  };
  await compareBackends(fn, [
    { data: pa, shape: [17, 5, 3], requiresGrad: true },
    { data: pb, shape: [3, 5, 20], requiresGrad: true },
    { data: pc, shape: [5, 1], requiresGrad: true },
  ], { rtol: 2e-4, msg: 'strided views' });
  // unary ops on a permuted view read the right elements
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const base = tensor([[1, 2, 3], [4, 5, 6]], { backend: be });
    const t = F.neg(F.transpose(base, 0, 1));
    assert.equal(await t.array(), [[-1, -4], [-2, -5], [-3, -6]], `transpose then neg on ${be.name}`);
    const n = F.exp(F.narrow(base, 1, 1, 2));
    await assertClose(n, [2, 3, 5, 6].map(Math.exp), { msg: `narrow then exp on ${be.name}` });
  }
});

test('strided kernels, randomized: merged dims, carries across several dims per invocation, broadcasts, slices and strided outputs match the CPU exactly', async () => {
  const { cpu, gpu } = backends();
  const rand = prng(77);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  // coalescing: a bias over [N, C, H, W] is [N·C, H·W]; a contiguous slice of rows is flat
  assert.equal(coalesceDims([8, 32, 16, 16], [[8192, 256, 16, 1], [32, 1, 0, 0]]), { shape: [256, 256], strides: [[256, 1], [1, 0]] });
  assert.equal(coalesceDims([4, 1, 6], [[6, 6, 1], [6, 99, 1]]), { shape: [24], strides: [[1], [1]] });
  assert.equal(coalesceDims([1, 1], [[5, 1]]), { shape: [1], strides: [[1]] });
  for (let trial = 0; trial < 40; trial++) {
    const rank = 1 + Math.floor(rand() * 5);
    // small trailing dims make an invocation's 4 elements cross one or more dim boundaries
    const shape = Array.from({ length: rank }, () => pick([1, 2, 3, 5, 7]));
    const n = numelOf(shape);
    const perm = [...shape.keys()].sort(() => rand() - 0.5);
    const outer = perm.map((d) => shape[d]!);
    const da = randArray(n, 1000 + trial), db = randArray(n + 3, 2000 + trial), dc = randArray(shape[rank - 1]!, 3000 + trial);
    const results: number[][] = [];
    for (const be of [cpu, gpu]) {
      const a = F.permute(tensor(da, { shape: outer, backend: be }), perm.map((_, i) => perm.indexOf(i))); // a permuted view of `shape`
      const b = F.reshape(F.narrow(tensor(db, { shape: [n + 3], backend: be }), 0, 3, n), shape); // offset 3
      const c = tensor(dc, { shape: [shape[rank - 1]!], backend: be }); // broadcast over all leading dims
      const y = F.add(F.mul(a, b), c);
      // a strided output: copy into a transposed destination
      const dst = F.zeros([...shape].reverse(), { backend: be });
      F.copy_(F.permute(dst, [...shape.keys()].reverse()), y);
      results.push([...(await y.data()), ...(await dst.data())]);
      [a, b, c, y, dst].forEach((t) => t.dispose());
    }
    assert.equal(results[1], results[0], `trial ${trial}: shape ${JSON.stringify(shape)} perm ${JSON.stringify(perm)}`);
  }
});

test('strided kernels on the 3-D grid (rank <= 3 after merging, inner dim >= 512): permutes, broadcasts, offsets, tails, randomized vs CPU exactly', async () => {
  const { cpu, gpu } = backends();
  const rand = prng(78);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  for (let trial = 0; trial < 16; trial++) {
    // inner dims 512..1500 (tails of 1-3 elements past a multiple of 4), outer dims small and odd
    const inner = 512 + Math.floor(rand() * 989);
    const shape = [pick([1, 2, 3, 5]), pick([2, 3, 7]), inner].slice(trial % 2);
    const rank = shape.length, n = numelOf(shape);
    const da = randArray(n, 4000 + trial), db = randArray(n + 5, 5000 + trial), dc = randArray(inner, 6000 + trial);
    const results: number[][] = [];
    for (const be of [cpu, gpu]) {
      // a: stored with the two outer dims swapped (a permuted view), b: at offset 5, c: broadcast row
      const swap = rank === 3 ? [1, 0, 2] : [0, 1];
      const stored = swap.map((d) => shape[d]!);
      const a = F.permute(tensor(da, { shape: stored, backend: be }), swap);
      const b = F.reshape(F.narrow(tensor(db, { shape: [n + 5], backend: be }), 0, 5, n), shape);
      const c = tensor(dc, { shape: [inner], backend: be });
      const y = F.add(F.mul(a, b), c);
      // the inner dim strided on the output side: copy into [inner, ...] transposed
      const dst = F.zeros([shape[rank - 2]!, ...(rank === 3 ? [shape[0]!] : []), inner], { backend: be });
      F.copy_(rank === 3 ? F.permute(dst, [1, 0, 2]) : dst, y);
      results.push([...(await y.data()), ...(await dst.data())]);
      [a, b, c, y, dst].forEach((t) => t.dispose());
    }
    assert.equal(results[1], results[0], `trial ${trial}: shape ${JSON.stringify(shape)}`);
  }
});

test('empty dims: ops return empty tensors of the broadcast shape, gradients too', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const a = tensor(new Float32Array(0), { shape: [2, 0, 3], backend: be, requiresGrad: true });
    const b = tensor([1, 2, 3], { backend: be, requiresGrad: true });
    const y = F.mul(F.exp(a), b);
    assert.equal(y.shape, [2, 0, 3]);
    assert.is((await y.data()).length, 0);
    F.sum(y).backward();
    assert.equal(a.grad!.shape, [2, 0, 3]);
    assert.equal(Array.from(await b.grad!.data()), [0, 0, 0], `grad of the broadcast operand on ${be.name}`);
  }
});

/** Every differentiable op of ops/elementwise/index.ts, with inputs kept off kinks and out of bad domains. */
const UNARY: [string, (x: Tensor) => Tensor, [number, number]][] = [
  ['neg', F.neg, [-2, 2]], ['exp', F.exp, [-2, 2]], ['log', F.log, [0.3, 3]], ['sqrt', F.sqrt, [0.3, 3]],
  ['rsqrt', F.rsqrt, [0.3, 3]], ['abs', F.abs, [-2, 2]], ['sin', F.sin, [-3, 3]], ['cos', F.cos, [-3, 3]],
  ['tanh', F.tanh, [-2, 2]], ['sigmoid', F.sigmoid, [-4, 4]], ['relu', F.relu, [-2, 2]], ['silu', F.silu, [-4, 4]],
  ['gelu', (x) => gelu(x), [-3, 3]], ['gelu tanh', (x) => gelu(x, 'tanh'), [-3, 3]], ['quickGelu', F.quickGelu, [-3, 3]],
  ['square', F.square, [-2, 2]], ['clamp', (x) => F.clamp(x, -0.5, 0.7), [-2, 2]], ['clamp(min)', (x) => F.clamp(x, 0.1), [-2, 2]],
  ['pow scalar', (x) => F.pow(x, 3), [-2, 2]], ['pow scalar frac', (x) => F.pow(x, 1.5), [0.3, 2]],
  ['add scalar', (x) => F.add(x, 2), [-2, 2]], ['sub scalar', (x) => F.sub(x, 2), [-2, 2]],
  ['mul scalar', (x) => F.mul(x, -3), [-2, 2]], ['div scalar', (x) => F.div(x, 4), [-2, 2]],
  ['maximum scalar', (x) => F.maximum(x, 0.2), [-2, 2]], ['minimum scalar', (x) => F.minimum(x, 0.2), [-2, 2]],
];

/** Values in [lo, hi) at least `gap` away from the kinks 0, 0.1, 0.2, -0.5 and 0.7. */
function awayFromKinks(n: number, seed: number, lo: number, hi: number, gap = 0.02): Float32Array {
  const r = prng(seed);
  const kinks = [0, 0.1, 0.2, -0.5, 0.7];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v: number;
    do v = lo + (hi - lo) * r();
    while (kinks.some((k) => Math.abs(v - k) < gap));
    out[i] = v;
  }
  return out;
}

test('gradcheck: every differentiable unary op (CPU, central differences)', async () => {
  const { cpu } = backends();
  for (const [name, f, [lo, hi]] of UNARY) {
    const x = tensor(awayFromKinks(12, 21, lo, hi), { shape: [3, 4], backend: cpu, requiresGrad: true });
    await gradcheck(f, [x], { msg: name });
  }
});

test('gradcheck: binary and ternary ops with broadcasting (CPU)', async () => {
  const { cpu } = backends();
  const mk = (shape: number[], seed: number, lo: number, hi: number) =>
    tensor(awayFromKinks(numelOf(shape), seed, lo, hi), { shape, backend: cpu, requiresGrad: true });
  const binary: [string, (a: Tensor, b: Tensor) => Tensor, [number, number], [number, number]][] = [
    ['add', F.add, [-2, 2], [-2, 2]], ['sub', F.sub, [-2, 2], [-2, 2]], ['mul', F.mul, [-2, 2], [-2, 2]],
    ['div', F.div, [-2, 2], [0.5, 2]], ['pow', F.pow, [0.5, 2], [-1.5, 1.5]],
    ['maximum', F.maximum, [-2, 2], [-2, 2]], ['minimum', F.minimum, [-2, 2], [-2, 2]],
    ['axpby', (a, b) => axpby(1.5, a, -0.5, b), [-2, 2], [-2, 2]],
  ];
  for (const [name, f, ra, rb] of binary) {
    await gradcheck(f, [mk([2, 3, 4], 1, ...ra), mk([3, 1], 2, ...rb)], { msg: `${name} broadcast` });
    await gradcheck(f, [mk([4], 3, ...ra), mk([2, 4], 4, ...rb)], { msg: `${name} rank-different` });
  }
  const cond = tensor([1, 0, 0, 1, 1, 0], { shape: [2, 3], backend: cpu });
  await gradcheck((a, b) => where(cond, a, b), [mk([2, 3], 5, -1, 1), mk([3], 6, -1, 1)], { msg: 'where' });
  await gradcheck((a) => where(cond, a, 0.5), [mk([2, 3], 7, -1, 1)], { msg: 'where with a scalar' });
});

test('WebGPU gradients agree with CPU for every differentiable op', async () => {
  for (const [name, f, [lo, hi]] of UNARY) {
    await compareBackends(f, [{ data: awayFromKinks(3 * 5 * 17, 33, lo, hi), shape: [3, 5, 17], requiresGrad: true }], {
      rtol: 2e-4, gradRtol: 5e-4, msg: name,
    });
  }
  const cond = new Float32Array(3 * 5 * 17).map((_, i) => (i % 3 === 0 ? 1 : 0));
  await compareBackends((c, a, b) => where(c, a, b), [
    { data: cond, shape: [3, 5, 17] },
    { data: randArray(5 * 17, 1), shape: [5, 17], requiresGrad: true },
    { data: randArray(3 * 5, 2), shape: [3, 5, 1], requiresGrad: true },
  ], { msg: 'where' });
});

test('comparisons return float masks with no gradient; ties in maximum/minimum split the gradient', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const a = tensor([1, 2, 3, 4], { backend: be, requiresGrad: true });
    const b = tensor([4, 2, 1, 4], { backend: be });
    assert.equal(Array.from(await F.lt(a, b).data()), [1, 0, 0, 0]);
    assert.equal(Array.from(await F.le(a, b).data()), [1, 1, 0, 1]);
    assert.equal(Array.from(await F.gt(a, b).data()), [0, 0, 1, 0]);
    assert.equal(Array.from(await F.ge(a, b).data()), [0, 1, 1, 1]);
    assert.equal(Array.from(await F.eq(a, b).data()), [0, 1, 0, 1]);
    assert.equal(Array.from(await F.ne(a, 2).data()), [1, 0, 1, 1]);
    assert.is(F.lt(a, b).requiresGrad, false, 'a comparison has no gradient');
    const m = F.maximum(a, b);
    F.sum(m).backward();
    assert.equal(Array.from(await a.grad!.data()), [0, 0.5, 1, 0.5], `maximum tie gradient on ${be.name}`);
  }
});

test('addcmul, cast, clamp and dtype handling', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const a = tensor([1, 2, 3], { backend: be }), b = tensor([2, 2, 2], { backend: be }), c = tensor([[1], [-1]], { backend: be });
    assert.equal(await addcmul(a, b, c, 0.5).array(), [[2, 3, 4], [0, 1, 2]]);
    const i = cast(tensor([1.7, -1.7, 2.2], { backend: be }), 'int32');
    assert.is(i.dtype, 'int32');
    assert.equal(Array.from(await i.data()), [1, -1, 2], `float->int truncates toward zero on ${be.name}`);
    const f = cast(i, 'float32');
    assert.ok((await f.data()) instanceof Float32Array);
    assert.equal(Array.from(await F.clamp(tensor([-5, 0.5, 5], { backend: be }), -1, 1).data()), [-1, 0.5, 1]);
    assert.equal(Array.from(await F.clamp(tensor([-5, 0.5, 5], { backend: be }), undefined, 1).data()), [-5, 0.5, 1]);
  }
});

test('large and special values: exp overflow, log(0), tanh/sigmoid saturation agree', async () => {
  const x = new Float32Array([-200, -100, -30, 0, 30, 100, 200]);
  const fns: [string, (t: Tensor) => Tensor][] = [
    ['exp', F.exp], ['tanh', F.tanh], ['sigmoid', F.sigmoid], ['silu', F.silu], ['gelu', (t) => gelu(t)],
    ['gelu tanh', (t) => gelu(t, 'tanh')], ['log(abs)', (t) => F.log(F.abs(t))],
  ];
  for (const [name, f] of fns) await compareBackends(f, [{ data: x, shape: [7] }], { msg: name });
  const { cpu } = backends();
  assert.equal(Array.from(await F.tanh(tensor(x, { backend: cpu })).data()), [-1, -1, -1, 0, 1, 1, 1]);
  assert.is((await F.log(tensor([0], { backend: cpu })).data())[0], -Infinity);
  void randTensor;
});

/** Uniform data with NaN, +Inf and -Inf at the first three positions and at random others (about 1 in 5). */
function withSpecials(n: number, seed: number, lo = -3, hi = 3): Float32Array {
  const r = prng(seed);
  const out = randArray(n, seed + 1, lo, hi);
  const specials = [NaN, Infinity, -Infinity];
  for (let i = 0; i < n; i++) if (i < 3 || r() < 0.2) out[i] = specials[i < 3 ? i : Math.floor(r() * 3)]!;
  return out;
}

const f32 = Math.fround;
/** PyTorch semantics: NaN in, NaN out; infinities compare as numbers. */
const NAN_OPS: [string, (a: Tensor, b: Tensor) => Tensor, (a: number, b: number) => number][] = [
  ['relu', (a) => F.relu(a), (a) => (Number.isNaN(a) ? NaN : Math.max(a, 0))],
  ['clamp(-0.5, 0.8)', (a) => F.clamp(a, -0.5, 0.8), (a) => (Number.isNaN(a) ? NaN : Math.min(Math.max(a, -0.5), f32(0.8)))],
  ['clamp(min 0.1)', (a) => F.clamp(a, 0.1), (a) => (Number.isNaN(a) ? NaN : Math.max(a, f32(0.1)))],
  ['clamp(max 0.1)', (a) => F.clamp(a, undefined, 0.1), (a) => (Number.isNaN(a) ? NaN : Math.min(a, f32(0.1)))],
  ['maximum', (a, b) => F.maximum(a, b), (a, b) => Math.max(a, b)],
  ['minimum', (a, b) => F.minimum(a, b), (a, b) => Math.min(a, b)],
  ['maximum scalar', (a) => F.maximum(a, 0.25), (a) => Math.max(a, 0.25)],
  ['minimum scalar', (a) => F.minimum(a, 0.25), (a) => Math.min(a, 0.25)],
  // comparisons: false with NaN, except ne (NaN != NaN, also NaN != itself)
  ['eq', (a, b) => F.eq(a, b), (a, b) => (a === b ? 1 : 0)],
  ['ne', (a, b) => F.ne(a, b), (a, b) => (a !== b ? 1 : 0)],
  ['lt', (a, b) => F.lt(a, b), (a, b) => (a < b ? 1 : 0)],
  ['le', (a, b) => F.le(a, b), (a, b) => (a <= b ? 1 : 0)],
  ['gt', (a, b) => F.gt(a, b), (a, b) => (a > b ? 1 : 0)],
  ['ge', (a, b) => F.ge(a, b), (a, b) => (a >= b ? 1 : 0)],
  ['eq self', (a) => F.eq(a, a), (a) => (a === a ? 1 : 0)],
  ['ne self', (a) => F.ne(a, a), (a) => (a !== a ? 1 : 0)],
  // a float condition is true where it is not 0, NaN included (PyTorch's bool(NaN))
  ['where(a, b, 0.5)', (a, b) => F.where(a, b, 0.5), (a, b) => (a !== 0 ? b : 0.5)],
];

test('NaN and ±Inf as in PyTorch: relu, clamp, maximum, minimum propagate NaN; eq/ne/lt/le/gt/ge (NaN != NaN); where with a NaN condition (randomized, both backends)', async () => {
  const { cpu, gpu } = backends();
  // flat, broadcast (strided kernel) and NaN in both operands
  const cases: [number[], number[]][] = [[[7], [7]], [[3, 5, 17], [5, 1]], [[1, 129, 3], [129, 3]]];
  for (const [sa, sb] of cases) {
    const da = withSpecials(numelOf(sa), 3 + sa.length), db = withSpecials(numelOf(sb), 17 + sb.length);
    const out = broadcastIndex(sa, sb);
    for (const [name, fn, ref] of NAN_OPS) {
      const want = Float32Array.from(out.map(([i, j]) => ref(da[i]!, db[j]!)));
      const msg = `${name} ${JSON.stringify(sa)} ⊕ ${JSON.stringify(sb)}`;
      const results: Record<string, ArrayLike<number>> = {};
      for (const be of [cpu, gpu]) {
        const y = fn(tensor(da, { shape: sa, backend: be }), tensor(db, { shape: sb, backend: be }));
        results[be.name] = await y.data();
        assertExact(results[be.name]!, want, `${msg} on ${be.name} vs PyTorch semantics`);
      }
      await assertClose(results[gpu.name]!, results[cpu.name]!, { msg: `${msg}: WebGPU vs CPU` });
    }
  }
});

/** For each element of broadcast(sa, sb) (row-major), the flat indices it reads from a and b. */
function broadcastIndex(sa: number[], sb: number[]): [number, number][] {
  const rank = Math.max(sa.length, sb.length);
  const pa = [...new Array(rank - sa.length).fill(1), ...sa], pb = [...new Array(rank - sb.length).fill(1), ...sb];
  const shape = pa.map((d, i) => Math.max(d, pb[i]!));
  const out: [number, number][] = [];
  const n = numelOf(shape);
  for (let k = 0; k < n; k++) {
    let rem = k, ia = 0, ib = 0, ma = 1, mb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const q = rem % shape[d]!;
      rem = Math.floor(rem / shape[d]!);
      ia += (pa[d] === 1 ? 0 : q) * ma;
      ib += (pb[d] === 1 ? 0 : q) * mb;
      ma *= pa[d]!;
      mb *= pb[d]!;
    }
    out.push([ia, ib]);
  }
  return out;
}

test('geglu: equals chunk · gelu(gate) with its gradient, on both backends, odd widths and a strided input', async () => {
  const { cpu } = backends();
  const composed = (x: Tensor): Tensor => {
    const [h, gate] = x.chunk(2, -1) as [Tensor, Tensor];
    return F.mul(h, gelu(gate));
  };
  for (const shape of [[2, 7, 10], [3, 2], [5, 66]]) {
    const n = numelOf(shape);
    await gradcheck((x) => F.geglu(x), [tensor(randArray(n, 41, -2, 2), { shape, backend: cpu, requiresGrad: true })], { msg: `geglu ${JSON.stringify(shape)}` });
    await compareBackends((x) => F.geglu(x), [{ data: randArray(n, 42, -3, 3), shape, requiresGrad: true }], { rtol: 2e-4, gradRtol: 5e-4, msg: `geglu ${JSON.stringify(shape)}` });
    // the fused op against the composition it replaces, forward and gradient (CPU)
    const data = randArray(n, 43, -3, 3);
    const a = tensor(data, { shape, backend: cpu, requiresGrad: true }), b = tensor(data, { shape, backend: cpu, requiresGrad: true });
    const ya = F.geglu(a), yb = composed(b);
    await assertClose(ya, yb, { rtol: 1e-5, msg: `geglu forward ${JSON.stringify(shape)}` });
    F.sum(F.mul(ya, ya)).backward();
    F.sum(F.mul(yb, yb)).backward();
    await assertClose(a.grad!, b.grad!, { rtol: 1e-5, msg: `geglu gradient ${JSON.stringify(shape)}` });
  }
  // a transposed (non-contiguous) input: the halves are read through its strides
  await compareBackends((x) => F.geglu(F.transpose(x, 0, 1)), [{ data: randArray(8 * 3, 44), shape: [8, 3], requiresGrad: true }], { msg: 'geglu strided' });
  assert.throws(() => F.geglu(tensor([1, 2, 3], { backend: cpu })), /even/);
});

test.run();
