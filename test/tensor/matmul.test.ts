import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { tensor, type Tensor } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import {
  setup, teardown, backends, randArray, numelOf, assertClose, gradcheck, compareBackends, readGolden,
} from '../helpers.js';

const test = suite('matmul');
test.before(async () => { await setup(); });
test.after(() => teardown());

/** Independent reference: torch.matmul semantics in f64 on host arrays. */
function refMatmul(a: ArrayLike<number>, as: number[], b: ArrayLike<number>, bs: number[]): { data: number[]; shape: number[] } {
  const A = as.length === 1 ? [1, as[0]!] : as, B = bs.length === 1 ? [bs[0]!, 1] : bs;
  const m = A[A.length - 2]!, k = A[A.length - 1]!, n = B[B.length - 1]!;
  const ab = A.slice(0, -2), bb = B.slice(0, -2);
  const rank = Math.max(ab.length, bb.length);
  const pa = [...Array(rank - ab.length).fill(1), ...ab], pb = [...Array(rank - bb.length).fill(1), ...bb];
  const batch = pa.map((d, i) => Math.max(d, pb[i]!));
  const nb = numelOf(batch);
  const out: number[] = [];
  for (let bi = 0; bi < nb; bi++) {
    let ia = 0, ib = 0, rem = bi;
    const idx = batch.map(() => 0);
    for (let d = rank - 1; d >= 0; d--) { idx[d] = rem % batch[d]!; rem = Math.floor(rem / batch[d]!); }
    for (let d = 0; d < rank; d++) {
      ia = ia * pa[d]! + (pa[d] === 1 ? 0 : idx[d]!);
      ib = ib * pb[d]! + (pb[d] === 1 ? 0 : idx[d]!);
    }
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let kk = 0; kk < k; kk++) s += a[ia * m * k + i * k + kk]! * b[ib * k * n + kk * n + j]!;
      out.push(s);
    }
  }
  let shape = [...batch, m, n];
  if (as.length === 1) shape = shape.filter((_, i) => i !== shape.length - 2);
  if (bs.length === 1) shape = shape.slice(0, -1);
  return { data: out, shape };
}

const CASES: [number[], number[]][] = [
  [[7, 13], [13, 5]], [[1, 1], [1, 1]], [[3, 33, 17], [3, 17, 65]], [[2, 1, 9, 4], [3, 4, 6]], [[9, 4], [2, 3, 4, 6]],
  [[13], [13, 5]], [[7, 13], [13]], [[17], [2, 17, 3]], [[4, 0, 5], [4, 5, 3]], [[3, 0], [0, 4]], [[65, 129], [129, 3]],
];

test('batched, broadcast and vector cases match an f64 reference on both backends', async () => {
  const { cpu, gpu } = backends();
  for (const [as, bs] of CASES) {
    const a = randArray(numelOf(as), 1), b = randArray(numelOf(bs), 2);
    const want = refMatmul(a, as, b, bs);
    for (const be of [cpu, gpu]) {
      const y = F.matmul(tensor(a, { shape: as, backend: be }), tensor(b, { shape: bs, backend: be }));
      assert.equal(y.shape, want.shape, `shape of ${JSON.stringify(as)} @ ${JSON.stringify(bs)}`);
      await assertClose(y, want.data, { rtol: 1e-4, atol: 1e-4 * Math.sqrt(as[as.length - 1]!), msg: `${JSON.stringify(as)} @ ${JSON.stringify(bs)} on ${be.name}` });
    }
  }
  // a [3,0] @ [0,4] product is all zeros
  assert.equal(Array.from(await F.matmul(tensor(new Float32Array(0), { shape: [3, 0], backend: gpu }), tensor(new Float32Array(0), { shape: [0, 4], backend: gpu })).data()), new Array(12).fill(0));
});

