import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor, type Backend } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import { setup, teardown, backends, assertThrowsWith } from '../helpers.js';

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
  const { cpu, gpu, hasGpu } = backends();
  if (!hasGpu) { console.warn('SKIP mixed-backend errors: no WebGPU adapter'); return; }
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

test.run();
