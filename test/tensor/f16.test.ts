/**
 * float16 weights (issue 16): the cast op against io/half.ts's reference encoder (bit-exact on both
 * backends, strided inputs, writes into f16 views), its gradient, the f16 boundary of the backends
 * (elementwise ops on f16 give f32, data movement keeps f16), the hot kernels reading f16 weights in
 * place (matmul / linear in every variant, conv2d in both variants, forward and input gradient,
 * group / layer norm affine params) against the CPU reference on random shapes that are not tile
 * multiples, backward through frozen and trainable f16 weights, half the bytes per parameter,
 * optimizers refusing f16, and no buffer leaks.
 *
 * Tolerances: WebGPU and the CPU read the same f16 values and both accumulate in f32 (the CPU in
 * f64 then rounded), so they differ only by f32 summation order: 1e-5 relative to √k-scaled sums.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import * as ft from '@foliar/tensor';
import { Linear, Module, AdamW, SGD } from '@foliar/nn';
import { setMatmulVariant, matmulVariants, f32ToF16, f16ToF32, type Backend, type Tensor } from '@foliar/tensor';
import { setConvVariant, convVariants } from '../../packages/tensor/src/ops/conv/webgpu.js';
import type { WebGPUBackend } from '../../packages/tensor/src/backends/webgpu/webgpu-backend.js';
import { setup, teardown, backends, randArray, assertThrowsWith } from '../helpers.js';

const test = suite('float16');
test.before(async () => { await setup(); });
test.after(() => teardown());

function maxErr(a: Float32Array, b: Float32Array): number {
  assert.is(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A handle on backend `be` holding `data` (shape `shape`), cast to f16 when asked. */
function on(be: Backend, data: Float32Array, shape: number[], half = false): Tensor {
  const t = ft.fromTyped(data, shape, be);
  if (!half) return t;
  const h = t.half();
  t.dispose();
  return h;
}

const SPECIAL = [0, -0, 1, -2, 0.1, 1 / 3, 65504, 65519.99, 65520, 1e6, -1e6, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1e-8, 6.1e-5, Infinity, -Infinity, NaN, 1 + 2 ** -11, 1 + 3 * 2 ** -11];

test('cast f32 -> f16 -> f32 is bit-exact with io/half.ts on both backends (round to nearest even, subnormals, overflow, NaN)', async () => {
  const { cpu, gpu } = backends();
  const vals = new Float32Array([...SPECIAL, ...randArray(997, 3, -70000, 70000), ...randArray(500, 4, -1e-4, 1e-4)]);
  const want = f32ToF16(vals);
  for (const be of [cpu, gpu]) {
    const h = on(be, vals, [vals.length], true);
    assert.is(h.dtype, 'float16');
    const bits = (await h.data()) as Uint16Array;
    assert.ok(bits instanceof Uint16Array, 'data() of f16 is its bit patterns');
    for (let i = 0; i < vals.length; i++) {
      if (Number.isNaN(vals[i]!)) assert.ok((bits[i]! & 0x7c00) === 0x7c00 && (bits[i]! & 0x3ff) !== 0, `${be.name}: NaN stays NaN`);
      else if (bits[i] !== want[i]) assert.unreachable(`${be.name}: ${vals[i]} -> 0x${bits[i]!.toString(16)}, want 0x${want[i]!.toString(16)}`);
    }
    const back = await h.float().dataF32();
    const exact = f16ToF32(want);
    for (let i = 0; i < vals.length; i++) {
      if (!Number.isNaN(exact[i]!) && !Object.is(back[i], exact[i])) assert.unreachable(`${be.name}: f16 -> f32 of 0x${want[i]!.toString(16)} gave ${back[i]}, want ${exact[i]}`);
    }
    assert.equal(Array.from(await h.dataF32()), Array.from(back), 'dataF32() decodes');
    h.dispose();
  }
});

