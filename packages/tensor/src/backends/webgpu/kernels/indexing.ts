import { registerKernel } from '../../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../webgpu-backend.js';
import type { IndexSelectAttrs } from '../../kernel-attrs.js';

const WG = 256;

registerKernel<WebGPUBackend>('webgpu', 'index_select', (be, [x, idx], attrs) => {
  const { outer, size, inner, n } = attrs as unknown as IndexSelectAttrs;
  const total = outer * n * inner;
  const out = be.alloc(x!.dtype, total);
  if (total === 0) return out;
  const t = x!.dtype === 'int32' ? 'i32' : 'f32';
  be.rt.dispatch({
    name: 'index_select',
    key: `index_select:${t}`,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
struct U { size: u32, inner: u32, n: u32, total: u32, xoff: u32, ioff: u32, p0: u32, p1: u32 };
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.total) { return; }
  let i = t % u.inner;
  let j = (t / u.inner) % u.n;
  let o = t / (u.inner * u.n);
  let id = u32(clamp(ids[u.ioff + j], 0, i32(u.size) - 1));
  out[t] = x[u.xoff + (o * u.size + id) * u.inner + i];
}`,
    buffers: [bufferOf(x!), bufferOf(idx!), out.buffer],
    uniforms: new UniformWriter().u32(size, inner, n, total, x!.offset, idx!.offset, 0, 0).build(),
    workgroups: grid(total, WG),
  });
  return out;
});

/**
 * Scatter-add of rows. WGSL has no float atomics, so each add is a compare-and-swap loop on the
 * f32 bits; only rows that share an index contend.
 */
registerKernel<WebGPUBackend>('webgpu', 'index_add', (be, [src, idx], attrs) => {
  const { outer, size, inner, n } = attrs as unknown as IndexSelectAttrs;
  const out = be.alloc('float32', outer * size * inner);
  be.run('elementwise', [], { op: 'fill', params: [0], shape: [outer * size * inner], out: { storage: out, shape: [outer * size * inner], strides: [1], offset: 0, dtype: 'float32' } });
  const total = outer * n * inner;
  if (total === 0) return out;
  be.rt.dispatch({
    name: 'index_add',
    key: 'index_add',
    wgsl: () => `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;
struct U { size: u32, inner: u32, n: u32, total: u32, soff: u32, ioff: u32, p0: u32, p1: u32 };
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.total) { return; }
  let i = t % u.inner;
  let j = (t / u.inner) % u.n;
  let o = t / (u.inner * u.n);
  let id = u32(clamp(ids[u.ioff + j], 0, i32(u.size) - 1));
  let v = src[u.soff + t];
  let dst = (o * u.size + id) * u.inner + i;
  var old = atomicLoad(&out[dst]);
  loop {
    let r = atomicCompareExchangeWeak(&out[dst], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`,
    buffers: [bufferOf(src!), bufferOf(idx!), out.buffer],
    uniforms: new UniformWriter().u32(size, inner, n, total, src!.offset, idx!.offset, 0, 0).build(),
    workgroups: grid(total, WG),
  });
  return out;
});
