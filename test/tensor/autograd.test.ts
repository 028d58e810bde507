import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { tensor, noGrad, isGradEnabled, type Tensor, type Backend } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import { setup, teardown, backends, assertClose, assertThrowsWith, randArray, compareBackends } from '../helpers.js';

const test = suite('autograd');
test.before(async () => { await setup(); });
test.after(() => teardown());

const both = (): Backend[] => [backends().cpu, backends().gpu];

test('gradients accumulate over two backward calls', async () => {
  for (const be of both()) {
    const x = tensor([1, 2, 3], { backend: be, requiresGrad: true });
    F.sum(F.mul(x, x)).backward();
    assert.equal(Array.from(await x.grad!.data()), [2, 4, 6]);
    F.sum(F.mul(x, 3)).backward();
    assert.equal(Array.from(await x.grad!.data()), [5, 7, 9], `accumulated on ${be.name}`);
  }
});

test('retainGraph allows a second backward; without it the freed graph throws a clear error', async () => {
  for (const be of both()) {
    const x = tensor([1, 2], { backend: be, requiresGrad: true });
    const y = F.sum(F.exp(x));
    y.backward(undefined, { retainGraph: true });
    y.backward();
    await assertClose(x.grad!, [2 * Math.E, 2 * Math.exp(2)], { rtol: 1e-6 });
    assertThrowsWith(() => y.backward(), [/already freed/, /retainGraph/], 'third backward');
  }
});

test('noGrad records nothing; detach cuts the graph but shares data', async () => {
  for (const be of both()) {
    const x = tensor([1, 2, 3], { backend: be, requiresGrad: true });
    const y = noGrad(() => {
      assert.is(isGradEnabled(), false);
      return F.mul(x, 2);
    });
    assert.is(isGradEnabled(), true, 'noGrad restores the mode');
    assert.is(y.requiresGrad, false);
    assert.is(y.gradFn, null);
    assertThrowsWith(() => F.sum(y).backward(), [/does not require grad/], 'backward through noGrad output');
    const d = x.detach();
    assert.is(d.requiresGrad, false);
    assert.ok(d.storage === x.storage, 'detach shares storage');
    const z = F.add(F.mul(d, x), x); // d is a constant: dz/dx = d + 1
    F.sum(z).backward();
    assert.equal(Array.from(await x.grad!.data()), [2, 3, 4], `detach on ${be.name}`);
    // noGrad restores the mode even when fn throws
    try { noGrad(() => { throw new Error('boom'); }); } catch { /* expected */ }
    assert.is(isGradEnabled(), true);
  }
});

test('a tensor used twice (and in two branches) gets the sum of both gradients', async () => {
  for (const be of both()) {
    const x = tensor([0.5, -1, 2], { backend: be, requiresGrad: true });
    const y = F.mul(x, x); // 2x
    const z = F.add(F.sin(x), F.mul(y, x)); // cos x + 3x^2
    F.sum(z).backward();
    const xs = [0.5, -1, 2];
    await assertClose(x.grad!, xs.map((v) => Math.cos(v) + 3 * v * v), { rtol: 1e-5, msg: `diamond graph on ${be.name}` });
    // the same view of x twice in one op
    const w = tensor([3, 4], { backend: be, requiresGrad: true });
    F.sum(F.mul(F.narrow(w, 0, 0, 2), w)).backward();
    assert.equal(Array.from(await w.grad!.data()), [6, 8]);
  }
});

test('non-scalar backward needs an explicit gradient of the right shape', async () => {
  for (const be of both()) {
    const x = tensor([[1, 2], [3, 4]], { backend: be, requiresGrad: true });
    const y = F.mul(x, x);
    assertThrowsWith(() => y.backward(), [/scalar/, /\[2, 2\]/], 'backward of a [2,2] without grad');
    assertThrowsWith(() => y.backward(tensor([1, 2], { backend: be })), [/gradient shape \[2\]/, /\[2, 2\]/], 'backward with a wrong-shaped grad');
    y.backward(tensor([[1, 0], [0.5, -1]], { backend: be }));
    assert.equal(await x.grad!.array(), [[2, 0], [3, -8]], `explicit grad on ${be.name}`);
  }
});