test('cast reads strided f16 views; contiguous / cat / pad of f16 stay f16; elementwise ops on f16 give f32', async () => {
  const { cpu, gpu } = backends();
  const x = randArray(3 * 5 * 7, 11);
  const res: Float32Array[][] = [];
  for (const be of [cpu, gpu]) {
    const h = on(be, x, [3, 5, 7], true);
    const t = h.permute(2, 0, 1).narrow(1, 1, 2);
    const c = t.contiguous();
    assert.is(c.dtype, 'float16', 'contiguous keeps f16');
    const cat = ft.cat([h, h.narrow(0, 1, 1)], 0);
    assert.is(cat.dtype, 'float16', 'cat keeps f16');
    const pad = h.pad([1, 2], 0.5);
    assert.is(pad.dtype, 'float16', 'pad keeps f16');
    const y = h.mul(2).add(h.exp());
    assert.is(y.dtype, 'float32', 'arithmetic gives f32');
    const s = h.sum(1);
    assert.is(s.dtype, 'float32');
    res.push([await c.dataF32(), await cat.dataF32(), await pad.dataF32(), await y.dataF32(), await s.dataF32(), await t.float().dataF32()]);
    for (const u of [h, t, c, cat, pad, y, s]) u.dispose();
  }
  const names = ['contiguous', 'cat', 'pad', 'mul/add/exp', 'sum', 'strided cast'];
  for (let i = 0; i < names.length; i++) assert.ok(maxErr(res[0]![i]!, res[1]![i]!) <= 1e-6 * (i === 3 || i === 4 ? 10 : 0) + 0, `${names[i]}: WebGPU = CPU (${maxErr(res[0]![i]!, res[1]![i]!)})`);
  // against host truth: the permuted, narrowed view
  const r = f16ToF32(f32ToF16(x));
  const want: number[] = [];
  for (let k = 0; k < 7; k++) for (let i = 1; i < 3; i++) for (let j = 0; j < 5; j++) want.push(r[(i * 5 + j) * 7 + k]!);
  assert.equal(Array.from(res[1]![0]!), want, 'contiguous of a strided f16 view');
});

test('cast backward: the gradient is cast back (f32 for an f16 leaf, which may require grad)', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const x = on(be, randArray(37, 5), [37]).requiresGrad_();
    const r = randArray(37, 6);
    const y = x.half().float().mul(on(be, r, [37])).sum();
    y.backward();
    assert.equal(Array.from(await x.grad!.dataF32()), Array.from(r), `${be.name}: d(x.half().float())/dx = 1`);
    const h = on(be, randArray(12, 7), [3, 4], true).requiresGrad_();
    h.float().mul(3).sum().backward();
    assert.is(h.grad!.dtype, 'float32', 'f16 leaf gets an f32 gradient');
    assert.equal(Array.from(await h.grad!.dataF32()), new Array(12).fill(3));
    for (const t of [x, y, h]) t.dispose();
  }
});

