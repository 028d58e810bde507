import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { tensor, Generator, type Tensor, type Backend } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import {
  setup, teardown, backends, requireGpu, randArray, randIntArray, numelOf, assertClose, gradcheck, compareBackends, readGolden, assertThrowsWith, prng,
} from '../helpers.js';

const test = suite('nn-ops');
test.before(async () => { await setup(); });
test.after(() => teardown());

const both = (): Backend[] => [backends().cpu, backends().gpu];

/** f64 softmax along `dim` of a host array. */
function refSoftmax(x: ArrayLike<number>, shape: number[], dim: number, log: boolean): number[] {
  const d = dim < 0 ? dim + shape.length : dim;
  const inner = numelOf(shape.slice(d + 1)), size = shape[d]!, outer = numelOf(shape.slice(0, d));
  const out = new Array<number>(x.length);
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) {
    const at = (r: number) => (o * size + r) * inner + i;
    let m = -Infinity;
    for (let r = 0; r < size; r++) m = Math.max(m, x[at(r)]!);
    let s = 0;
    for (let r = 0; r < size; r++) s += Math.exp(x[at(r)]! - m);
    for (let r = 0; r < size; r++) out[at(r)] = log ? x[at(r)]! - m - Math.log(s) : Math.exp(x[at(r)]! - m) / s;
  }
  return out;
}

test('softmax / logSoftmax on any dim, with large logits, match an f64 reference', async () => {
  const shape = [3, 5, 17];
  const x = randArray(numelOf(shape), 1, -3, 3);
  const big = x.map((v, i) => v * 300 + (i % 2 ? 1e4 : -1e4)); // |logits| up to 1e4: naive exp overflows
  for (const data of [x, big]) {
    for (const dim of [0, 1, 2, -1]) {
      for (const log of [false, true]) {
        const want = refSoftmax(data, shape, dim, log);
        for (const be of both()) {
          const t = tensor(data, { shape, backend: be });
          const y = log ? F.logSoftmax(t, dim) : F.softmax(t, dim);
          await assertClose(y, want, { rtol: 1e-5, atol: log ? 2e-3 : 1e-6, msg: `${log ? 'logSoftmax' : 'softmax'} dim ${dim} on ${be.name}` });
        }
      }
    }
  }
  // softmax rows sum to one, even for a permuted input
  for (const be of both()) {
    const t = F.permute(tensor(x, { shape: [17, 5, 3], backend: be }), [2, 1, 0]);
    await assertClose(F.sum(F.softmax(t, 1), 1), new Array(3 * 17).fill(1), { rtol: 0, atol: 1e-6 });
  }
});

test('gradcheck softmax / logSoftmax (CPU) and WebGPU gradient agreement', async () => {
  const { cpu } = backends();
  for (const dim of [0, 1, -1]) {
    for (const f of [F.softmax, F.logSoftmax]) {
      await gradcheck((t) => f(t, dim), [tensor(randArray(24, 2, -2, 2), { shape: [2, 3, 4], backend: cpu, requiresGrad: true })], { msg: `${f.name} dim ${dim}` });
      await compareBackends((t) => f(t, dim), [{ data: randArray(3 * 5 * 17, 3, -5, 5), shape: [3, 5, 17], requiresGrad: true }], { rtol: 2e-4, gradRtol: 5e-4, msg: `${f.name} dim ${dim}` });
    }
  }
});

/** Runs a golden case: inputs -> out, out.backward(R) -> grads, on both backends. */
async function golden(
  file: string,
  fn: (g: Record<string, Tensor>) => Tensor,
  gradNames: string[],
  tol = 1e-4,
): Promise<void> {
  const g = await readGolden(`ops/${file}.safetensors`, `golden ${file}`);
  for (const be of both()) {
    const ins: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(g)) {
      ins[k] = tensor(v.data, { shape: v.shape, backend: be, requiresGrad: v.data instanceof Float32Array && gradNames.includes(`grad_${k}`) });
    }
    const out = fn(ins);
    await assertClose(out, g.out!.data, { rtol: tol, msg: `${file} out on ${be.name}` });
    out.backward(tensor(g.R!.data, { shape: g.R!.shape, backend: be }));
    for (const gn of gradNames) {
      const t = ins[gn.slice(5)]!;
      await assertClose(t.grad!, g[gn]!.data, { rtol: tol, msg: `${file} ${gn} on ${be.name}` });
    }
  }
}

