import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { tensor, tidy, keep, noGrad, memory, liveTensors, type Tensor, type Backend } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import { setup, teardown, backends, randArray, randnArray } from '../helpers.js';

const test = suite('memory');
test.before(async () => { await setup(); });
test.after(() => teardown());

const both = (): Backend[] => [backends().cpu, backends().gpu];
const snap = (be: Backend) => ({ buffers: memory(be).liveBuffers, tensors: liveTensors() });

test('tidy frees everything not returned (arrays and objects of results are kept), also on throw', async () => {
  for (const be of both()) {
    const x = tensor([1, 2, 3], { backend: be });
    const before = snap(be);
    const out = tidy(() => {
      const a = F.exp(x), b = F.mul(a, 2), c = F.sum(b);
      void F.reshape(F.transpose(F.unsqueeze(b, 0), 0, 1), [-1]);
      return { kept: [c], also: F.add(a, 1) };
    });
    assert.equal(snap(be), { buffers: before.buffers + 2, tensors: before.tensors + 2 }, `only the two results survive on ${be.name}`);
    assert.ok(Math.abs((await out.kept[0]!.item()) - 2 * (Math.E + Math.exp(2) + Math.exp(3))) < 1e-3);
    out.kept[0]!.dispose();
    out.also.dispose();
    assert.equal(snap(be), before);
    assert.throws(() => tidy(() => { F.exp(x); F.mul(x, 3); throw new Error('inside tidy'); }), /inside tidy/);
    assert.equal(snap(be), before, `a throwing tidy frees its tensors on ${be.name}`);
    // nested scopes: the inner result moves to the outer scope and dies with it
    tidy(() => {
      const inner = tidy(() => F.add(F.exp(x), 1));
      assert.ok(!inner.isDisposed);
      return null;
    });
    assert.equal(snap(be), before, 'nested tidy');
    // keep() lets a tensor outlive the scope
    let kept: Tensor | null = null;
    tidy(() => { kept = keep(F.neg(x)); return null; });
    assert.equal(snap(be).tensors, before.tensors + 1);
    // leave nothing for the garbage collector: a tensor it finalises later (FinalizationRegistry)
    // lowers the live count in the middle of another test's snapshot comparison
    (kept as Tensor | null)?.dispose();
    x.dispose();
  }
});

test('keep() inside tidy keeps the kept tensor\'s autograd graph: backward through it still works', async () => {
  for (const be of both()) {
    const w = tensor([0.5, -1, 2], { backend: be, requiresGrad: true });
    let mid: Tensor | null = null;
    const loss = tidy(() => {
      mid = keep(F.mul(F.exp(w), 3)); // kept, not returned: its node must survive the scope
      return F.sum(F.mul(w, w));
    });
    loss.backward();
    const seed = tensor([1, 1, 1], { backend: be });
    (mid as unknown as Tensor).backward(seed);
    seed.dispose();
    // d/dw Σw² + d/dw Σ3·exp(w) = 2w + 3·exp(w)
    const got = await w.grad!.data();
    [0.5, -1, 2].forEach((v, i) => assert.ok(Math.abs(got[i]! - (2 * v + 3 * Math.exp(v))) < 1e-4, `dw[${i}] on ${be.name}: ${got[i]}`));
    (mid as unknown as Tensor).dispose();
    loss.dispose();
    w.grad!.dispose();
    w.grad = null;
    // kept, then disposed inside the scope: its graph goes with the scope (nothing left alive)
    const before = snap(be);
    tidy(() => { keep(F.mul(F.exp(w), 3)).dispose(); return null; });
    assert.equal(snap(be), before, `a kept tensor disposed in the scope leaves nothing on ${be.name}`);
    w.dispose();
  }
});

test('a dropped forward graph inside tidy frees the saved tensors; backward frees the graph', async () => {
  for (const be of both()) {
    const w = tensor(randArray(12, 1), { shape: [3, 4], backend: be, requiresGrad: true });
    const before = snap(be);
    tidy(() => { F.sum(F.tanh(F.matmul(w, F.transpose(w, 0, 1)))); return null; });
    assert.equal(snap(be), before, `dropped graph on ${be.name}`);
    const loss = tidy(() => F.mean(F.exp(F.mul(w, w))));
    loss.backward();
    loss.dispose();
    assert.equal(snap(be), { buffers: before.buffers + 1, tensors: before.tensors + 1 }, `after backward only w.grad is new on ${be.name}`);
    w.grad!.dispose();
    w.grad = null;
    w.dispose();
  }
});