test('matmul and linear read f16 weights in every variant: WebGPU = CPU on shapes that are not tile multiples, with bias, forward and backward', async () => {
  const { cpu, gpu } = backends();
  const shapes: [number, number, number][] = [[5, 7, 3], [33, 70, 37], [64, 64, 64], [1, 130, 9], [65, 9, 68], [8, 16, 12]];
  const variants = backends().hasGpu ? matmulVariants(gpu as WebGPUBackend) : [];
  try {
    for (const v of variants) {
      setMatmulVariant(gpu as WebGPUBackend, v);
      let seed = 100;
      for (const [m, k, n] of shapes) {
        const x = randArray(m * k, seed++), w = randArray(n * k, seed++), b = randArray(n, seed++), g = randArray(m * n, seed++), w2 = randArray(k * n, seed++);
        const out: Float32Array[][] = [];
        for (const be of [cpu, gpu]) {
          const X = on(be, x, [m, k]).requiresGrad_();
          const W = on(be, w, [n, k], true); // frozen f16 base weight
          const B = on(be, b, [n], true).requiresGrad_(); // trainable f16 bias: f32 gradient
          const y = ft.linear(X, W, B);
          y.mul(on(be, g, [m, n])).sum().backward();
          const W2 = on(be, w2, [k, n], true).requiresGrad_();
          const z = X.detach().matmul(W2);
          z.mul(on(be, g, [m, n])).sum().backward();
          assert.is(W2.grad!.dtype, 'float32');
          out.push([await y.dataF32(), await X.grad!.dataF32(), await B.grad!.dataF32(), await z.dataF32(), await W2.grad!.dataF32()]);
          for (const t of [X, W, B, y, W2, z]) t.dispose();
        }
        const tol = 1e-5 * Math.sqrt(Math.max(k, m, n)) * 4;
        ['linear', 'dx through frozen f16 W', 'dbias (f16 bias)', 'x @ W2 (f16 B, not transposed)', 'dW2 (f16 weight, f32 grad)'].forEach((name, i) => {
          const e = maxErr(out[0]![i]!, out[1]![i]!);
          assert.ok(e <= tol, `${v} ${m}x${k}x${n} ${name}: max |WebGPU - CPU| ${e} > ${tol}`);
        });
      }
    }
  } finally {
    if (variants.length) setMatmulVariant(gpu as WebGPUBackend, undefined);
  }
});

test('batched matmul against a broadcast f16 weight, and convTranspose2d with f16 weights: WebGPU = CPU', async () => {
  const { cpu, gpu } = backends();
  const x = randArray(3 * 5 * 19, 41), w = randArray(19 * 13, 42), cx = randArray(2 * 6 * 5 * 7, 43), cw = randArray(6 * 4 * 3 * 3, 44);
  const out: Float32Array[][] = [];
  for (const be of [cpu, gpu]) {
    const X = on(be, x, [3, 5, 19]).requiresGrad_();
    const W = on(be, w, [19, 13], true);
    const y = X.matmul(W);
    y.sum().backward();
    const CX = on(be, cx, [2, 6, 5, 7]).requiresGrad_();
    const CW = on(be, cw, [6, 4, 3, 3], true);
    const cy = ft.convTranspose2d(CX, CW, on(be, randArray(4, 45), [4], true), { stride: 2, padding: 1, outputPadding: 1 });
    cy.square().sum().backward();
    out.push([await y.dataF32(), await X.grad!.dataF32(), await cy.dataF32(), await CX.grad!.dataF32()]);
    for (const t of [X, W, y, CX, CW, cy]) t.dispose();
  }
  ['batched matmul', 'its dx', 'convTranspose2d', 'its dx'].forEach((name, i) => {
    const e = maxErr(out[0]![i]!, out[1]![i]!);
    assert.ok(e <= 1e-4, `${name}: max |WebGPU - CPU| ${e}`);
  });
});

test('f16 weights compute what f32 weights holding the same (rounded) values compute', async () => {
  const { gpu } = backends();
  const [m, k, n] = [17, 40, 24];
  const x = randArray(m * k, 1), w = f16ToF32(f32ToF16(randArray(n * k, 2))), b = f16ToF32(f32ToF16(randArray(n, 3)));
  const X = on(gpu, x, [m, k]);
  const y16 = await ft.linear(X, on(gpu, w, [n, k], true), on(gpu, b, [n], true)).dataF32();
  const y32 = await ft.linear(X, on(gpu, w, [n, k]), on(gpu, b, [n])).dataF32();
  assert.ok(maxErr(y16, y32) <= 1e-6, `same values, same result (${maxErr(y16, y32)})`);
});