test('golden: softmax, log_softmax, activations', async () => {
  await golden('softmax_lastdim', (g) => F.softmax(g.x!, -1), ['grad_x']);
  await golden('log_softmax_lastdim', (g) => F.logSoftmax(g.x!, -1), ['grad_x']);
  await golden('relu', (g) => F.relu(g.x!), ['grad_x']);
  await golden('sigmoid', (g) => F.sigmoid(g.x!), ['grad_x']);
  await golden('tanh', (g) => F.tanh(g.x!), ['grad_x']);
  await golden('silu', (g) => F.silu(g.x!), ['grad_x']);
  await golden('gelu_erf', (g) => F.gelu(g.x!), ['grad_x']);
  await golden('gelu_tanh', (g) => F.gelu(g.x!, 'tanh'), ['grad_x']);
  await golden('quick_gelu', (g) => F.quickGelu(g.x!), ['grad_x']);
});

test('golden: cross_entropy (plain, label smoothing), mse_loss, embedding with repeated ids', async () => {
  await golden('cross_entropy', (g) => F.crossEntropy(g.logits!, g.target!), ['grad_logits']);
  await golden('cross_entropy_label_smoothing', (g) => F.crossEntropy(g.logits!, g.target!, { labelSmoothing: 0.1 }), ['grad_logits']);
  await golden('mse_loss', (g) => F.mseLoss(g.input!, g.target!), ['grad_input', 'grad_target']);
  await golden('embedding', (g) => F.embedding(g.ids!, g.weight!), ['grad_weight']);
});

/** Hand-computed cross entropy: per-row -w[y]·(1-ε)·logp[y] - ε/C·Σ_c w[c]·logp[c]. */
function refCrossEntropy(logits: number[][], target: number[], w: number[] | null, eps: number, reduction: 'none' | 'sum' | 'mean'): number[] {
  const C = logits[0]!.length;
  const wt = w ?? new Array(C).fill(1);
  const rows = logits.map((row, i) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    const lp = row.map((v) => v - lse);
    const y = target[i]!;
    return -(1 - eps) * wt[y]! * lp[y]! - (eps / C) * lp.reduce((a, v, c) => a + wt[c]! * v, 0);
  });
  if (reduction === 'none') return rows;
  const s = rows.reduce((a, b) => a + b, 0);
  if (reduction === 'sum') return [s];
  const denom = target.reduce((a, y) => a + wt[y]!, 0); // PyTorch: weighted mean divides by Σ w[y_i]
  return [s / denom];
}

