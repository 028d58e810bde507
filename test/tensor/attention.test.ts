import { test } from '../harness.js';
import { shared, readGoldenOpsSync, setup, teardown, requireGpu, skip } from '../helpers.js';
import * as assert from 'uvu/assert';
import { cpuBackend, tensor, memory, resetPeakMemory, profile, setAttentionKernel, setMatmulSubgroupLanes, matmulSubgroupLanes, type Tensor, type WebGPUBackend } from '@foliar/tensor';
import { scaledDotProductAttention } from '../../packages/tensor/src/ops/attention/index.js';
import { prng } from '../prng.js';

// null (with a SKIP notice) without ../shared; an error instead under FOLIAR_REQUIRE_SHARED
const haveGolden = shared('golden/ops', 'golden ops') !== null;
const readGolden = readGoldenOpsSync;

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let scale = 0, err = 0, at = -1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= err)) { err = d; at = i; }
  }
  if (!(err <= tol * Math.max(scale, 1e-6))) {
    assert.unreachable(`${what}: max error ${err} at ${at} (got ${actual[at]}, want ${expected[at]}; scale ${scale}, tol ${tol})`);
  }
}

const rng = prng;
function randn(n: number, seed: number, std = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

const cpu = cpuBackend();

test.before(async () => {
  await setup();
});
test.after(() => teardown());

for (const name of ['sdpa_nomask', 'sdpa_causal', 'sdpa_cross']) {
  for (const [bname, implementation] of [['cpu', 'fused'], ['webgpu', 'fused'], ['cpu', 'math'], ['webgpu', 'math'], ['webgpu', 'auto']] as const) {
    test(`golden ${name} (${bname}, ${implementation})`, async () => {
      if (!haveGolden) skip(`golden ${name}: ../shared not found`, 'shared');
      const be = bname === 'cpu' ? cpu : requireGpu();
      const g = readGolden(name);
      const put = (n: string): Tensor => tensor(g.get(n)!.data, { backend: be, shape: g.get(n)!.shape });
      const q = put('q').requiresGrad_(), k = put('k').requiresGrad_(), v = put('v').requiresGrad_();
      const y = scaledDotProductAttention(q, k, v, { mask: name === 'sdpa_causal' ? 'causal' : null, implementation });
      close(await y.dataF32(), g.get('out')!.data, 1e-5, `${name} out`);
      y.backward(put('R'));
      for (const [t, gn] of [[q, 'grad_q'], [k, 'grad_k'], [v, 'grad_v']] as const) close(await t.grad!.dataF32(), g.get(gn)!.data, 3e-5, `${name} ${gn}`);
    });
  }
}

interface Case {
  tag: string;
  B: number;
  H: number;
  lq: number;
  lk: number;
  d: number;
  dv?: number;
  mask?: 'causal' | { shape: number[] };
  scale?: number;
}

/**
 * Same inputs on both backends and both implementations; compares out, dq, dk, dv of WebGPU fused,
 * WebGPU math and CPU math with the CPU fused reference kernel.
 */
async function crossCheck(c: Case, tol = 1e-4): Promise<void> {
  const dv = c.dv ?? c.d;
  const qs = [c.B, c.H, c.lq, c.d], ks = [c.B, c.H, c.lk, c.d], vs = [c.B, c.H, c.lk, dv];
  const n = (s: number[]): number => s.reduce((a, b) => a * b, 1);
  const qd = randn(n(qs), 1), kd = randn(n(ks), 2), vd = randn(n(vs), 3), rd = randn(c.B * c.H * c.lq * dv, 4);
  const md = c.mask && c.mask !== 'causal' ? randn(n(c.mask.shape), 5, 2) : null;
  if (md) for (let i = 0; i < md.length; i += 7) md[i] = -Infinity; // some fully blocked pairs
  const gpu = requireGpu('WebGPU vs CPU attention');
  const res: Float32Array[][] = [];
  const runs = [[cpu, 'fused'], [gpu, 'fused'], [gpu, 'math'], [cpu, 'math']] as const;
  for (const [be, implementation] of runs) {
    const q = tensor(qd, { backend: be, shape: qs }).requiresGrad_();
    const k = tensor(kd, { backend: be, shape: ks }).requiresGrad_();
    const v = tensor(vd, { backend: be, shape: vs }).requiresGrad_();
    const mask = c.mask === 'causal' ? 'causal' : md ? tensor(md, { backend: be, shape: (c.mask as { shape: number[] }).shape }) : null;
    const y = scaledDotProductAttention(q, k, v, { mask, scale: c.scale, implementation });
    y.backward(tensor(rd, { backend: be, shape: [c.B, c.H, c.lq, dv] }));
    res.push([await y.dataF32(), await q.grad!.dataF32(), await k.grad!.dataF32(), await v.grad!.dataF32()]);
  }
  for (let r = 1; r < runs.length; r++) {
    ['out', 'dq', 'dk', 'dv'].forEach((nm, i) => close(res[r]![i]!, res[0]![i]!, tol, `${c.tag} ${nm} (${runs[r]![0].name} ${runs[r]![1]} vs cpu fused)`));
  }
}

test('attention webgpu vs cpu: D 13 and 40, Lq 9 vs Lk 13, Dv != D', async () => {
  await crossCheck({ tag: 'd13 cross', B: 2, H: 3, lq: 9, lk: 13, d: 13 });
  await crossCheck({ tag: 'd40 cross', B: 1, H: 2, lq: 9, lk: 13, d: 40 });
  await crossCheck({ tag: 'd8 dv13', B: 1, H: 2, lq: 13, lk: 9, d: 8, dv: 13, scale: 0.3 });
  await crossCheck({ tag: 'lq1', B: 1, H: 1, lq: 1, lk: 70, d: 16 });
});

test('attention webgpu vs cpu: L 77 causal, D 64 / 80 / 160', async () => {
  await crossCheck({ tag: 'L77 causal d64', B: 1, H: 2, lq: 77, lk: 77, d: 64, mask: 'causal' });
  await crossCheck({ tag: 'L77 causal d80', B: 1, H: 1, lq: 77, lk: 77, d: 80, mask: 'causal' });
  await crossCheck({ tag: 'causal lq>lk', B: 1, H: 1, lq: 70, lk: 20, d: 8, mask: 'causal' });
  await crossCheck({ tag: 'd160', B: 1, H: 1, lq: 70, lk: 33, d: 160 });
});

test('attention webgpu vs cpu: additive masks (full and broadcast, with -inf)', async () => {
  await crossCheck({ tag: 'mask full', B: 2, H: 2, lq: 9, lk: 13, d: 13, mask: { shape: [2, 2, 9, 13] } });
  await crossCheck({ tag: 'mask [Lq, Lk]', B: 2, H: 3, lq: 11, lk: 7, d: 8, mask: { shape: [11, 7] } });
  await crossCheck({ tag: 'mask [B, 1, 1, Lk]', B: 2, H: 3, lq: 70, lk: 77, d: 40, mask: { shape: [2, 1, 1, 77] } });
});

const SMALL_HEADS: Case[] = [
  { tag: 'sg d8 lq37 lk29', B: 2, H: 3, lq: 37, lk: 29, d: 8 },
  { tag: 'sg d16 lq 70 lk 77', B: 1, H: 2, lq: 70, lk: 77, d: 16, scale: 0.7 },
  { tag: 'sg d12 dv4', B: 1, H: 2, lq: 13, lk: 9, d: 12, dv: 4 },
  { tag: 'sg d5 dv13 (scalar rows)', B: 1, H: 2, lq: 11, lk: 19, d: 5, dv: 13 },
  { tag: 'sg lq1', B: 1, H: 1, lq: 1, lk: 70, d: 16 },
  { tag: 'sg causal lq>lk', B: 1, H: 2, lq: 70, lk: 21, d: 8, mask: 'causal' },
  { tag: 'sg causal', B: 2, H: 1, lq: 33, lk: 33, d: 16, mask: 'causal' },
  { tag: 'sg mask [B,1,1,Lk]', B: 2, H: 3, lq: 19, lk: 77, d: 8, mask: { shape: [2, 1, 1, 77] } },
  { tag: 'sg mask full', B: 1, H: 2, lq: 9, lk: 13, d: 16, mask: { shape: [1, 2, 9, 13] } },
];

// heads up to 16 wide run the subgroup kernel on adapters that want broadcasts (lavapipe); every other
// adapter can force it where it has subgroups. Both broadcast widths it claims, and the row kernel too.
test('attention subgroup kernel (heads up to 16) vs cpu at 8 and 4 lanes, the row kernel too; the path taken is the one asked for', async () => {
  const gpu = requireGpu('the subgroup attention kernel') as WebGPUBackend;
  const natural = matmulSubgroupLanes(gpu);
  if (natural === null) return skip('the adapter has no subgroups of 4+ lanes', 'adapter');
  const configs: { kernel: 'subgroup' | 'rows'; lanes?: 4 | 8 }[] = [{ kernel: 'subgroup', lanes: natural }, { kernel: 'rows' }];
  if (natural === 8) configs.push({ kernel: 'subgroup', lanes: 4 });
  try {
    for (const cfg of configs) {
      setAttentionKernel(gpu, cfg.kernel);
      setMatmulSubgroupLanes(gpu, cfg.lanes);
      for (const c of SMALL_HEADS) await crossCheck({ ...c, tag: `${c.tag} [${cfg.kernel}${cfg.lanes ? ` ${cfg.lanes} lanes` : ''}]` });
      const q = tensor(randn(2 * 37 * 8, 1), { backend: gpu, shape: [1, 2, 37, 8] }).requiresGrad_();
      const { report } = await profile(async () => {
        const y = scaledDotProductAttention(q, q, q, { implementation: 'fused' });
        y.sum().backward();
        await q.grad!.dataF32();
      });
      const ops = report.byOp.map((r) => r.name);
      const want = cfg.kernel === 'subgroup' ? ['attention_sg_forward', 'attention_sg_backward_dq', 'attention_sg_backward_dkv'] : ['attention_forward', 'attention_backward_dq', 'attention_backward_dkv'];
      for (const w of want) assert.ok(ops.includes(w), `${cfg.kernel}: ${w} not dispatched (ops: ${ops.join(', ')})`);
    }
  } finally {
    setAttentionKernel(gpu, undefined);
    setMatmulSubgroupLanes(gpu, undefined);
  }
});

/**
 * q, k, v as the models make them: heads split from [B, L, H·D] by a view (read in place, outputs and
 * gradients written in the interleaved layout), or k and v narrowed from one [B, Lk, H·(D + Dv)]
 * tensor (read in place, gradients contiguous). Every backend and kernel against CPU math.
 */
async function crossCheckLayouts(c: Case & { kv: 'split' | 'narrow' }, kernels: ('subgroup' | 'rows')[]): Promise<void> {
  const dv = c.dv ?? c.d;
  const gpu = requireGpu('attention layouts') as WebGPUBackend;
  const xqd = randn(c.B * c.lq * c.H * c.d, 21), xkd = randn(c.B * c.lk * c.H * (c.d + dv), 22), rd = randn(c.B * c.H * c.lq * dv, 23);
  const run = async (be: typeof cpu | WebGPUBackend, implementation: 'fused' | 'math'): Promise<Float32Array[]> => {
    const xq = tensor(xqd, { backend: be, shape: [c.B, c.lq, c.H * c.d] }).requiresGrad_();
    const xkv = tensor(xkd, { backend: be, shape: [c.B, c.lk, c.H * (c.d + dv)] }).requiresGrad_();
    const heads = (x: Tensor, l: number, d: number): Tensor => x.reshape([c.B, l, c.H, d]).permute([0, 2, 1, 3]);
    const q = heads(xq, c.lq, c.d);
    const k = heads(c.kv === 'narrow' ? xkv.narrow(2, 0, c.H * c.d) : xkv.narrow(2, 0, c.H * c.d).contiguous(), c.lk, c.d);
    const v = heads(xkv.narrow(2, c.H * c.d, c.H * dv), c.lk, dv);
    const mask = c.mask === 'causal' ? 'causal' : null;
    const y = scaledDotProductAttention(q, k, v, { mask, implementation });
    // merged back as the models do: [B, H, Lq, Dv] -> [B, Lq, H·Dv]
    const merged = y.permute([0, 2, 1, 3]).reshape([c.B, c.lq, c.H * dv]);
    merged.backward(tensor(rd, { backend: be, shape: [c.B, c.lq, c.H * dv] }));
    return [await merged.dataF32(), await xq.grad!.dataF32(), await xkv.grad!.dataF32()];
  };
  const ref = await run(cpu, 'math');
  const got: [string, Float32Array[]][] = [['cpu fused', await run(cpu, 'fused')]];
  try {
    for (const kernel of kernels) {
      setAttentionKernel(gpu, kernel);
      got.push([`webgpu fused ${kernel}`, await run(gpu, 'fused')]);
    }
  } finally {
    setAttentionKernel(gpu, undefined);
  }
  got.push(['webgpu math', await run(gpu, 'math')]);
  for (const [name, r] of got) ['out', 'dxq', 'dxkv'].forEach((nm, i) => close(r[i]!, ref[i]!, 1e-4, `${c.tag} ${nm} (${name} vs cpu math)`));
}

test('attention reads heads split by views in place and writes outputs and gradients in their layout (both kernels, both backends)', async () => {
  const gpu = requireGpu('attention layouts') as WebGPUBackend;
  const kernels: ('subgroup' | 'rows')[] = matmulSubgroupLanes(gpu) === null ? ['rows'] : ['subgroup', 'rows'];
  await crossCheckLayouts({ tag: 'split d8', B: 2, H: 3, lq: 37, lk: 29, d: 8, kv: 'split' }, kernels);
  await crossCheckLayouts({ tag: 'narrow d16 causal', B: 2, H: 2, lq: 21, lk: 21, d: 16, kv: 'narrow', mask: 'causal' }, kernels);
  await crossCheckLayouts({ tag: 'narrow d5 dv7 (scalar rows)', B: 1, H: 3, lq: 9, lk: 13, d: 5, dv: 7, kv: 'narrow' }, kernels);
  await crossCheckLayouts({ tag: 'split d40 (row kernel only)', B: 1, H: 2, lq: 17, lk: 77, d: 40, kv: 'split' }, kernels);
});

test('attention matches a composed softmax(QK^T)V on CPU (independent of the fused kernels)', async () => {
  const [B, H, L, S, D] = [1, 2, 5, 6, 4];
  const qd = randn(B * H * L * D, 9), kd = randn(B * H * S * D, 10), vd = randn(B * H * S * D, 11);
  const q = tensor(qd, { backend: cpu, shape: [B, H, L, D] }), k = tensor(kd, { backend: cpu, shape: [B, H, S, D] });
  const v = tensor(vd, { backend: cpu, shape: [B, H, S, D] });
  const ref = q.matmul(k.transpose(-1, -2)).mul(1 / Math.sqrt(D)).softmax(-1).matmul(v);
  close(await scaledDotProductAttention(q, k, v).dataF32(), await ref.dataF32(), 1e-6, 'composed');
});

test('attention at L=4096, D=64, B*H=2 never allocates an [L, L] buffer (forward and backward)', async () => {
  const gpu = requireGpu();
  const [B, H, L, D] = [1, 2, 4096, 64];
  const n = B * H * L * D;
  const q = tensor(randn(n, 1), { backend: gpu, shape: [B, H, L, D] }).requiresGrad_();
  const k = tensor(randn(n, 2), { backend: gpu, shape: [B, H, L, D] }).requiresGrad_();
  const v = tensor(randn(n, 3), { backend: gpu, shape: [B, H, L, D] }).requiresGrad_();
  const r = tensor(randn(n, 4), { backend: gpu, shape: [B, H, L, D] });
  await gpu.sync();
  const before = memory(gpu).liveBytes;
  resetPeakMemory(gpu);
  const y = scaledDotProductAttention(q, k, v, { mask: 'causal' });
  y.backward(r);
  const dq = await q.grad!.dataF32();
  const peak = memory(gpu).peakBytes - before;
  // out + lse + dq/dk/dv + Di + small temporaries; one L*L f32 matrix alone would be 64 MiB
  assert.ok(peak < 4 * L * L, `attention peak ${peak} bytes above the inputs`);
  assert.ok(peak < 16 * n * 4, `attention peak ${peak} bytes is not linear in L`);
  // spot-check one query row's output against a CPU recomputation in f64
  const [qh, kh, vh, yh] = await Promise.all([q.dataF32(), k.dataF32(), v.dataF32(), y.dataF32()]);
  for (const i of [0, 1, 2047, 4095]) {
    const s = new Float64Array(i + 1);
    let mx = -Infinity;
    for (let j = 0; j <= i; j++) {
      let acc = 0;
      for (let c = 0; c < D; c++) acc += qh[i * D + c]! * kh[j * D + c]!;
      s[j] = acc / Math.sqrt(D);
      mx = Math.max(mx, s[j]!);
    }
    let l = 0;
    const o = new Float64Array(D);
    for (let j = 0; j <= i; j++) {
      const p = Math.exp(s[j]! - mx);
      l += p;
      for (let c = 0; c < D; c++) o[c]! += p * vh[j * D + c]!;
    }
    close(yh.subarray(i * D, (i + 1) * D), Array.from(o, (x) => x / l), 1e-4, `row ${i}`);
  }
  assert.ok(dq.every(Number.isFinite), 'dq finite');
});

test('attention argument errors name the op and shapes', () => {
  const q = tensor(new Float32Array(2 * 3 * 4 * 8), { backend: cpu, shape: [2, 3, 4, 8] });
  const k = tensor(new Float32Array(2 * 3 * 5 * 7), { backend: cpu, shape: [2, 3, 5, 7] });
  assert.throws(() => scaledDotProductAttention(q, k, k), /scaledDotProductAttention: k \[2, 3, 5, 7\] does not fit q \[2, 3, 4, 8\]/);
  const m = tensor(new Float32Array(6), { backend: cpu, shape: [2, 3] });
  assert.throws(() => scaledDotProductAttention(q, q, q, { mask: m }), /mask \[2, 3\] does not broadcast/);
});

test.run();
