import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { WebGPUBackend, tensor, profile, type Tensor, type Backend } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import { strides3 } from '../../packages/tensor/src/ops/concat/index.js';
import { setup, teardown, backends, requireGpu, compareBackends, randArray, numelOf, assertExact } from '../helpers.js';

test.before(async () => {
  await setup();
});
test.after(() => teardown());

/**
 * `cat` of float32 tensors that read as [outer, size, inner] views runs the concat kernel: one
 * dispatch for up to four inputs. Each case is checked element for element against a plain
 * JavaScript concatenation on both backends, then forward and gradient against the CPU. Inner sizes
 * are not multiples of the 4 elements an invocation writes; the cases include slices, an offset view,
 * more inputs than one dispatch binds, an empty input, and layouts the kernel refuses (a transposed
 * input, a short inner dim), which take the per-input copies.
 */
interface Case {
  shapes: number[][];
  dim: number;
  /** How the first input is made: a narrow of a wider tensor, or a transpose of its last two dims. */
  first?: 'narrow' | 'transpose';
}
const cases: Case[] = [
  { shapes: [[2, 5, 3, 7], [2, 3, 3, 7]], dim: 1 },
  { shapes: [[3, 4, 9], [3, 4, 9], [3, 2, 9]], dim: 1 },
  { shapes: [[2, 6, 5, 5], [2, 1, 5, 5], [2, 3, 5, 5], [2, 2, 5, 5], [2, 4, 5, 5], [2, 3, 5, 5]], dim: 1 },
  { shapes: [[4, 33], [2, 33], [1, 33]], dim: 0 },
  { shapes: [[2, 3, 17], [2, 0, 17], [2, 5, 17]], dim: 1 },
  { shapes: [[2, 4, 6, 6], [2, 4, 6, 6]], dim: 1, first: 'narrow' },
  { shapes: [[2, 3, 6, 5], [2, 2, 6, 5]], dim: 1, first: 'transpose' },
  { shapes: [[3, 5, 2], [3, 5, 3]], dim: 2 },
  { shapes: [[2, 2, 4, 20], [2, 2, 4, 20]], dim: 2 },
];

/** The first input's values as a possibly non-contiguous view holding `data` in the case's shape. */
function firstInput(c: Case, data: Float32Array, be: Backend, requiresGrad: boolean): Tensor {
  const s = c.shapes[0]!;
  if (c.first === 'narrow') {
    // a slice of channels 1..1+s[1] of a tensor with two more channels: an offset, a wider image stride
    const wide = [s[0]!, s[1]! + 2, ...s.slice(2)];
    const w = new Float32Array(numelOf(wide)).fill(NaN);
    const per = numelOf(s.slice(2));
    for (let n = 0; n < s[0]!; n++) w.set(data.subarray(n * s[1]! * per, (n + 1) * s[1]! * per), (n * wide[1]! + 1) * per);
    return F.narrow(tensor(w, { shape: wide, backend: be, requiresGrad }), 1, 1, s[1]!);
  }
  if (c.first === 'transpose') {
    const r = s.length;
    const ts = [...s.slice(0, r - 2), s[r - 1]!, s[r - 2]!];
    const t = new Float32Array(data.length);
    const [h, w] = [s[r - 2]!, s[r - 1]!];
    for (let b = 0; b < data.length / (h * w); b++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) t[b * h * w + j * h + i] = data[b * h * w + i * w + j]!;
    return F.transpose(tensor(t, { shape: ts, backend: be, requiresGrad }), r - 2, r - 1);
  }
  return tensor(data, { shape: s, backend: be, requiresGrad });
}

