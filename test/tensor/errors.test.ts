import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { tensor, type Backend, type Tensor } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import { setup, teardown, backends, requireGpu, assertThrowsWith } from '../helpers.js';

const test = suite('errors');
test.before(async () => { await setup(); });
test.after(() => teardown());

const both = (): Backend[] => [backends().cpu, backends().gpu];

test('shape mismatch: broadcasting, matmul, cat, linear, crossEntropy name the op and the shapes', () => {
  for (const be of both()) {
    const a = tensor(new Float32Array(6), { shape: [2, 3], backend: be });
    const b = tensor(new Float32Array(8), { shape: [2, 4], backend: be });
    assertThrowsWith(() => F.add(a, b), [/add/, /\[2, 3\]/, /\[2, 4\]/, /broadcast/], 'add [2,3] + [2,4]');
    assertThrowsWith(() => F.mul(a, b), [/mul/, /\[2, 3\]/, /\[2, 4\]/], 'mul');
    assertThrowsWith(() => F.matmul(a, a), [/matmul/, /\[2, 3\]/, /do not align/], 'matmul [2,3] @ [2,3]');
    assertThrowsWith(() => F.matmul(tensor(new Float32Array(24), { shape: [2, 3, 4], backend: be }), tensor(new Float32Array(60), { shape: [3, 4, 5], backend: be })), [/matmul/, /batch/], 'matmul batch mismatch');
    assertThrowsWith(() => F.cat([a, b], 0), [/cat/, /\[2, 3\]/, /\[2, 4\]/], 'cat on a mismatched dim');
    assertThrowsWith(() => F.linear(a, tensor(new Float32Array(8), { shape: [2, 4], backend: be })), [/linear/, /\[2, 3\]/, /\[2, 4\]/], 'linear');
    assertThrowsWith(() => F.crossEntropy(a, tensor(Int32Array.from([0, 1, 2]), { backend: be })), [/crossEntropy/, /3 targets/, /2 rows/], 'crossEntropy');
    assertThrowsWith(() => F.crossEntropy(a, tensor([0, 1], { backend: be })), [/crossEntropy/, /int32/], 'float targets');
    assertThrowsWith(() => F.expand(a, [4, 3, 4]), [/expand/, /\[2, 3\]/, /\[4, 3, 4\]/], 'expand');
    assertThrowsWith(() => F.permute(a, [0, 0]), [/permute/, /repeated/], 'permute');
    assertThrowsWith(() => F.sum(a, 2), [/dim 2/, /rank 2/], 'sum over a missing dim');
    assertThrowsWith(() => F.narrow(a, 1, 2, 2), [/narrow/, /size 3/], 'narrow out of range');
    assertThrowsWith(() => F.split(a, [1, 1], 1), [/split/, /do not add up to 3/], 'split');
    assertThrowsWith(() => F.pad(a, [1, 1, 1]), [/pad/, /3 values/], 'pad');
  }
});

test('bad reshape names both shapes and the element count', () => {
  for (const be of both()) {
    const a = tensor(new Float32Array(12), { shape: [3, 4], backend: be });
    assertThrowsWith(() => F.reshape(a, [5, 3]), [/reshape/, /\[3, 4\]/, /12 elements/, /\[5, 3\]/], 'reshape to [5,3]');
    assertThrowsWith(() => F.reshape(a, [-1, 5]), [/reshape/, /\[-1, 5\]/], 'reshape with -1 that does not divide');
    assertThrowsWith(() => F.reshape(a, [-1, -1]), [/reshape/, /only one dimension can be -1/], 'two -1');
    assertThrowsWith(() => tensor([1, 2, 3], { shape: [2, 2], backend: be }), [/expected 4 values/, /\[2, 2\]/, /got 3/], 'tensor data/shape mismatch');
    assertThrowsWith(() => tensor([[1, 2], [3]], { backend: be }), [/ragged/], 'ragged nested array');
  }
});

test('mixed backends: each op says which backends and how to fix it', () => {
  const gpu = requireGpu('mixed-backend errors'), { cpu } = backends();
  const a = tensor([1, 2], { backend: cpu }), b = tensor([1, 2], { backend: gpu });
  assertThrowsWith(() => F.add(a, b), [/add/, /different backends/, /cpu/, /webgpu/, /\.to\(\)/], 'add cpu + webgpu');
  assertThrowsWith(() => F.matmul(a, b), [/matmul/, /different backends/], 'matmul cpu @ webgpu');
  assertThrowsWith(() => F.copy_(a, b), [/copy_/, /webgpu/, /cpu/], 'copy_ across backends');
});