test('conv2d reads f16 weights and bias in both variants: forward and input gradient, WebGPU = CPU', async () => {
  const { cpu, gpu } = backends();
  // n c h w k kh stride pad groups
  const cases: [number, number, number, number, number, number, number, number, number][] = [
    [2, 8, 9, 11, 12, 3, 1, 1, 1], [1, 4, 16, 16, 8, 3, 2, 1, 1], [2, 6, 7, 5, 9, 1, 1, 0, 1],
    [1, 3, 13, 10, 5, 3, 1, 1, 1], [2, 8, 8, 8, 8, 3, 1, 1, 2], [1, 16, 12, 12, 16, 3, 2, 1, 1], [1, 8, 6, 6, 4, 1, 1, 0, 1],
  ];
  const variants = backends().hasGpu ? convVariants(gpu as WebGPUBackend) : [];
  try {
    for (const v of variants) {
      setConvVariant(gpu as WebGPUBackend, v);
      let seed = 300;
      for (const [n, c, h, w, k, kh, st, pad, g] of cases) {
        const ho = Math.floor((h + 2 * pad - kh) / st) + 1, wo = Math.floor((w + 2 * pad - kh) / st) + 1;
        const x = randArray(n * c * h * w, seed++), wt = randArray(k * (c / g) * kh * kh, seed++), b = randArray(k, seed++), gr = randArray(n * k * ho * wo, seed++);
        const out: Float32Array[][] = [];
        for (const be of [cpu, gpu]) {
          const X = on(be, x, [n, c, h, w]).requiresGrad_();
          const W = on(be, wt, [k, c / g, kh, kh], true);
          const B = on(be, b, [k], true);
          const y = ft.conv2d(X, W, B, { stride: st, padding: pad, groups: g });
          y.mul(on(be, gr, [n, k, ho, wo])).sum().backward();
          out.push([await y.dataF32(), await X.grad!.dataF32()]);
          for (const t of [X, W, B, y]) t.dispose();
        }
        const tol = 1e-5 * Math.sqrt(c * kh * kh) * 4;
        ['forward', 'input gradient'].forEach((name, i) => {
          const e = maxErr(out[0]![i]!, out[1]![i]!);
          assert.ok(e <= tol, `${v} ${[n, c, h, w, k, kh, st, pad, g].join('x')} ${name}: max |WebGPU - CPU| ${e} > ${tol}`);
        });
      }
    }
  } finally {
    if (variants.length) setConvVariant(gpu as WebGPUBackend, undefined);
  }
});

test('group / layer norm read f16 affine params (with the fused SiLU too); trainable f16 params get f32 gradients', async () => {
  const { cpu, gpu } = backends();
  const [N, C, H, W] = [2, 12, 5, 7];
  for (const kind of ['groupNorm', 'groupNormSilu', 'layerNorm'] as const) {
    const x = randArray(N * C * H * W, 21), w = randArray(C, 22), b = randArray(C, 23), g = randArray(N * C * H * W, 24);
    const out: Float32Array[][] = [];
    for (const be of [cpu, gpu]) {
      const X = on(be, x, kind === 'layerNorm' ? [N, H * W, C] : [N, C, H, W]).requiresGrad_();
      const Wt = on(be, w, [C], true).requiresGrad_();
      const B = on(be, b, [C], true).requiresGrad_();
      const y = kind === 'groupNorm' ? ft.groupNorm(X, 3, Wt, B) : kind === 'groupNormSilu' ? ft.groupNormSilu(X, 3, Wt, B) : ft.layerNorm(X, [C], Wt, B);
      y.mul(on(be, g, [...y.shape])).sum().backward();
      assert.is(Wt.grad!.dtype, 'float32');
      out.push([await y.dataF32(), await X.grad!.dataF32(), await Wt.grad!.dataF32(), await B.grad!.dataF32()]);
      for (const t of [X, Wt, B, y]) t.dispose();
    }
    ['y', 'dx', 'dweight', 'dbias'].forEach((name, i) => {
      const e = maxErr(out[0]![i]!, out[1]![i]!);
      assert.ok(e <= 1e-5, `${kind} ${name}: max |WebGPU - CPU| ${e}`);
    });
  }
});

class Tiny extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(be: Backend) {
    super();
    this.fc1 = this.module('fc1', new Linear(64, 96, { backend: be }));
    this.fc2 = this.module('fc2', new Linear(96, 10, { backend: be }));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).relu());
  }
}