test('crossEntropy: hand-computed with class weights, label smoothing, every reduction, [N, C, d] logits', async () => {
  const logits = [[2, 1, 0.1, -1], [0.5, 2.5, 0.3, 0], [-1, 0, 1, 3], [1, 1, 1, 1], [100, -100, 0, 50]];
  const target = [0, 1, 3, 2, 1];
  const w = [1, 2, 0.5, 3];
  for (const be of both()) {
    const L = tensor(logits, { backend: be });
    const T = tensor(Int32Array.from(target), { backend: be });
    const W = tensor(w, { backend: be });
    for (const weight of [null, w]) {
      for (const eps of [0, 0.2]) {
        for (const reduction of ['none', 'sum', 'mean'] as const) {
          const y = F.crossEntropy(L, T, { reduction, labelSmoothing: eps, ...(weight ? { weight: W } : {}) });
          await assertClose(y, refCrossEntropy(logits, target, weight, eps, reduction), {
            rtol: 1e-5, atol: 1e-4, msg: `crossEntropy w=${!!weight} eps=${eps} ${reduction} on ${be.name}`,
          });
        }
      }
    }
    // [N, C, d] logits with [N, d] targets equal the flattened [N*d, C] case
    const l3 = randArray(2 * 4 * 3, 5, -2, 2), t3 = randIntArray(6, 6, 0, 4);
    const a = F.crossEntropy(tensor(l3, { shape: [2, 4, 3], backend: be }), tensor(t3, { shape: [2, 3], backend: be }), { reduction: 'none' });
    assert.equal(a.shape, [2, 3]);
    const flat: number[][] = [];
    for (let n = 0; n < 2; n++) for (let d = 0; d < 3; d++) flat.push([0, 1, 2, 3].map((c) => l3[n * 12 + c * 3 + d]!));
    await assertClose(a, refCrossEntropy(flat, Array.from(t3), null, 0, 'none'), { rtol: 1e-5, msg: `[N, C, d] crossEntropy on ${be.name}` });
  }
  // gradients: weighted, smoothed, mean
  const { cpu } = backends();
  const T = tensor(Int32Array.from(target.slice(0, 4)), { backend: cpu });
  const W = tensor(w, { backend: cpu });
  await gradcheck((l) => F.crossEntropy(l, T, { weight: W, labelSmoothing: 0.1 }), [tensor(logits.slice(0, 4), { backend: cpu, requiresGrad: true })], { msg: 'crossEntropy weighted smoothed' });
  await compareBackends((l) => F.crossEntropy(l, tensor(Int32Array.from([0, 1, 3, 2, 1]), { backend: l.backend }), { reduction: 'sum', labelSmoothing: 0.3 }), [
    { data: Float32Array.from(logits.flat()), shape: [5, 4], requiresGrad: true },
  ], { msg: 'crossEntropy across backends' });
});

