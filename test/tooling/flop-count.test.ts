/** bench/lib/flop-count.ts: the work the speed table divides by must be the model's, counted once. */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import * as ft from '@foliar/tensor';
import { countFlops, flopNote } from '../../bench/lib/flop-count.js';
import { setup, teardown, backends, randnArray } from '../helpers.js';

const test = suite('flop count');
test.before(async () => {
  await setup();
});
test.after(teardown);

const t = (be: ft.Backend, shape: number[], seed: number) => ft.tensor(randnArray(shape.reduce((a, b) => a * b, 1), seed), { shape, backend: be, requiresGrad: true });

test('conv (forward, input and weight gradients), linear and attention are counted once each, on both backends; run is restored', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    // a stem-like conv (7x7 stride 2, 3 channels: the GEMM path on WebGPU runs im2col + matmul inside)
    const x = t(be, [2, 3, 20, 18], 1), w = t(be, [5, 3, 7, 7], 2);
    const ho = Math.floor((20 + 6 - 7) / 2) + 1, wo = Math.floor((18 + 6 - 7) / 2) + 1;
    const conv = 2 * 2 * 5 * 3 * 49 * ho * wo;
    const a = t(be, [6, 10], 3), lw = t(be, [7, 10], 4);
    const lin = 2 * 6 * 7 * 10;
    const q = t(be, [2, 3, 9, 4], 5), k = t(be, [2, 3, 11, 4], 6), v = t(be, [2, 3, 11, 5], 7);
    const before = be.run;
    const { flops } = await countFlops(be, async () => {
      const y = ft.conv2d(x, w, null, { stride: 2, padding: 3 });
      const z = ft.linear(a, lw);
      const o = ft.scaledDotProductAttention(q, k, v, { implementation: 'fused' });
      const loss = ft.add(ft.add(ft.sum(y), ft.sum(z)), ft.sum(o));
      loss.backward();
      await loss.data();
    });
    assert.is(be.run, before, `${be.name}: run restored`);
    assert.not.ok(Object.prototype.hasOwnProperty.call(be, 'run'), `${be.name}: no own run left behind`);
    // forward + input gradient + weight gradient of the conv, the three products of the linear layer,
    // and attention forward (2·BH·Lq·Lk·(D+Dv)) + backward (2·BH·Lq·Lk·(3D+2Dv)) where it is fused
    const att = 2 * 6 * 9 * 11 * ((4 + 5) + (3 * 4 + 2 * 5));
    const expected = 3 * conv + 3 * lin + att;
    assert.is(flops, expected, `${be.name}: FLOPs counted (a nested kernel counted twice, or a kernel missed)`);
    for (const u of [x, w, a, lw, q, k, v]) u.dispose();
  }
});

test('flopNote: rates, peak shares and what 0.5x of the peer asks', () => {
  const n = flopNote(10e9, 1000, 250, 100);
  assert.match(n, /10\.00 GFLOP: foliar 10\.0 GFLOP\/s \(10% of the WGSL FMA peak\)/);
  assert.match(n, /PyTorch 40\.0 GFLOP\/s \(40% of/);
  assert.match(n, /0\.5x PyTorch asks 20\.0 GFLOP\/s \(20% of/);
  assert.not.match(flopNote(1e9, 10, undefined, undefined), /PyTorch|peak/);
});

test.run();