test('transposed and strided operands (no-copy and copying paths) give the same result', async () => {
  const { cpu, gpu } = backends();
  const a = randArray(2 * 3 * 11 * 7, 3), b = randArray(2 * 3 * 11 * 5, 4);
  for (const be of [cpu, gpu]) {
    const A = tensor(a, { shape: [2, 3, 11, 7], backend: be }); // used as A^T: [2,3,7,11]
    const B = tensor(b, { shape: [2, 3, 11, 5], backend: be });
    const At = F.transpose(A, -1, -2), Bt = F.transpose(F.contiguous(F.transpose(B, -1, -2)), -1, -2);
    const want = refMatmul(await At.contiguous().data(), [2, 3, 7, 11], b, [2, 3, 11, 5]);
    await assertClose(F.matmul(At, B), want.data, { msg: `A^T @ B on ${be.name}` });
    await assertClose(F.matmul(At, Bt), want.data, { msg: `A^T @ (B^T)^T on ${be.name}` });
    // batch dims permuted: not a uniform batch stride, forces a copy
    const Ap = F.permute(tensor(a, { shape: [3, 2, 7, 11], backend: be }), [1, 0, 2, 3]);
    const wantP = refMatmul(await Ap.contiguous().data(), [2, 3, 7, 11], b, [2, 3, 11, 5]);
    await assertClose(F.matmul(Ap, B), wantP.data, { msg: `batch-permuted A on ${be.name}` });
    // narrowed rows and columns
    const An = F.narrow(F.narrow(tensor(a, { shape: [42, 11], backend: be }), 0, 3, 20), 1, 1, 9);
    const Bn = F.narrow(tensor(b, { shape: [66, 5], backend: be }), 0, 10, 9);
    const wantN = refMatmul(await An.contiguous().data(), [20, 9], await Bn.contiguous().data(), [9, 5]);
    await assertClose(F.matmul(An, Bn), wantN.data, { msg: `narrowed operands on ${be.name}` });
    // expanded operand (stride-0 batch)
    const Be = F.expand(tensor(b.slice(0, 55), { shape: [11, 5], backend: be }), [2, 3, 11, 5]);
    const wantE = refMatmul(await At.contiguous().data(), [2, 3, 7, 11], b.slice(0, 55), [11, 5]);
    await assertClose(F.matmul(At, Be), wantE.data, { msg: `expanded B on ${be.name}` });
  }
});

test('gradcheck: matmul in every shape family (CPU)', async () => {
  const { cpu } = backends();
  const mk = (shape: number[], seed: number) => tensor(randArray(numelOf(shape), seed), { shape, backend: cpu, requiresGrad: true });
  const cases: [number[], number[]][] = [[[3, 4], [4, 2]], [[2, 3, 4], [4, 2]], [[2, 1, 3, 4], [3, 4, 2]], [[4], [4, 3]], [[3, 4], [4]], [[4], [2, 4, 3]]];
  for (const [as, bs] of cases) await gradcheck(F.matmul, [mk(as, 1), mk(bs, 2)], { msg: `matmul ${JSON.stringify(as)} @ ${JSON.stringify(bs)}` });
  await gradcheck((a, b) => F.matmul(F.transpose(a, 0, 1), F.transpose(b, 0, 1)), [mk([4, 3], 3), mk([2, 4], 4)], { msg: 'transposed operands' });
});

test('WebGPU matmul gradients agree with CPU', async () => {
  for (const [as, bs] of CASES) {
    if (numelOf(as) === 0 || numelOf(bs) === 0) continue;
    await compareBackends(F.matmul, [
      { data: randArray(numelOf(as), 5), shape: as, requiresGrad: true },
      { data: randArray(numelOf(bs), 6), shape: bs, requiresGrad: true },
    ], { rtol: 2e-4, gradRtol: 5e-4, msg: `${JSON.stringify(as)} @ ${JSON.stringify(bs)}` });
  }
  await compareBackends((a, b) => F.matmul(F.transpose(a, -1, -2), b), [
    { data: randArray(3 * 17 * 9, 7), shape: [3, 17, 9], requiresGrad: true },
    { data: randArray(17 * 5, 8), shape: [17, 5], requiresGrad: true },
  ], { rtol: 2e-4, gradRtol: 5e-4, msg: 'A^T @ B' });
});

test('golden: matmul_batched, matmul_broadcast, matmul_vec_mat (values and grads)', async () => {
  const { cpu, gpu } = backends();
  for (const name of ['matmul_batched', 'matmul_broadcast', 'matmul_vec_mat']) {
    const g = await readGolden(`ops/${name}.safetensors`, `golden ${name}`);
    for (const be of [cpu, gpu]) {
      const a = tensor(g.a!.data, { shape: g.a!.shape, backend: be, requiresGrad: true });
      const b = tensor(g.b!.data, { shape: g.b!.shape, backend: be, requiresGrad: true });
      const y: Tensor = F.matmul(a, b);
      await assertClose(y, g.out!.data, { rtol: 1e-4, msg: `${name} out on ${be.name}` });
      y.backward(tensor(g.R!.data, { shape: g.R!.shape, backend: be }));
      await assertClose(a.grad!, g.grad_a!.data, { rtol: 1e-4, msg: `${name} grad_a on ${be.name}` });
      await assertClose(b.grad!, g.grad_b!.data, { rtol: 1e-4, msg: `${name} grad_b on ${be.name}` });
    }
  }
});

test('vector · vector gives a 0-d tensor with gradients (torch.matmul 1-D @ 1-D)', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const a = tensor([1, 2, 3], { backend: be, requiresGrad: true }), b = tensor([4, 5, 6], { backend: be, requiresGrad: true });
    const y = F.matmul(a, b);
    assert.equal(y.shape, [], `1-D @ 1-D shape on ${be.name}`);
    assert.is(await y.item(), 32);
    y.backward();
    assert.equal(Array.from(await a.grad!.data()), [4, 5, 6]);
    assert.equal(Array.from(await b.grad!.data()), [1, 2, 3]);
  }
});


