import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { tensor, arange, zeros, ones, full, linspace, eye, zerosLike, onesLike, fullLike, type Tensor } from '@foliar/tensor';
import * as F from '@foliar/tensor';
import { setup, teardown, backends, randArray, numelOf, assertClose, gradcheck, compareBackends } from '../helpers.js';

const test = suite('views');
test.before(async () => { await setup(); });
test.after(() => teardown());

/** [[0,1,2,3],[4,5,6,7],[8,9,10,11]] on a backend. */
const m34 = (be = backends().cpu) => tensor(Array.from({ length: 12 }, (_, i) => i), { shape: [3, 4], backend: be });

test('permute / transpose / reshape of a non-contiguous tensor give the right values', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const x = m34(be);
    const t = F.transpose(x, 0, 1);
    assert.ok(!t.isContiguous);
    assert.equal(await t.array(), [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]);
    assert.equal(await F.reshape(t, [2, 6]).array(), [[0, 4, 8, 1, 5, 9], [2, 6, 10, 3, 7, 11]], `reshape of transposed on ${be.name}`);
    assert.equal(await F.reshape(t, [-1]).array(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    assert.equal(await F.flatten(t).array(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    const y = tensor(Array.from({ length: 24 }, (_, i) => i), { shape: [2, 3, 4], backend: be });
    const p = F.permute(y, [2, 0, 1]);
    assert.equal(p.shape, [4, 2, 3]);
    // p[k][i][j] = y[i][j][k] = 12i + 4j + k
    const pd = await p.data();
    for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) {
      assert.is(pd[k * 6 + i * 3 + j], 12 * i + 4 * j + k);
    }
    assert.equal(F.permute(y, [-1, 0, 1]).shape, [4, 2, 3]);
    assert.equal(x.T.shape, [4, 3]);
  }
});

test('narrow and slice (negative indices, clamping, empty), split and chunk', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const x = m34(be);
    assert.equal(await F.narrow(x, 1, 1, 2).array(), [[1, 2], [5, 6], [9, 10]]);
    assert.equal(await F.narrow(x, 0, -1, 1).array(), [[8, 9, 10, 11]]);
    assert.equal(await x.slice(null, [-2]).array(), [[2, 3], [6, 7], [10, 11]]);
    assert.equal(await x.slice([1, 3], [0, -1]).array(), [[4, 5, 6], [8, 9, 10]]);
    assert.equal(await x.slice([0, 100]).array(), await x.array(), 'end past the size is clamped');
    assert.equal(x.slice([2, 1]).shape, [0, 4], 'start past end is empty');
    const parts = F.split(x, [1, 3], 1);
    assert.equal(parts.map((p) => p.shape), [[3, 1], [3, 3]]);
    assert.equal(await parts[1]!.array(), [[1, 2, 3], [5, 6, 7], [9, 10, 11]]);
    const even = F.split(x, 3, 1);
    assert.equal(even.map((p) => p.shape[1]), [3, 1]);
    const ch = F.chunk(arange(0, 10, 1, { backend: be }), 3);
    assert.equal(await Promise.all(ch.map((c) => c.array())), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    // a narrow of a narrow of a permute
    const nn = F.narrow(F.narrow(F.transpose(x, 0, 1), 0, 1, 3), 1, 1, 2);
    assert.equal(await nn.array(), [[5, 9], [6, 10], [7, 11]]);
  }
});

test('expand, broadcastTo, squeeze / unsqueeze', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const v = tensor([1, 2, 3], { shape: [3, 1], backend: be });
    const e = F.expand(v, [2, 3, 4]);
    assert.equal(e.shape, [2, 3, 4]);
    assert.equal(e.strides, [0, 1, 0], 'expand shares storage (stride 0)');
    assert.equal(await F.expand(v, [-1, 2]).array(), [[1, 1], [2, 2], [3, 3]]);
    assert.equal((await e.data()).length, 24);
    assert.equal(await F.reshape(e, [2, 12]).array(), [[1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]]);
    const s = tensor(new Float32Array(6), { shape: [1, 3, 1, 2], backend: be });
    assert.equal(F.squeeze(s).shape, [3, 2]);
    assert.equal(F.squeeze(s, 2).shape, [1, 3, 2]);
    assert.equal(F.squeeze(s, 1).shape, [1, 3, 1, 2], 'squeezing a non-1 dim is a no-op');
    assert.equal(F.unsqueeze(s, 0).shape, [1, 1, 3, 1, 2]);
    assert.equal(F.unsqueeze(s, -1).shape, [1, 3, 1, 2, 1]);
    assert.equal(F.unsqueeze(tensor(5, { backend: be }), 0).shape, [1]);
  }
});