test('views keep storage alive after the base is disposed', async () => {
  for (const be of both()) {
    const before = snap(be);
    const base = tensor([0, 1, 2, 3, 4, 5], { shape: [2, 3], backend: be });
    const v1 = F.narrow(base, 1, 1, 2), v2 = F.transpose(base, 0, 1);
    const row = F.narrow(base, 0, 1, 1);
    const v3 = F.expand(row, [4, 3]);
    row.dispose();
    base.dispose();
    assert.is(memory(be).liveBuffers, before.buffers + 1, 'one storage, still alive');
    assert.equal(await v1.array(), [[1, 2], [4, 5]]);
    assert.equal(await v2.array(), [[0, 3], [1, 4], [2, 5]]);
    assert.equal((await v3.array() as number[][])[3], [3, 4, 5]);
    v1.dispose();
    v2.dispose();
    assert.is(memory(be).liveBuffers, before.buffers + 1, 'still referenced by v3');
    v3.dispose();
    assert.equal(snap(be), before, `storage freed with the last view on ${be.name}`);
  }
});

interface Mlp { w1: Tensor; b1: Tensor; w2: Tensor; b2: Tensor }

function mlp(be: Backend): Mlp {
  const p = (shape: number[], seed: number, std: number) => tensor(randnArray(shape.reduce((a, b) => a * b, 1), seed, std), { shape, backend: be, requiresGrad: true });
  return { w1: p([16, 8], 1, 0.35), b1: p([16], 2, 0.1), w2: p([4, 16], 3, 0.25), b2: p([4], 4, 0.1) };
}

function lossOf(m: Mlp, x: Tensor, y: Tensor): Tensor {
  return tidy(() => F.mseLoss(F.linear(F.relu(F.linear(x, m.w1, m.b1)), m.w2, m.b2), y));
}

test('100 SGD steps of a small MLP (replace p by p - lr*grad): live buffers and tensors stay flat', async () => {
  for (const be of both()) {
    const x = tensor(randArray(32 * 8, 5), { shape: [32, 8], backend: be });
    const y = tensor(randArray(32 * 4, 6), { shape: [32, 4], backend: be });
    let m = mlp(be);
    const lr = 0.1;
    let first = 0, last = 0;
    let ref: { buffers: number; tensors: number } | null = null;
    for (let it = 0; it < 100; it++) {
      const loss = lossOf(m, x, y);
      loss.backward();
      const v = await loss.item();
      loss.dispose();
      if (it === 0) first = v;
      last = v;
      m = noGrad(() => tidy(() => {
        const next = {} as Mlp;
        for (const k of Object.keys(m) as (keyof Mlp)[]) {
          const p = m[k];
          next[k] = F.sub(p, F.mul(p.grad!, lr)).requiresGrad_();
          p.dispose(); // also disposes p.grad
        }
        return next; // tidy frees lr*grad
      }));
      const now = snap(be);
      if (it === 3) ref = now;
      if (it > 3) assert.equal(now, ref, `live buffers/tensors at iteration ${it} on ${be.name} (iteration 3: ${JSON.stringify(ref)})`);
    }
    assert.ok(last < first * 0.8, `the loss decreases (${first} -> ${last}) on ${be.name}`);
    for (const p of Object.values(m)) p.dispose();
    x.dispose();
    y.dispose();
  }
});

test('100 SGD steps with in-place updates (copy_ under noGrad, grads cleared): flat as well', async () => {
  for (const be of both()) {
    const x = tensor(randArray(32 * 8, 7), { shape: [32, 8], backend: be });
    const y = tensor(randArray(32 * 4, 8), { shape: [32, 4], backend: be });
    const m = mlp(be);
    const ids = Object.values(m).map((p) => p.id);
    let ref: { buffers: number; tensors: number } | null = null;
    for (let it = 0; it < 100; it++) {
      const loss = lossOf(m, x, y);
      loss.backward();
      loss.dispose();
      noGrad(() => tidy(() => {
        for (const p of Object.values(m)) F.copy_(p, F.sub(p, F.mul(p.grad!, 0.1)));
        return null;
      }));
      for (const p of Object.values(m)) { p.grad!.dispose(); p.grad = null; }
      const now = snap(be);
      if (it === 3) ref = now;
      if (it > 3) assert.equal(now, ref, `live buffers/tensors at iteration ${it} on ${be.name}`);
    }
    assert.equal(Object.values(m).map((p) => p.id), ids, 'parameters kept their identity');
    for (const p of Object.values(m)) p.dispose();
    x.dispose();
    y.dispose();
  }
});

test.run();