test('use after dispose names the tensor and says dispose()', async () => {
  for (const be of both()) {
    const a = tensor([1, 2, 3], { backend: be });
    a.name = 'weights';
    a.dispose();
    assert.ok(a.isDisposed);
    assertThrowsWith(() => F.add(a, 1), [/'weights'/, /\[3\]/, /after dispose/], 'add on a disposed tensor');
    assertThrowsWith(() => F.reshape(a, [3, 1]), [/after dispose/], 'reshape of a disposed tensor');
    let msg = '';
    try { await a.data(); } catch (e) { msg = (e as Error).message; }
    assert.match(msg, /after dispose/, 'data() of a disposed tensor');
    a.dispose(); // idempotent
  }
});

test('autograd misuse and int/float mistakes', async () => {
  const { cpu } = backends();
  const x = tensor([1, 2], { backend: cpu });
  assertThrowsWith(() => F.sum(x).backward(), [/does not require grad/], 'backward without requiresGrad');
  let msg = '';
  await tensor([1, 2], { backend: cpu }).item().catch((e: Error) => { msg = e.message; });
  assert.match(msg, /item\(\) needs a tensor with one element, got \[2\]/, 'item of 2 elements');
  assertThrowsWith(() => F.oneHot(tensor([1, 2], { backend: cpu }), 3), [/oneHot/, /int32/, /float32/], 'oneHot of floats');
  assertThrowsWith(() => F.indexSelect(x, 0, tensor([0], { backend: cpu })), [/indexSelect/, /int32/], 'float indices');
  const p = tensor([1, 2], { backend: cpu, requiresGrad: true });
  assertThrowsWith(() => F.fill_(p, 0), [/fill_/, /leaf that requires grad/, /noGrad/], 'in-place on a grad leaf');
});

test('integer inputs: matmul computes in float and returns int32 (as PyTorch); softmax, logSoftmax, crossEntropy logits refuse ints', async () => {
  for (const be of both()) {
    const i = tensor(Int32Array.from([1, 2, 3, 4]), { shape: [2, 2], backend: be });
    const y = F.matmul(i, i);
    assert.is(y.dtype, 'int32', `int @ int is int32 on ${be.name}`);
    assert.equal(Array.from(await y.data()), [7, 10, 15, 22], `int matmul on ${be.name}`);
    const v = F.matmul(tensor(Int32Array.from([1, 2]), { backend: be }), tensor(Int32Array.from([3, -4]), { backend: be }));
    assert.is(v.dtype, 'int32');
    assert.equal(Array.from(await v.data()), [-5], `int vector dot on ${be.name}`);
    const f = F.matmul(i, tensor([[0.5, 0], [0, 2]], { backend: be }));
    assert.is(f.dtype, 'float32', `int @ float promotes on ${be.name}`);
    assert.equal(Array.from(await f.data()), [0.5, 4, 1.5, 8], `int @ float on ${be.name}`);
    // a float operand that requires grad still gets its gradient through the promoted product
    const w = tensor([[1, 0], [0, 1]], { backend: be, requiresGrad: true });
    F.sum(F.matmul(i, w)).backward();
    assert.equal(Array.from(await w.grad!.data()), [4, 4, 6, 6], `gradient through int @ float on ${be.name}`);
    for (const [name, fn] of [['softmax', F.softmax], ['logSoftmax', F.logSoftmax]] as const) {
      const msg = assertThrowsWith(() => fn(i), [new RegExp(name), /int32/, /float32/], `${name} of int32 on ${be.name}`);
      assert.ok(msg.length > 0);
      let err: unknown;
      try { fn(i); } catch (e) { err = e; }
      assert.instance(err, TypeError, `${name} of int32 throws a TypeError on ${be.name}`);
    }
    assertThrowsWith(() => F.crossEntropy(i, tensor(Int32Array.from([0, 1]), { backend: be })), [/crossEntropy/, /logits/, /int32/], `crossEntropy of int logits on ${be.name}`);
  }
});

/**
 * Runs fn and reads its result: an out-of-range index must be refused either by the op itself (the CPU,
 * host checks) or at the first readback (a device-side check on WebGPU), never returned as numbers.
 */
async function refused(fn: () => Tensor, patterns: RegExp[], what: string): Promise<void> {
  let err: unknown = null;
  try {
    const y = fn();
    await y.data();
  } catch (e) {
    err = e;
  }
  if (err === null) throw new Error(`${what}: no error`);
  assert.instance(err, RangeError, `${what}: ${(err as Error).message}`);
  for (const p of patterns) assert.match((err as Error).message, p, `${what}: "${(err as Error).message}" does not match ${p}`);
}