test('cat and stack (any dim, negative dims, strided inputs, empty parts)', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const a = m34(be);
    const b = tensor([[100, 101, 102, 103]], { backend: be });
    assert.equal(await F.cat([a, b], 0).array(), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [100, 101, 102, 103]]);
    const t = F.transpose(a, 0, 1); // [4,3] strided
    const c = F.cat([t, tensor(new Float32Array(4).fill(-1), { shape: [4, 1], backend: be }), F.narrow(t, 1, 0, 0)], -1);
    assert.equal(await c.array(), [[0, 4, 8, -1], [1, 5, 9, -1], [2, 6, 10, -1], [3, 7, 11, -1]]);
    const s = F.stack([tensor([1, 2], { backend: be }), tensor([3, 4], { backend: be })], 1);
    assert.equal(await s.array(), [[1, 3], [2, 4]]);
    const s2 = F.stack([tensor([1, 2], { backend: be }), tensor([3, 4], { backend: be })], -1);
    assert.equal(await s2.array(), [[1, 3], [2, 4]]);
    assert.equal(F.stack([a, a, a], 0).shape, [3, 3, 4]);
  }
});

test('pad: positive, negative (crop), mixed, value, several dims', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const x = m34(be);
    assert.equal(await F.pad(x, [1, 0]).array(), [[0, 0, 1, 2, 3], [0, 4, 5, 6, 7], [0, 8, 9, 10, 11]]);
    assert.equal(await F.pad(x, [0, 0, 1, 1], -1).array(), [[-1, -1, -1, -1], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [-1, -1, -1, -1]]);
    assert.equal(await F.pad(x, [-1, -2]).array(), [[1], [5], [9]], 'negative pads crop');
    assert.equal(await F.pad(x, [-1, 1, 1, -2], 7).array(), [[7, 7, 7, 7], [1, 2, 3, 7]], 'mixed crop and pad on two dims');
    assert.equal(await F.pad(F.transpose(x, 0, 1), [1, 1]).array(), [[0, 0, 4, 8, 0], [0, 1, 5, 9, 0], [0, 2, 6, 10, 0], [0, 3, 7, 11, 0]]);
  }
});

test('views share storage; writes through the base are seen (storage identity)', async () => {
  const { cpu } = backends();
  const x = m34(cpu);
  const views = [F.transpose(x, 0, 1), F.narrow(x, 1, 1, 2), F.reshape(x, [12]), F.expand(F.narrow(x, 0, 0, 1), [5, 4]), F.unsqueeze(x, 0)];
  for (const v of views) assert.ok(v.storage === x.storage, 'a view shares its base storage');
  F.fill_(x, 3);
  assert.equal(Array.from(await views[1]!.data()), [3, 3, 3, 3, 3, 3]);
});

/** View ops to gradcheck, each taking a [3, 4, 5] input. */
const VIEW_FNS: [string, (x: Tensor) => Tensor][] = [
  ['reshape of permuted', (x) => F.reshape(F.permute(x, [2, 0, 1]), [5, 12])],
  ['permute', (x) => F.permute(x, [1, 2, 0])],
  ['transpose + contiguous', (x) => F.contiguous(F.transpose(x, 0, 2))],
  ['narrow', (x) => F.narrow(x, 2, 1, 3)],
  ['slice', (x) => x.slice([1], null, [-3, -1])],
  ['expand', (x) => F.expand(F.narrow(x, 1, 0, 1), [2, 3, 4, 5])],
  ['squeeze/unsqueeze', (x) => F.squeeze(F.unsqueeze(F.narrow(x, 0, 1, 1), 2))],
  ['split', (x) => { const [a, b] = F.split(x, [2, 3], 2); return F.mul(F.sum(a!, 2, true), b!); }],
  ['chunk', (x) => { const cs = F.chunk(x, 2, 1); return F.sub(cs[0]!, F.mul(cs[1]!, 2)); }],
  ['cat', (x) => F.cat([F.narrow(x, 2, 3, 2), F.mul(x, x), F.narrow(F.transpose(F.transpose(x, 1, 2), 1, 2), 2, 0, 3)], 2)],
  ['stack', (x) => F.stack([F.narrow(x, 0, 0, 2), F.exp(F.narrow(x, 0, 1, 2))], 1)],
  ['pad', (x) => F.pad(x, [1, 2, 0, 1], 0.5)],
  ['pad negative', (x) => F.pad(x, [-1, 1, 2, -2])],
  ['flatten', (x) => F.flatten(F.transpose(x, 0, 1), 1)],
  ['clone', (x) => F.clone(F.permute(x, [2, 1, 0]))],
];