/**
 * matmulWith folds alpha, a bias and the output's layout into every kernel variant: compared with
 * the CPU backend (forward and gradients) on sizes off every tile, for heads split from [B, L, H·D]
 * as attention uses them (q @ kᵀ with alpha, P @ v stored in q's layout) and a linear layer's bias.
 */
test('matmulWith: alpha, bias and output layout match the CPU on every variant, gradients included', async () => {
  const { cpu, gpu, hasGpu } = backends();
  const heads = (t: Tensor, h: number): Tensor => {
    const [b, l, c] = t.shape as [number, number, number];
    return F.transpose(F.reshape(t, [b, l, h, c / h]), 1, 2);
  };
  const attn = (x: Tensor, y: Tensor, z: Tensor): Tensor => {
    const q = heads(x, 3), k = heads(y, 3), v = heads(z, 3);
    const s = F.matmulWith(q, F.transpose(k, -1, -2), { alpha: 0.37 });
    const o = F.matmulWith(F.softmax(s, -1), v, { outStrides: [...q.strides] });
    // the head merge is a view of the output's storage, no copy
    const merged = F.transpose(o, 1, 2);
    assert.ok(merged.isContiguous, 'output stored in q layout');
    return F.reshape(merged, [x.shape[0]!, x.shape[1]!, x.shape[2]!]);
  };
  const lin = (x: Tensor, w: Tensor, b: Tensor): Tensor => F.matmulWith(x, F.transpose(w, 0, 1), { bias: b, alpha: -1.5 });
  // gradients on the CPU against central differences (alpha, bias, layouts in the backward too)
  await gradcheck(attn, [randTensorCpu([2, 5, 6], 1), randTensorCpu([2, 7, 6], 2), randTensorCpu([2, 7, 6], 3)], { msg: 'split-head attention' });
  await gradcheck(lin, [randTensorCpu([5, 7], 4), randTensorCpu([3, 7], 5), randTensorCpu([3], 6)], { msg: 'linear with bias' });
  await gradcheck((x, w, d) => F.matmulWith(x, w, { addend: F.transpose(d, 0, 1) }), [randTensorCpu([4, 6], 7), randTensorCpu([6, 3], 8), randTensorCpu([3, 4], 9)], { msg: 'strided addend' });
  void cpu;
  if (!hasGpu) return;
  void gpu;
  const variants = ['base', 'subgroup', 'tiled'];
  try {
    for (const variant of variants) {
      process.env.FOLIAR_MATMUL_VARIANT = variant;
      for (const [B, L, S, C] of [[2, 9, 13, 12], [1, 70, 33, 24], [3, 5, 77, 48]] as const) {
        await compareBackends(attn, [
          { data: randArray(B * L * C, 7), shape: [B, L, C], requiresGrad: true },
          { data: randArray(B * S * C, 8), shape: [B, S, C], requiresGrad: true },
          { data: randArray(B * S * C, 9), shape: [B, S, C], requiresGrad: true },
        ], { rtol: 1e-4, gradRtol: 1e-3, msg: `${variant} attention B${B} L${L} S${S} C${C}` });
      }
      for (const [M, K, N] of [[7, 13, 5], [70, 33, 66], [130, 9, 64]] as const) {
        await compareBackends(lin, [
          { data: randArray(M * K, 10), shape: [M, K], requiresGrad: true },
          { data: randArray(N * K, 11), shape: [N, K], requiresGrad: true },
          { data: randArray(N, 12), shape: [N], requiresGrad: true },
        ], { rtol: 1e-4, gradRtol: 1e-3, msg: `${variant} bias ${M}x${K}x${N}` });
      }
      // an addend in the store (and its gradient, the incoming one), with bias and alpha
      for (const [M, K, N] of [[9, 13, 7], [66, 20, 64]] as const) {
        await compareBackends((x, w, b, d) => F.matmulWith(x, w, { bias: b, alpha: 0.5, addend: d }), [
          { data: randArray(M * K, 14), shape: [M, K], requiresGrad: true },
          { data: randArray(K * N, 15), shape: [K, N], requiresGrad: true },
          { data: randArray(N, 16), shape: [N], requiresGrad: true },
          { data: randArray(M * N, 17), shape: [M, N], requiresGrad: true },
        ], { rtol: 1e-4, gradRtol: 1e-3, msg: `${variant} addend ${M}x${K}x${N}` });
      }
      // K = 0: alpha · 0 + bias
      await compareBackends((x, w, b) => F.matmulWith(x, w, { bias: b, alpha: 2 }), [
        { data: new Float32Array(0), shape: [3, 0] }, { data: new Float32Array(0), shape: [0, 5] }, { data: randArray(5, 13), shape: [5] },
      ], { grad: false, msg: `${variant} K = 0 with bias` });
    }
  } finally {
    delete process.env.FOLIAR_MATMUL_VARIANT;
  }
});

function randTensorCpu(shape: number[], seed: number): Tensor {
  return tensor(randArray(numelOf(shape), seed), { shape, backend: backends().cpu, requiresGrad: true });
}

test.run();