test('out-of-range indices: indexSelect, embedding, gather, oneHot, crossEntropy refuse them on every backend', async () => {
  for (const be of both()) {
    const ids = (...v: number[]) => tensor(Int32Array.from(v), { backend: be });
    const w = tensor([[1, 2], [3, 4], [5, 6]], { backend: be });
    const x = tensor([[1, 2, 3]], { backend: be });
    const on = ` on ${be.name}`;
    await refused(() => F.indexSelect(w, 0, ids(0, 5)), [/indexSelect/, /\b5\b/, /\[0, 3\)/], `indexSelect 5${on}`);
    await refused(() => F.indexSelect(w, 0, ids(-1)), [/indexSelect/, /-1/, /\[0, 3\)/], `indexSelect -1${on}`);
    await refused(() => F.indexSelect(w, 1, ids(2)), [/indexSelect/, /\b2\b/, /\[0, 2\)/], `indexSelect dim 1${on}`);
    await refused(() => F.embedding(ids(1, 3), w), [/embedding/, /\b3\b/, /\[0, 3\)/], `embedding 3${on}`);
    await refused(() => F.gather(x, 1, tensor(Int32Array.from([5]), { shape: [1, 1], backend: be })), [/gather/, /\b5\b/, /\[0, 3\)/], `gather 5${on}`);
    await refused(() => F.gather(x, 1, tensor(Int32Array.from([0, -1]), { shape: [1, 2], backend: be })), [/gather/, /-1/, /\[0, 3\)/], `gather -1${on}`);
    await refused(() => F.oneHot(ids(5), 3), [/oneHot/, /\b5\b/, /\[0, 3\)/], `oneHot 5${on}`);
    await refused(() => F.oneHot(ids(-1), 3), [/oneHot/, /-1/, /\[0, 3\)/], `oneHot -1${on}`);
    await refused(() => F.crossEntropy(x, ids(5)), [/crossEntropy/, /target/, /\b5\b/, /\[0, 3\)/], `crossEntropy target 5${on}`);
    await refused(() => F.crossEntropy(x, ids(-1)), [/crossEntropy/, /target/, /-1/, /\[0, 3\)/], `crossEntropy target -1${on}`);
    // a result derived from the bad lookup is never handed out either
    await refused(() => F.sum(F.mul(F.embedding(ids(7), w), 2)), [/embedding/, /\b7\b/], `sum of a bad embedding${on}`);
    // ids computed on the device (no host copy to check) are caught too
    await refused(() => F.indexSelect(w, 0, F.cast(F.add(tensor([1], { backend: be }), 3), 'int32')), [/indexSelect/, /\b4\b/], `device-made ids${on}`);
    // afterwards everything works again
    assert.equal(await F.embedding(ids(2, 0), w).array(), [[5, 6], [1, 2]], `valid lookup after the errors${on}`);
    assert.equal(await F.oneHot(ids(2, 0), 3).array(), [[0, 0, 1], [1, 0, 0]]);
    assert.is(await F.gather(x, 1, tensor(Int32Array.from([2]), { shape: [1, 1], backend: be })).item(), 3);
  }
  // on WebGPU the check also surfaces at sync() (reading `gpu` without WebGPU records this part as skipped)
  const { gpu, hasGpu } = backends();
  if (hasGpu) {
    const w = tensor([[1, 2], [3, 4]], { backend: gpu });
    F.embedding(tensor(Int32Array.from([9]), { backend: gpu }), w);
    let err: unknown = null;
    await gpu.sync().catch((e: unknown) => { err = e; });
    assert.instance(err, RangeError, 'sync() reports a pending index error');
    assert.match((err as Error).message, /embedding.*\b9\b.*\[0, 2\)/);
    await gpu.sync();
  }
});

test('copy_ needs a source that broadcasts to the destination; randint needs low < high', async () => {
  for (const be of both()) {
    const on = ` on ${be.name}`;
    assertThrowsWith(() => F.copy_(F.zeros([4], { backend: be }), F.arange(0, 3, 1, { backend: be })), [/copy_/, /\[3\]/, /\[4\]/], `copy_ [3] into [4]${on}`);
    assertThrowsWith(() => F.copy_(F.zeros([2, 3], { backend: be }), F.zeros([3, 3], { backend: be })), [/copy_/, /\[3, 3\]/, /\[2, 3\]/], `copy_ [3,3] into [2,3]${on}`);
    assertThrowsWith(() => F.copy_(F.zeros([3], { backend: be }), F.zeros([2, 3], { backend: be })), [/copy_/], `copy_ [2,3] into [3]${on}`);
    const d = F.copy_(F.zeros([2, 3], { backend: be }), tensor([1, 2, 3], { backend: be }));
    assert.equal(await d.array(), [[1, 2, 3], [1, 2, 3]], `copy_ broadcasts the source${on}`);
    const e = F.copy_(F.zeros([3], { backend: be }), tensor([[4, 5, 6]], { backend: be }));
    assert.equal(await e.array(), [4, 5, 6], `leading size-1 dims of the source${on}`);
    assertThrowsWith(() => F.randint(5, 5, [3], { backend: be }), [/randint/, /low/, /high/, /\b5\b/], `randint(5, 5)${on}`);
    assertThrowsWith(() => F.randint(5, 2, [3], { backend: be }), [/randint/, /\b5\b/, /\b2\b/], `randint(5, 2)${on}`);
  }
});

test.run();
