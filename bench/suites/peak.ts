import { type WebGPUBackend, UniformWriter } from '@foliar/tensor';
import { measure } from '../lib/measure.js';
import type { Row } from '../lib/report.js';

const CHAINS = 12;
const ITERS = 256;

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
  const run = async () => {
    be.rt.dispatch({ name: 'fma_peak', key: 'bench:fma_peak', wgsl: () => wgsl, buffers: [out.buffer], uniforms: uni, workgroups: [invocations / 64] });
    await be.sync();
  };
  const m = await measure('fma peak', run, { iterations: 10, time: 1000 });
  out.release();
  const flops = invocations * ITERS * 4 * CHAINS * 2;
  return { suite: 'peak', name: `WGSL FMA, ${CHAINS} chains`, medianMs: m.medianMs, flops, rate: flops / m.medianMs / 1e6, unit: 'GFLOP/s', peakPct: 100 };
}

/** Copy bandwidth: one mat4x4f (64 bytes) read and written per invocation. */
export async function copyPeak(be: WebGPUBackend): Promise<Row> {
  const mats = 1 << 18; // 16 MiB each way
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
  const run = async () => {
    be.rt.dispatch({ name: 'copy_peak', key: 'bench:copy_peak', wgsl: () => wgsl, buffers: [src.buffer, dst.buffer], workgroups: [Math.min(groups, 65535), Math.ceil(groups / 65535)] });
    await be.sync();
  };
  const m = await measure('copy bandwidth', run, { iterations: 10, time: 1000 });
  src.release();
  dst.release();
  const bytes = mats * 64 * 2;
  return { suite: 'peak', name: 'copy, mat4x4f per invocation', medianMs: m.medianMs, bytes, rate: bytes / m.medianMs / 1e6, unit: 'GB/s', peakPct: 100 };
}