test('crossEntropy ignoreIndex (PyTorch ignore_index, default -100): ignored rows add nothing, the mean is over the rest; other targets outside [0, C) refused', async () => {
  const logits = [[2, 1, 0.1, -1], [0.5, 2.5, 0.3, 0], [-1, 0, 1, 3], [1, 1, 1, 1], [100, -100, 0, 50]];
  const target = [0, -100, 3, -100, 1];
  const kept = [0, 2, 4];
  const w = [1, 2, 0.5, 3];
  for (const be of both()) {
    const L = tensor(logits, { backend: be });
    const T = tensor(Int32Array.from(target), { backend: be });
    const W = tensor(w, { backend: be });
    for (const weight of [null, w]) {
      for (const eps of [0, 0.2]) {
        const sub = refCrossEntropy(kept.map((i) => logits[i]!), kept.map((i) => target[i]!), weight, eps, 'none');
        const none = target.map((y) => (y === -100 ? 0 : sub.shift()!));
        const ref = refCrossEntropy(kept.map((i) => logits[i]!), kept.map((i) => target[i]!), weight, eps, 'mean');
        const opts = { labelSmoothing: eps, ...(weight ? { weight: W } : {}) };
        const msg = `w=${!!weight} eps=${eps} on ${be.name}`;
        await assertClose(F.crossEntropy(L, T, { ...opts, reduction: 'none' }), none, { rtol: 1e-5, atol: 1e-4, msg: `none ${msg}` });
        await assertClose(F.crossEntropy(L, T, { ...opts, reduction: 'sum' }), [none.reduce((a, b) => a + b, 0)], { rtol: 1e-5, atol: 1e-4, msg: `sum ${msg}` });
        await assertClose(F.crossEntropy(L, T, opts), ref, { rtol: 1e-5, atol: 1e-4, msg: `mean ${msg}` });
      }
    }
    // a custom ignoreIndex, also one inside [0, C) (PyTorch allows it: that class is ignored)
    const T7 = tensor(Int32Array.from([0, 7, 3, 7, 1]), { backend: be });
    await assertClose(F.crossEntropy(L, T7, { ignoreIndex: 7 }), refCrossEntropy(kept.map((i) => logits[i]!), [0, 3, 1], null, 0, 'mean'), { rtol: 1e-5, msg: `ignoreIndex 7 on ${be.name}` });
    const T3 = tensor(Int32Array.from([0, 3, 3, 2, 1]), { backend: be });
    await assertClose(F.crossEntropy(L, T3, { ignoreIndex: 3 }), refCrossEntropy([0, 3, 4].map((i) => logits[i]!), [0, 2, 1], null, 0, 'mean'), { rtol: 1e-5, msg: `ignoreIndex 3 (a class) on ${be.name}` });
    // every row ignored: NaN (PyTorch's mean over no rows); the sum is 0
    const all = tensor(Int32Array.from([-100, -100, -100, -100, -100]), { backend: be });
    assert.ok(Number.isNaN(await F.crossEntropy(L, all).item()), `all ignored: NaN on ${be.name}`);
    assert.is(await F.crossEntropy(L, all, { reduction: 'sum' }).item(), 0, `all ignored, sum on ${be.name}`);
    // gradient: zero rows for ignored targets
    const Lg = tensor(logits, { backend: be, requiresGrad: true });
    F.crossEntropy(Lg, T).backward();
    const g = await Lg.grad!.data();
    for (const i of [1, 3]) assert.equal(Array.from(g.slice(i * 4, i * 4 + 4)), [0, 0, 0, 0], `ignored row ${i} has no gradient on ${be.name}`);
    // targets outside [0, C) that are not the ignoreIndex are still refused (on WebGPU at the readback)
    for (const bad of [-1, 4, -101]) {
      let err: Error | null = null;
      try {
        await F.crossEntropy(L, tensor(Int32Array.from([0, bad, 1, 2, 3]), { backend: be })).item();
      } catch (e) {
        err = e as Error;
      }
      assert.ok(err, `target ${bad} on ${be.name}: no error`);
      assert.match(err!.message, new RegExp(`crossEntropy: target ${bad} is out of range \\[0, 4\\) \\(and is not the ignoreIndex -100\\)`), `target ${bad} on ${be.name}`);
    }
    assertThrowsWith(() => F.crossEntropy(L, T, { ignoreIndex: 0.5 }), [/ignoreIndex/, /integer/], 'fractional ignoreIndex');
  }
  // CPU gradient by central differences, and WebGPU vs CPU with ignored rows, weights and smoothing
  const { cpu } = backends();
  const Tc = tensor(Int32Array.from(target.slice(0, 4)), { backend: cpu });
  await gradcheck((l) => F.crossEntropy(l, Tc, { weight: tensor(w, { backend: cpu }), labelSmoothing: 0.1 }), [tensor(logits.slice(0, 4), { backend: cpu, requiresGrad: true })], { msg: 'crossEntropy ignoreIndex weighted smoothed' });
  const ids = randIntArray(37, 9, -1, 6).map((v) => (v === -1 ? -100 : v));
  await compareBackends((l) => F.crossEntropy(l, tensor(ids, { backend: l.backend }), { labelSmoothing: 0.1, weight: tensor([1, 2, 0.5, 3, 1, 0.25], { backend: l.backend }) }), [
    { data: randArray(37 * 6, 10, -3, 3), shape: [37, 6], requiresGrad: true },
  ], { msg: 'crossEntropy with ignored targets across backends' });
});