test('module.to({ dtype }) halves the parameter bytes (memory stats), keeps names and requiresGrad, runs, and converts back', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const m = new Tiny(be);
    const x = on(be, randArray(5 * 64, 9), [5, 64]);
    const fwd = async (): Promise<Float32Array> => {
      const y = ft.tidy(() => ft.noGrad(() => m.forward(x)));
      const d = await y.dataF32();
      y.dispose();
      return d;
    };
    const y32 = await fwd();
    const bytes = (): number => { be.flush(); return be.memory().liveBytes; };
    const before = bytes();
    const nParams = m.numParameters();
    const ret = m.to({ dtype: 'float16' });
    assert.is(ret, m, 'returns the module (synchronously)');
    const after = bytes();
    // WebGPU buffers come in 256-byte size classes: allow that much per parameter tensor
    const slack = be.name === 'cpu' ? 0 : 256 * m.parameters().length;
    assert.ok(Math.abs(before - after - nParams * 2) <= slack, `${be.name}: ${nParams} parameters freed 2 bytes each (${before} -> ${after})`);
    for (const [name, p] of m.namedParameters()) {
      assert.is(p.dtype, 'float16', name);
      assert.ok(p.requiresGrad, `${name} still requires grad`);
    }
    assert.is(m.fc1.weight.dtype, 'float16', 'the field is the converted tensor');
    const y16 = await fwd();
    const e = maxErr(y16, y32);
    assert.ok(e > 0 && e < 5e-3, `${be.name}: f16 weights change the output by weight rounding only (${e})`);
    m.to({ dtype: 'float32' });
    assert.is(bytes(), before, 'back to f32: the same bytes as before');
    m.dispose();
    x.dispose();
  }
});

test('optimizers refuse f16 parameters by name; the in-place update kernels refuse f16 storage', () => {
  const { gpu } = backends();
  const m = new Tiny(gpu).to({ dtype: 'float16' });
  assertThrowsWith(() => new AdamW(m.parameters()), [/float16/, /fc1\.weight|weight/, /LoRA|float32/], 'AdamW on f16');
  assertThrowsWith(() => new SGD(m.parameters()), [/float16/], 'SGD on f16');
  m.requiresGrad_(false);
  // frozen f16 base + trainable f32 head: fine
  const head = new Linear(10, 3, { backend: gpu });
  const opt = new AdamW(head.parameters());
  const y = head.forward(ft.noGrad(() => m.forward(on(gpu, randArray(2 * 64, 1), [2, 64])))).sum();
  y.backward();
  opt.step();
  assert.is(head.weight.dtype, 'float32');
  m.dispose();
  head.dispose();
});

test('no buffer leaks: f16 forward / backward, casts and the boundary release what they allocate', async () => {
  const { cpu, gpu } = backends();
  for (const be of [cpu, gpu]) {
    const W = on(be, randArray(24 * 40, 1), [24, 40], true);
    const B = on(be, randArray(24, 2), [24], true);
    const K = on(be, randArray(6 * 4 * 9, 3), [6, 4, 3, 3], true);
    const run = async (): Promise<void> => {
      const x = on(be, randArray(7 * 40, 4), [7, 40]).requiresGrad_();
      const img = on(be, randArray(2 * 4 * 6 * 6, 5), [2, 4, 6, 6]).requiresGrad_();
      ft.tidy(() => {
        ft.linear(x, W, B).relu().sum().add(ft.conv2d(img, K, null, { padding: 1 }).sum()).add(W.sum()).backward();
        return [];
      });
      await x.grad!.data();
      await img.grad!.data();
      x.dispose();
      img.dispose();
    };
    await run();
    be.flush();
    const base = be.memory().liveBuffers;
    for (let i = 0; i < 3; i++) await run();
    await be.sync();
    assert.is(be.memory().liveBuffers, base, `${be.name}: live buffers back to ${base}`);
    for (const t of [W, B, K]) t.dispose();
  }
});

test.run();