test('gradcheck: every view op (CPU)', async () => {
  const { cpu } = backends();
  for (const [name, f] of VIEW_FNS) {
    const x = tensor(randArray(60, 12), { shape: [3, 4, 5], backend: cpu, requiresGrad: true });
    await gradcheck(f, [x], { msg: name });
  }
});

test('WebGPU view gradients agree with CPU (odd sizes)', async () => {
  for (const [name, f] of VIEW_FNS) {
    await compareBackends(f, [{ data: randArray(60, 13), shape: [3, 4, 5], requiresGrad: true }], { msg: name });
  }
  const big = [7, 9, 17];
  await compareBackends((x) => F.pad(F.permute(x, [2, 0, 1]), [3, -2, -1, 4]), [{ data: randArray(numelOf(big), 14), shape: big, requiresGrad: true }], { msg: 'pad of permuted [7,9,17]' });
});

test('creation: zeros/ones/full/arange/linspace/eye/*Like and tensor() from nested and typed arrays', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const o = { backend: be };
    assert.equal(await zeros([2, 3], o).array(), [[0, 0, 0], [0, 0, 0]]);
    assert.equal(await ones([3], o).array(), [1, 1, 1]);
    assert.equal(await full([2, 2], -2.5, o).array(), [[-2.5, -2.5], [-2.5, -2.5]]);
    const fi = full([3], 7, { ...o, dtype: 'int32' });
    assert.is(fi.dtype, 'int32');
    assert.equal(Array.from(await fi.data()), [7, 7, 7]);
    assert.equal(zeros([0, 3], o).shape, [0, 3]);
    assert.is(await full([], 4, o).item(), 4);
    assert.equal(await arange(5, undefined, 1, o).array(), [0, 1, 2, 3, 4]);
    assert.equal(await arange(1, 2, 0.25, o).array(), [1, 1.25, 1.5, 1.75]);
    assert.equal(await arange(5, 0, -2, o).array(), [5, 3, 1]);
    assert.is(arange(3, 3, 1, o).size, 0);
    assert.is(arange(0, 3, 1, { ...o, dtype: 'int32' }).dtype, 'int32');
    const ls = await linspace(-1, 1, 5, o).array();
    assert.equal(ls, [-1, -0.5, 0, 0.5, 1]);
    const l7 = await linspace(0, 0.3, 7, o).data();
    assert.is(l7[0], 0);
    assert.is(l7[6], Math.fround(0.3), 'linspace hits the end exactly');
    assert.equal(await linspace(2, 3, 1, o).array(), [2]);
    assert.equal(await eye(2, 3, o).array(), [[1, 0, 0], [0, 1, 0]]);
    assert.equal(await eye(3, undefined, o).array(), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
    const n = tensor([[[1, 2]], [[3, 4]]], o);
    assert.equal(n.shape, [2, 1, 2]);
    assert.equal(await n.array(), [[[1, 2]], [[3, 4]]]);
    const ti = tensor(Int32Array.from([1, -2, 3, 4]), { ...o, shape: [2, 2] });
    assert.is(ti.dtype, 'int32');
    assert.equal(await ti.array(), [[1, -2], [3, 4]]);
    const tf = tensor(Float32Array.from([0.5, 1.5]), o);
    assert.equal(tf.shape, [2]);
    assert.equal(Array.from(await tensor([1.9, -1.9], { ...o, dtype: 'int32' }).data()), [1, -1]);
    assert.equal(Array.from(await tensor(Float32Array.from([2.7]), { ...o, dtype: 'int32' }).data()), [2]);
    assert.equal(tensor(3, o).shape, []);
    const src = Float32Array.from([1, 2]);
    const copy = tensor(src, o);
    src[0] = 99;
    assert.equal(Array.from(await copy.data()), [1, 2], 'tensor() copies its typed array');
    assert.equal(await zerosLike(n).array(), [[[0, 0]], [[0, 0]]]);
    assert.ok(onesLike(ti).dtype === 'int32' && onesLike(ti).backend === be);
    assert.equal(await fullLike(tf, 3).array(), [3, 3]);
    assert.ok(ones([2], { ...o, requiresGrad: true }).requiresGrad);
  }
});

test.run();