test('mseLoss reductions and gradients', async () => {
  for (const be of both()) {
    const a = tensor([1, 2, 3, 4], { backend: be, requiresGrad: true }), b = tensor([1, 0, 5, 0], { backend: be });
    assert.is(await F.mseLoss(a, b).item(), (0 + 4 + 4 + 16) / 4);
    assert.is(await F.mseLoss(a, b, 'sum').item(), 24);
    assert.equal(Array.from(await F.mseLoss(a, b, 'none').data()), [0, 4, 4, 16]);
    F.mseLoss(a, b).backward();
    assert.equal(Array.from(await a.grad!.data()), [0, 1, -1, 2], `mse grad = 2(a-b)/n on ${be.name}`);
  }
  // one fused op: broadcast operands, a target that needs its gradient too, every reduction
  const { cpu } = backends();
  for (const reduction of ['mean', 'sum', 'none'] as const) {
    const fn = (x: Tensor, t: Tensor) => {
      const l = F.mseLoss(x, t, reduction);
      return reduction === 'none' ? F.mul(l, l) : l;
    };
    await gradcheck(fn, [tensor(randArray(3 * 5, 61), { shape: [3, 5], backend: cpu, requiresGrad: true }), tensor(randArray(5, 62), { shape: [5], backend: cpu, requiresGrad: true })], { msg: `mseLoss ${reduction}, broadcast target` });
    await compareBackends(fn, [{ data: randArray(4 * 37, 63), shape: [4, 37], requiresGrad: true }, { data: randArray(4, 64), shape: [4, 1], requiresGrad: true }], { rtol: 1e-4, msg: `mseLoss ${reduction}` });
  }
  const gpu = backends().hasGpu ? backends().gpu : null;
  if (gpu) {
    // forward (the squared difference and its mean) and backward (the seed and the scaled difference): four dispatches
    const x = tensor(randArray(8 * 4 * 16 * 16, 65), { shape: [8, 4, 16, 16], backend: gpu, requiresGrad: true });
    const t = tensor(randArray(8 * 4 * 16 * 16, 66), { shape: [8, 4, 16, 16], backend: gpu });
    const { report } = await F.profile(async () => {
      const l = F.mseLoss(x, t);
      l.backward();
      await x.grad!.data();
      l.dispose();
    }, { gpuTime: false });
    const ops = report.byOp.map((r) => `${r.name} ${r.dispatches}`).sort().join(', ');
    assert.ok(report.dispatches <= 5, `mseLoss forward and backward: ${ops}`);
    for (const v of [x, t]) v.dispose();
  }
});

test('embedding: repeated ids accumulate gradients; out-of-range ids are an error on every backend', async () => {
  for (const be of both()) {
    const w = tensor([[1, 2], [3, 4], [5, 6]], { backend: be, requiresGrad: true });
    const ids = tensor(Int32Array.from([2, 0, 2, 2]), { shape: [2, 2], backend: be });
    const y = F.embedding(ids, w);
    assert.equal(await y.array(), [[[5, 6], [1, 2]], [[5, 6], [5, 6]]]);
    F.sum(F.mul(y, tensor([1, 10], { backend: be }))).backward();
    assert.equal(await w.grad!.array(), [[1, 10], [0, 0], [3, 30]], `embedding grad on ${be.name}`);
  }
  for (const be of both()) {
    // refused by the op (CPU) or at the readback (a device-side check on WebGPU)
    let msg = '';
    try {
      await F.embedding(tensor(Int32Array.from([0, 3]), { backend: be }), tensor([[1], [2]], { backend: be })).data();
    } catch (e) {
      msg = (e as Error).message;
    }
    assert.match(msg, /embedding: index 3 is out of range \[0, 2\)/, `out-of-range id on ${be.name}`);
  }
});

// index_add (the embedding gradient) gathers for small tables (deterministic: the sums are added in
// index order) and scatters with compare-and-swap above 2^24 (element, index) pairs
test('embedding gradient: the gather form (small tables) and the scatter form (large) equal the CPU; the gather form is bitwise repeatable', async () => {
  const { cpu } = backends();
  const webgpu = requireGpu('the WebGPU index_add forms');
  for (const [rows, dim, n] of [[37, 24, 300], [1100, 64, 300]] as const) {
    const ids = Int32Array.from({ length: n }, (_, i) => (i * 7919) % rows % Math.max(1, rows >> 2)); // many repeats
    const gy = randArray(n * dim, 5);
    const grads: Float32Array[] = [];
    for (const be of [cpu, webgpu, webgpu]) {
      const w = tensor(randArray(rows * dim, 6), { shape: [rows, dim], backend: be, requiresGrad: true });
      const y = F.embedding(tensor(ids, { backend: be }), w);
      y.backward(tensor(gy, { shape: [n, dim], backend: be }));
      grads.push(await w.grad!.dataF32());
    }
    const [ref, g1, g2] = grads as [Float32Array, Float32Array, Float32Array];
    let err = 0, scale = 0;
    for (let i = 0; i < ref.length; i++) { err = Math.max(err, Math.abs(g1[i]! - ref[i]!)); scale = Math.max(scale, Math.abs(ref[i]!)); }
    assert.ok(err <= 1e-5 * Math.max(1, scale), `table ${rows}x${dim}, ${n} ids: webgpu vs cpu max error ${err} (scale ${scale})`);
    if (rows * dim * n <= 1 << 24) assert.equal(Array.from(g2), Array.from(g1), `table ${rows}x${dim}: the gather form gave different bits on a second run`);
  }
});

