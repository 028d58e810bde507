import { registerKernel } from '../../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf } from '../webgpu-backend.js';
import type { MatmulAttrs } from '../../kernel-attrs.js';
import { subgroupMatmulWgsl, SG_ROWS, SG_LANES } from './matmul-subgroup.js';

export type MatmulVariant = 'base' | 'subgroup';

/** Variant per adapter: the subgroup-broadcast kernel on software adapters with 8-wide subgroups. */
export function chooseMatmulVariant(be: WebGPUBackend): MatmulVariant {
  const forced = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.FOLIAR_MATMUL_VARIANT;
  if (forced === 'base' || forced === 'subgroup') return forced === 'subgroup' && !be.rt.subgroups ? 'base' : forced;
  return be.rt.subgroups && be.rt.info.isSoftware && be.rt.subgroupSize === 8 ? 'subgroup' : 'base';
}

/**
 * Baseline matmul: each invocation owns a 4x4 block of C, operands read straight from storage
 * (transposes folded into the index arithmetic). Faster per-adapter variants live in
 * matmul-variants.ts and are chosen by measurement.
 */
const TS = 4;
const WGX = 8, WGY = 8;

function genWgsl(transA: boolean, transB: boolean): string {
  const aIdx = transA ? '(kk) * u.m + (row)' : '(row) * u.k + (kk)';
  const bIdx = transB ? '(col) * u.k + (kk)' : '(kk) * u.n + (col)';
  return `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
struct U { m: u32, n: u32, k: u32, batch: u32, aoff: u32, boff: u32, abs: u32, bbs: u32 };
@group(0) @binding(3) var<uniform> u: U;
fn a_at(base: u32, row: u32, kk: u32) -> f32 { if (row >= u.m) { return 0.0; } return A[base + ${aIdx.replace(/\(row\)/g, 'row').replace(/\(kk\)/g, 'kk')}]; }
fn b_at(base: u32, kk: u32, col: u32) -> f32 { if (col >= u.n) { return 0.0; } return B[base + ${bIdx.replace(/\(col\)/g, 'col').replace(/\(kk\)/g, 'kk')}]; }
@compute @workgroup_size(${WGX}, ${WGY}, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let row0 = gid.y * ${TS}u;
  let col0 = gid.x * ${TS}u;
  if (row0 >= u.m || col0 >= u.n) { return; }
  let ab = u.aoff + b * u.abs;
  let bb = u.boff + b * u.bbs;
  var acc: array<vec4<f32>, ${TS}>;
  for (var kk = 0u; kk < u.k; kk++) {
    let bv = vec4<f32>(b_at(bb, kk, col0), b_at(bb, kk, col0 + 1u), b_at(bb, kk, col0 + 2u), b_at(bb, kk, col0 + 3u));
    for (var i = 0u; i < ${TS}u; i++) {
      acc[i] += a_at(ab, row0 + i, kk) * bv;
    }
  }
  let cb = b * u.m * u.n;
  for (var i = 0u; i < ${TS}u; i++) {
    let r = row0 + i;
    if (r >= u.m) { break; }
    for (var j = 0u; j < ${TS}u; j++) {
      if (col0 + j < u.n) { C[cb + r * u.n + col0 + j] = acc[i][j]; }
    }
  }
}`;
}

registerKernel<WebGPUBackend>('webgpu', 'matmul', (be, [a, b], attrs) => {
  const p = attrs as unknown as MatmulAttrs;
  const out = be.alloc('float32', p.batch * p.m * p.n);
  if (p.batch * p.m * p.n === 0) return out;
  if (p.k === 0) {
    be.run('elementwise', [], { op: 'fill', params: [0], shape: [p.batch * p.m * p.n], out: { storage: out, shape: [p.batch * p.m * p.n], strides: [1], offset: 0, dtype: 'float32' } });
    return out;
  }
  const variant = be.matmulVariant ?? (be.matmulVariant = chooseMatmulVariant(be));
  if (variant === 'subgroup') {
    const vecB = !p.transB && p.n % 4 === 0 && b!.offset % 4 === 0 && p.bBatchStride % 4 === 0;
    const groups = p.n >= 64 ? 2 : 1;
    const key = `matmul:sg:${p.transA}:${p.transB}:${groups}:${vecB}`;
    be.rt.dispatch({
      name: 'matmul',
      key,
      wgsl: () => subgroupMatmulWgsl({ transA: p.transA, transB: p.transB, groups, vecB }),
      buffers: [bufferOf(a!), bufferOf(b!), out.buffer],
      uniforms: new UniformWriter().u32(p.m, p.n, p.k, p.batch, a!.offset, b!.offset, p.aBatchStride, p.bBatchStride).build(),
      workgroups: [Math.ceil(p.n / (SG_LANES * 4 * groups)), Math.ceil(p.m / SG_ROWS), p.batch],
    });
    return out;
  }
  be.rt.dispatch({
    name: 'matmul',
    key: `matmul:base:${p.transA}:${p.transB}`,
    wgsl: () => genWgsl(p.transA, p.transB),
    buffers: [bufferOf(a!), bufferOf(b!), out.buffer],
    uniforms: new UniformWriter().u32(p.m, p.n, p.k, p.batch, a!.offset, b!.offset, p.aBatchStride, p.bBatchStride).build(),
    workgroups: [Math.ceil(p.n / (TS * WGX)), Math.ceil(p.m / (TS * WGY)), p.batch],
  });
  return out;
});