test('leaf semantics: isLeaf, requiresGrad propagation, no grad for constants, grads on views flow to the base', async () => {
  for (const be of both()) {
    const a = tensor([1, 2, 3, 4], { backend: be, requiresGrad: true });
    const c = tensor([5, 6, 7, 8], { backend: be });
    const y = F.mul(a, c);
    assert.ok(a.isLeaf && !y.isLeaf && y.requiresGrad);
    F.sum(F.reshape(y, [2, 2]).slice(null, [1])).backward(); // only odd elements
    assert.equal(Array.from(await a.grad!.data()), [0, 6, 0, 8]);
    assert.is(c.grad, null, 'a constant gets no gradient');
    assertThrowsWith(() => tensor([1], { backend: be, dtype: 'int32' }).requiresGrad_(), [/float/, /int32/], 'requiresGrad on int');
  }
});

test('backward on a leaf itself and on a deep chain (no recursion limit)', async () => {
  const { cpu } = backends();
  const x = tensor([2], { backend: cpu, requiresGrad: true });
  x.backward(tensor([3], { backend: cpu }));
  assert.equal(Array.from(await x.grad!.data()), [3]);
  const w = tensor([1], { backend: cpu, requiresGrad: true });
  let h: Tensor = w;
  for (let i = 0; i < 20000; i++) h = F.add(h, 0.0001);
  F.sum(h).backward();
  assert.equal(Array.from(await w.grad!.data()), [1]);
});

test('gradient agreement of a composite graph across backends', async () => {
  const fn = (x: Tensor, w: Tensor, b: Tensor) =>
    F.mean(F.mul(F.tanh(F.add(F.matmul(x, w), b)), F.sigmoid(F.sum(x, 1, true))));
  await compareBackends(fn, [
    { data: randArray(7 * 13, 1), shape: [7, 13], requiresGrad: true },
    { data: randArray(13 * 5, 2), shape: [13, 5], requiresGrad: true },
    { data: randArray(5, 3), shape: [5], requiresGrad: true },
  ], { rtol: 2e-4, gradRtol: 5e-4, msg: 'composite graph' });
});


/**
 * A tensor used by a norm or a linear layer and elsewhere (residuals, shared q/k/v inputs): the
 * backward of the norm / linear takes the gradient accumulated so far and adds it in its own kernel
 * instead of a separate sum. Same gradients as the plain sum, on both backends, in any use order.
 */
test('fused gradient accumulation (norm and linear backward take the pending gradient) matches the plain sum', async () => {
  const { cpu } = backends();
  const C = 6;
  const w1 = randArray(C * C, 21), w2 = randArray(C * C, 22), w3 = randArray(C * C, 23), b1 = randArray(C, 24);
  const graph = (x0: Tensor): Tensor => {
    const be = x0.backend;
    // not a leaf: only gradients pending on a node are taken (leaves accumulate in .grad)
    const x = F.mul(x0, 1.5);
    const W1 = tensor(w1, { shape: [C, C], backend: be }), W2 = tensor(w2, { shape: [C, C], backend: be }), W3 = tensor(w3, { shape: [C, C], backend: be });
    const B1 = tensor(b1, { shape: [C], backend: be });
    // a pre-LN residual block, then three linears sharing one input (self-attention's q, k, v)
    const h = F.add(F.linear(F.layerNorm(x, [C]), W1, B1), x);
    const q = F.linear(h, W1), k = F.linear(h, W2), v = F.linear(h, W3, B1);
    const g = F.groupNormSilu(F.reshape(h, [2, C, 5]), 2);
    return F.add(F.add(F.mul(q, k), v), F.reshape(g, [2, 5, C]));
  };
  const data = randArray(2 * 5 * C, 25);
  await compareBackends(graph, [{ data, shape: [2, 5, C], requiresGrad: true }], { rtol: 1e-4, gradRtol: 5e-4, msg: 'fused accumulation' });
  // against central differences on the CPU
  const x = tensor(data, { shape: [2, 5, C], backend: cpu, requiresGrad: true });
  const y = graph(x);
  const R = randArray(y.size, 26);
  y.backward(tensor(R, { shape: y.shape, backend: cpu }));
  const analytic = await x.grad!.data();
  const eps = 1e-3;
  const f = async (d: Float32Array): Promise<number> => {
    const out = noGrad(() => graph(tensor(d, { shape: [2, 5, C], backend: cpu })));
    const o = await out.data();
    return Array.from(o).reduce((a: number, v: number, i: number) => a + v * R[i]!, 0);
  };
  for (const i of [0, 7, 31, 59]) {
    const p = Float32Array.from(data), m = Float32Array.from(data);
    p[i]! += eps;
    m[i]! -= eps;
    const num = ((await f(p)) - (await f(m))) / (2 * eps);
    assert.ok(Math.abs(num - analytic[i]!) < 2e-2 * Math.max(1, Math.abs(num)), `d/dx[${i}]: analytic ${analytic[i]}, numeric ${num}`);
  }
});

test.run();