test('oneHot and gather (any dim, gradients)', async () => {
  for (const be of both()) {
    const h = F.oneHot(tensor(Int32Array.from([2, 0, 1, 2]), { shape: [2, 2], backend: be }), 3);
    assert.equal(h.shape, [2, 2, 3]);
    assert.equal(await h.array(), [[[0, 0, 1], [1, 0, 0]], [[0, 1, 0], [0, 0, 1]]]);
    const x = tensor([[1, 2, 3], [4, 5, 6]], { backend: be, requiresGrad: true });
    const g1 = F.gather(x, 1, tensor(Int32Array.from([2, 2, 0, 1]), { shape: [2, 2], backend: be }));
    assert.equal(await g1.array(), [[3, 3], [4, 5]]);
    const g0 = F.gather(x, 0, tensor(Int32Array.from([1, 0, 1]), { shape: [1, 3], backend: be }));
    assert.equal(await g0.array(), [[4, 2, 6]]);
    F.sum(g1).backward();
    assert.equal(await x.grad!.array(), [[0, 0, 2], [1, 1, 0]], `gather grad on ${be.name}`);
  }
  const { cpu } = backends();
  const idx = tensor(Int32Array.from([0, 2, 1, 1, 0, 0]), { shape: [2, 3], backend: cpu });
  await gradcheck((x) => F.gather(x, 1, idx), [tensor(randArray(8, 3), { shape: [2, 4], backend: cpu, requiresGrad: true })], { msg: 'gather' });
});

test('dropout: seeded, inverted scaling, eval and p=0 are identity, p=1 zeroes; gradient uses the same mask', async () => {
  const n = 20_000;
  for (const be of both()) {
    const x = tensor(new Float32Array(n).fill(2), { backend: be, requiresGrad: true });
    const y = F.dropout(x, 0.25, true, new Generator(3));
    const d = await y.data();
    let kept = 0;
    for (const v of d) {
      assert.ok(v === 0 || Math.abs(v - 2 / 0.75) < 1e-6, `dropout value ${v}`);
      if (v !== 0) kept++;
    }
    assert.ok(Math.abs(kept / n - 0.75) < 0.015, `kept fraction ${kept / n} on ${be.name}`);
    const again = await F.dropout(x, 0.25, true, new Generator(3)).data();
    assert.equal(Array.from(again), Array.from(d), 'same generator state, same mask');
    F.sum(y).backward();
    const gd = await x.grad!.data();
    for (let i = 0; i < n; i += 997) assert.is(gd[i], d[i] === 0 ? 0 : Math.fround(1 / 0.75), 'grad mask matches the forward mask');
    assert.equal(Array.from(await F.dropout(x, 0.5, false).data()).slice(0, 3), [2, 2, 2], 'eval mode');
    assert.equal(Array.from(await F.dropout(x, 0).data()).slice(0, 3), [2, 2, 2], 'p = 0');
    assert.ok((await F.dropout(x, 1).data()).every((v) => v === 0), 'p = 1');
  }
  // same seed, same mask on CPU and WebGPU
  const { cpu, gpu } = backends();
  const mc = await F.dropout(tensor(new Float32Array(999).fill(1), { backend: cpu }), 0.5, true, new Generator(8)).data();
  const mg = await F.dropout(tensor(new Float32Array(999).fill(1), { backend: gpu }), 0.5, true, new Generator(8)).data();
  assert.equal(Array.from(mg), Array.from(mc), 'dropout mask identical across backends');
});