/** cat by hand: out[o, start_k + c, i] = x_k[o, c, i]. */
function expected(shapes: number[][], data: Float32Array[], dim: number): Float32Array {
  const outer = numelOf(shapes[0]!.slice(0, dim)), inner = numelOf(shapes[0]!.slice(dim + 1));
  const total = shapes.reduce((a, s) => a + s[dim]!, 0);
  const out = new Float32Array(outer * total * inner);
  let start = 0;
  shapes.forEach((s, k) => {
    for (let o = 0; o < outer; o++) for (let c = 0; c < s[dim]!; c++) for (let i = 0; i < inner; i++) out[(o * total + start + c) * inner + i] = data[k]![(o * s[dim]! + c) * inner + i]!;
    start += s[dim]!;
  });
  return out;
}

for (const [ci, c] of cases.entries()) {
  test(`cat ${JSON.stringify(c.shapes)} dim ${c.dim}${c.first ? ` (${c.first} first input)` : ''}: exact on both backends, forward and gradient vs CPU`, async () => {
    const data = c.shapes.map((s, k) => randArray(numelOf(s), 300 + 10 * ci + k, -4, 4));
    const want = expected(c.shapes, data, c.dim);
    const { cpu, gpu, hasGpu } = backends();
    for (const be of hasGpu ? [cpu, gpu] : [cpu]) {
      const xs = data.map((d, k) => (k === 0 ? firstInput(c, d, be, false) : tensor(d, { shape: c.shapes[k]!, backend: be })));
      const y = F.cat(xs, c.dim);
      assertExact(await y.data(), want, `cat on ${be.name}`);
      y.dispose();
      for (const x of xs) x.dispose();
    }
    if (c.first) return; // views: the forward above is the check (their gradient is split's narrow)
    const specs = data.map((d, k) => ({ data: d, shape: c.shapes[k]!, requiresGrad: true }));
    await compareBackends((...xs) => F.cat(xs, c.dim), specs, { rtol: 0, atol: 0, msg: `cat ${ci}` });
  });
}

test('strides3: dims before and after the concatenated one merge only where they step as one', () => {
  assert.equal(strides3([2, 3, 4, 5], [60, 20, 5, 1], 1), [60, 20, 1]);
  assert.equal(strides3([2, 3, 4, 5], [90, 20, 5, 1], 1), [90, 20, 1], 'a channel slice of a wider tensor');
  assert.equal(strides3([2, 3, 4, 5], [60, 20, 1, 4], 1), null, 'transposed pixels');
  assert.equal(strides3([2, 1, 3, 4], [12, 99, 4, 1], 2), [12, 4, 1], 'size-1 dims carry no stride');
  assert.equal(strides3([5, 4], [4, 1], 0), [0, 4, 1], 'nothing before the dim');
  assert.equal(strides3([5, 4], [1, 5], 1), [1, 5, 0], 'nothing after the dim');
});

test('cat of three channel blocks is one concat dispatch; int32 and a short inner dim keep the copies (WebGPU)', async () => {
  const gpu = requireGpu('the dispatch count of cat');
  if (!(gpu instanceof WebGPUBackend)) return;
  const mk = (c: number, seed: number) => tensor(randArray(2 * c * 8 * 8, seed), { shape: [2, c, 8, 8], backend: gpu });
  const xs = [mk(4, 1), mk(3, 2), mk(5, 3)];
  const count = async (fn: () => Tensor): Promise<string> => {
    const { report } = await profile(async () => {
      const y = fn();
      await y.data();
      y.dispose();
    }, { gpuTime: false });
    return report.byOp.map((r) => `${r.name} ${r.dispatches}`).join(', ');
  };
  assert.is(await count(() => F.cat(xs, 1)), 'concat 1');
  const ints = [tensor(new Int32Array([1, 2, 3]), { backend: gpu }), tensor(new Int32Array([4]), { backend: gpu })];
  const ic = F.cat(ints, 0);
  assert.equal(Array.from(await ic.data()), [1, 2, 3, 4]);
  assert.is(ic.dtype, 'int32');
  assert.is(await count(() => F.cat([xs[0]!, xs[0]!], 3)), 'copy 2', 'inner dim 1: per-input copies');
  for (const t of [...xs, ...ints, ic]) t.dispose();
});

test.run();
