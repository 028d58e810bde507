import type { WebGPUBackend } from '@foliar/tensor';
import { UniformWriter } from '@foliar/tensor/internal';
import { measure } from '../lib/measure.js';
import type { Row } from '../lib/report.js';

const CHAINS = 12;
const ITERS = 256;
/** A measured batch of dispatches should take at least this long: below it the submit-and-wait round trip is what gets timed (on an H200 one FMA dispatch takes ~30 µs, the round trip ~1 ms). */
const MIN_BATCH_MS = 20;

/**
 * How many dispatches to queue per wait so that a batch takes >= MIN_BATCH_MS: doubles from one until it
 * does (at most 4,096). On lavapipe one dispatch already does; on a discrete GPU it takes hundreds.
 */
async function dispatchesPerBatch(one: () => void, sync: () => Promise<void>): Promise<number> {
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) one();
    await sync();
    const ms = performance.now() - t0;
    if (ms >= MIN_BATCH_MS || reps >= 4096) return reps;
    reps = Math.min(4096, reps * Math.max(2, Math.ceil(MIN_BATCH_MS / Math.max(ms, 1e-3))));
  }
}

/** Peak FMA rate through WGSL: 12 independent fma chains per invocation, unrolled. */
export async function fmaPeak(be: WebGPUBackend): Promise<Row> {
  const invocations = 64 * 1024;
  const out = be.alloc('float32', invocations);
  const body = Array.from({ length: CHAINS }, (_, c) => `    a${c} = fma(a${c}, m, k);`).join('\n');
  const decl = Array.from({ length: CHAINS }, (_, c) => `  var a${c} = f32(gid.x) * ${(c + 1) * 1e-7};`).join('\n');
  const sum = Array.from({ length: CHAINS }, (_, c) => `a${c}`).join(' + ');
  const wgsl = `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
struct U { iters: u32, m: f32, k: f32, pad: u32 };
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = u.m; let k = u.k;
${decl}
  for (var i = 0u; i < u.iters; i++) {
${body}
${body}
${body}
${body}
  }
  out[gid.x] = ${sum};
}`;
  const uni = new UniformWriter().u32(ITERS).f32(0.9999, 1e-4).u32(0).build();
  const one = () => be.rt.dispatch({ name: 'fma_peak', key: 'bench:fma_peak', wgsl: () => wgsl, buffers: [out.buffer], uniforms: uni, workgroups: [invocations / 64] });
  const reps = await dispatchesPerBatch(one, () => be.sync());
  const run = async () => {
    for (let i = 0; i < reps; i++) one();
    await be.sync();
  };
  const m = await measure('fma peak', run, { iterations: 10, time: 1000 });
  out.release();
  const flops = invocations * ITERS * 4 * CHAINS * 2 * reps;
  return { suite: 'peak', name: `WGSL FMA, ${CHAINS} chains`, medianMs: m.medianMs / reps, flops: flops / reps, rate: flops / m.medianMs / 1e6, unit: 'GFLOP/s', peakPct: 100, note: reps > 1 ? `${reps} dispatches per wait` : undefined };
}

/** Copy bandwidth: one mat4x4f (64 bytes) read and written per invocation. */
export async function copyPeak(be: WebGPUBackend): Promise<Row> {
  // 128 MiB each way where a binding allows it (well past any L2: an H200's is 60 MB), else the limit
  const bind = Number(be.rt.limits.maxStorageBufferBindingSize);
  const mats = Math.max(1 << 14, Math.min(1 << 21, 2 ** Math.floor(Math.log2(bind / 64))));
  const src = be.alloc('float32', mats * 16);
  const dst = be.alloc('float32', mats * 16);
  const wgsl = `
@group(0) @binding(0) var<storage, read> a: array<mat4x4<f32>>;
@group(0) @binding(1) var<storage, read_write> b: array<mat4x4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  let i = gid.x + gid.y * n.x * 64u;
  if (i < arrayLength(&b)) { b[i] = a[i]; }
}`;
  const groups = mats / 64;
  const one = () => be.rt.dispatch({ name: 'copy_peak', key: 'bench:copy_peak', wgsl: () => wgsl, buffers: [src.buffer, dst.buffer], workgroups: [Math.min(groups, 65535), Math.ceil(groups / 65535)] });
  const reps = await dispatchesPerBatch(one, () => be.sync());
  const run = async () => {
    for (let i = 0; i < reps; i++) one();
    await be.sync();
  };
  const m = await measure('copy bandwidth', run, { iterations: 10, time: 1000 });
  src.release();
  dst.release();
  const bytes = mats * 64 * 2 * reps;
  const note = `${(mats * 64) / 2 ** 20} MiB each way${reps > 1 ? `, ${reps} dispatches per wait` : ''}`;
  return { suite: 'peak', name: 'copy, mat4x4f per invocation', medianMs: m.medianMs / reps, bytes: bytes / reps, rate: bytes / m.medianMs / 1e6, unit: 'GB/s', peakPct: 100, note };
}