test('linear matches x @ W^T + b with gradients', async () => {
  const { cpu } = backends();
  const mk = (shape: number[], seed: number) => tensor(randArray(numelOf(shape), seed), { shape, backend: cpu, requiresGrad: true });
  await gradcheck((x, w, b) => F.linear(x, w, b), [mk([3, 4], 1), mk([5, 4], 2), mk([5], 3)], { msg: 'linear' });
  await compareBackends((x, w, b) => F.linear(x, w, b), [
    { data: randArray(2 * 7 * 13, 4), shape: [2, 7, 13], requiresGrad: true },
    { data: randArray(9 * 13, 5), shape: [9, 13], requiresGrad: true },
    { data: randArray(9, 6), shape: [9], requiresGrad: true },
  ], { rtol: 2e-4, gradRtol: 5e-4, msg: 'linear' });
});

test('linear with a residual (addend in the store) and the bias gradient from the weight-gradient kernel: same as linear + add; gradients', async () => {
  const { cpu } = backends();
  const mk = (shape: number[], seed: number) => tensor(randArray(numelOf(shape), seed), { shape, backend: cpu, requiresGrad: true });
  await gradcheck((x, w, b, r) => F.linear(x, w, b, r), [mk([3, 4], 11), mk([5, 4], 12), mk([5], 13), mk([3, 5], 14)], { msg: 'linear + residual' });
  await gradcheck((x, w, b) => F.linear(x, w, b), [mk([2, 3, 4], 15), mk([5, 4], 16), mk([5], 17)], { msg: 'linear, 3-d input' });
  // a transposed input takes the unfused path (product, bias add, residual add)
  await gradcheck((x, w, b, r) => F.linear(x.transpose(0, 1), w, b, r), [mk([4, 3], 18), mk([5, 4], 19), mk([5], 20), mk([3, 5], 21)], { msg: 'linear + residual, transposed input' });
  // random shapes off the matmul tiles; the fused form against the composed one on each backend, and WebGPU against the CPU
  const r = prng(77);
  for (let i = 0; i < 6; i++) {
    const d = () => 1 + Math.floor(r() * 70);
    const [B, L, C, O] = [1 + Math.floor(r() * 3), d(), d(), d()];
    const specs = [
      { data: randArray(B * L * C, 20 + i), shape: [B, L, C], requiresGrad: true },
      { data: randArray(O * C, 30 + i), shape: [O, C], requiresGrad: true },
      { data: randArray(O, 40 + i), shape: [O], requiresGrad: true },
      { data: randArray(B * L * O, 50 + i), shape: [B, L, O], requiresGrad: true },
    ];
    const msg = `linear ${JSON.stringify([B, L, C, O])}`;
    await compareBackends((x, w, b, res) => F.linear(x, w, b, res), specs, { rtol: 2e-4, gradRtol: 5e-4, msg: `${msg} + residual` });
    await compareBackends((x, w, b) => F.linear(x, w, b), specs.slice(0, 3), { rtol: 2e-4, gradRtol: 5e-4, msg });
    for (const be of [cpu, ...(backends().hasGpu ? [backends().gpu] : [])]) {
      const run = async (fused: boolean) => {
        const [x, w, b, res] = specs.map((sp) => tensor(sp.data, { shape: sp.shape, backend: be, requiresGrad: true }));
        const y = fused ? F.linear(x!, w!, b!, res!) : F.add(F.linear(x!, w!, b!), res!);
        y.backward(tensor(randArray(y.size, 60 + i), { shape: y.shape, backend: be }));
        return [await y.dataF32(), ...(await Promise.all([x, w, b, res].map((t) => t!.grad!.dataF32())))];
      };
      const [f, u] = [await run(true), await run(false)];
      await assertClose(f[0]!, u[0]!, { rtol: 1e-6, atol: 1e-6, msg: `${msg} on ${be.name}: fused residual forward` });
      for (const j of [1, 2, 4]) assert.equal(Array.from(f[j]!), Array.from(u[j]!), `${msg} on ${be.name}: gradient ${j} identical`);
      // the bias gradient: Σ over rows of the incoming gradient, from the weight-gradient kernel
      await assertClose(f[3]!, u[3]!, { rtol: 1e-5, atol: 1e-5, msg: `${msg} on ${be.name}: bias gradient` });
    }
  }
});

test.run();
