import type { KernelFn } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../../backends/webgpu/webgpu-backend.js';
import type { IndexSelectAttrs, IndexCheckAttrs } from './index.js';
import { indexOutOfRange, ignoreNote } from '../../index-range.js';
import { bytesPerElement } from '../../dtype.js';
import { readBinding } from '../cast/wgsl.js';
import { bindRange, needsChunks, unitsPerChunk, type BoundRange } from '../../backends/webgpu/windows.js';

/**
 * Row shards of a table larger than one binding (SD's 49408 x 768 token embedding is 144.8 MiB
 * against 128 MiB bindings): rows [lo, hi) per dispatch, each bound as a window. Only for a
 * leading-dimension table (outer 1), which is what an embedding is.
 */
function rowShards(be: WebGPUBackend, table: GPUBuffer, tableOffset: number, size: number, inner: number, bpe: number): { lo: number; hi: number; bound: BoundRange }[] {
  if (!needsChunks(be, [table])) return [{ lo: 0, hi: size, bound: { binding: table, offset: tableOffset } }];
  const rows = unitsPerChunk(be, inner * bpe);
  const out = [];
  for (let lo = 0; lo < size; lo += rows) {
    const hi = Math.min(size, lo + rows);
    out.push({ lo, hi, bound: bindRange(be, table, tableOffset + lo * inner, (hi - lo) * inner, bpe) });
  }
  return out;
}

const WG = 256;

/**
 * The runtime's bounds flag at `binding` and report_bad_index: the first bad index of all the work
 * before the next readback is kept as [serial, value, count of bad indices] (WebGPURuntime.boundsCheck
 * throws it there).
 */
function boundsWgsl(binding: number): string {
  return `
@group(0) @binding(${binding}) var<storage, read_write> bounds: array<atomic<u32>>;
fn report_bad_index(serial: u32, v: i32) {
  atomicAdd(&bounds[2], 1u);
  loop {
    let r = atomicCompareExchangeWeak(&bounds[0], 0u, serial);
    if (r.exchanged) { atomicStore(&bounds[1], bitcast<u32>(v)); return; }
    if (r.old_value != 0u) { return; }
  }
}`;
}

/** Registers the error message of one checking dispatch; returns the flag buffer and the serial. */
function boundsFor(be: WebGPUBackend, op: string, what: string, size: number, where = ''): { buffer: GPUBuffer; serial: number } {
  return be.rt.boundsCheck((v) => indexOutOfRange(op, what, v, size, where).message);
}

export const index_select: KernelFn<WebGPUBackend, 'index_select'> = (be, [x, idx], attrs) => {
  const { outer, size, inner, n, op, dim } = attrs;
  const total = outer * n * inner;
  // a float16 table (an f16 text encoder's token embedding) is read in place and gives f32 rows, as
  // the boundary's cast would (activations are f32), without an f32 copy of the whole table
  const f16 = x!.dtype === 'float16';
  const out = be.alloc(f16 ? 'float32' : x!.dtype, total);
  if (total === 0) return out;
  const t = x!.dtype === 'int32' ? 'i32' : 'f32';
  const flag = boundsFor(be, op ?? 'indexSelect', 'index', size, dim === undefined ? '' : ` (dim ${dim})`);
  const table = bufferOf(x!);
  if (outer !== 1 && needsChunks(be, [table])) {
    throw new RangeError(`${op ?? 'indexSelect'}: a table of ${table.size} bytes exceeds one binding (${be.rt.maxBindingBytes} bytes); row shards cover dim 0 only, got dim ${dim ?? '?'}`);
  }
  // each shard writes the output rows whose id falls in [lo, hi); ids are clamped first, so a bad id
  // (reported once, by the first shard) still writes a row and no read strays
  for (const [si, sh] of rowShards(be, table, x!.offset, size, inner, bytesPerElement(x!.dtype)).entries()) {
    be.rt.dispatch({
      name: 'index_select',
      key: `index_select:${t}${f16 ? ':h' : ''}`,
      wgsl: () => `
${f16 ? readBinding(0, 'x', true) : `@group(0) @binding(0) var<storage, read> x: array<${t}>;\nfn x_at(i: u32) -> ${t} { return x[i]; }`}
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
${boundsWgsl(3)}
struct U { size: u32, inner: u32, n: u32, total: u32, xoff: u32, ioff: u32, serial: u32, lo: u32, hi: u32, check: u32, p0: u32, p1: u32 };
@group(0) @binding(4) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.total) { return; }
  let i = t % u.inner;
  let j = (t / u.inner) % u.n;
  let o = t / (u.inner * u.n);
  let raw = ids[u.ioff + j];
  if (u.check != 0u && (raw < 0 || raw >= i32(u.size)) && o == 0u && i == 0u) { report_bad_index(u.serial, raw); }
  let id = u32(clamp(raw, 0, i32(u.size) - 1));
  if (id < u.lo || id >= u.hi) { return; }
  out[t] = x_at(u.xoff + (o * u.size + id - u.lo) * u.inner + i);
}`,
      buffers: [sh.bound.binding, bufferOf(idx!), out.buffer, flag.buffer],
      uniforms: new UniformWriter().u32(size, inner, n, total, sh.bound.offset, idx!.offset, flag.serial, sh.lo, sh.hi, si === 0 ? 1 : 0, 0, 0).build(),
      workgroups: grid(total, WG),
    });
  }
  return out;
};

/** Flags the first id outside [0, size) (see IndexCheckAttrs); writes nothing else. */
export const index_check: KernelFn<WebGPUBackend, 'index_check'> = (be, [ids], attrs) => {
  const { n, size, op, what, ignore } = attrs;
  if (n === 0) return;
  const flag = boundsFor(be, op, what, size, ignoreNote(ignore));
  be.rt.dispatch({
    name: 'index_check',
    key: 'index_check',
    wgsl: () => `
@group(0) @binding(0) var<storage, read> ids: array<i32>;
${boundsWgsl(1)}
struct U { n: u32, size: u32, off: u32, serial: u32, ignore: i32, has_ignore: u32, p0: u32, p1: u32 };
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.n) { return; }
  let v = ids[u.off + t];
  if ((v < 0 || v >= i32(u.size)) && !(u.has_ignore != 0u && v == u.ignore)) { report_bad_index(u.serial, v); }
}`,
    buffers: [bufferOf(ids!), flag.buffer],
    uniforms: new UniformWriter().u32(n, size, ids!.offset, flag.serial, ignore ?? 0, ignore === undefined ? 0 : 1, 0, 0).build(),
    workgroups: grid(n, WG),
  });
};

/** Up to this many (output element, index) pairs, index_add gathers instead of scattering (deterministic). */
const GATHER_MAX_PAIRS = 1 << 24;

/**
 * Scatter-add of rows. WGSL has no float atomics, so each add is a compare-and-swap loop on the
 * f32 bits; only rows that share an index contend. The order of the adds then depends on thread
 * timing, so the sums (an embedding's gradient) differ in their last bits from run to run, and a
 * training run is not reproducible. Small problems (a tiny text encoder's vocabulary; not SD's
 * 49,408 x 768 table) gather instead: each output element sums its rows in index order, the same
 * result every run, at outer·size·inner·n steps.
 */
export const index_add: KernelFn<WebGPUBackend, 'index_add'> = (be, [src, idx], attrs) => {
  const { outer, size, inner, n } = attrs;
  const out = be.alloc('float32', outer * size * inner);
  const total = outer * n * inner;
  const outSize = outer * size * inner;
  if (total > 0 && outSize * n <= GATHER_MAX_PAIRS && !needsChunks(be, [out.buffer, bufferOf(src!)])) {
    be.rt.dispatch({
      name: 'index_add',
      key: 'index_add_gather',
      wgsl: () => `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
struct U { size: u32, inner: u32, n: u32, total: u32, soff: u32, ioff: u32, p0: u32, p1: u32 };
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.total) { return; }
  let i = t % u.inner;
  let r = (t / u.inner) % u.size;
  let o = t / (u.inner * u.size);
  var acc = 0.0;
  for (var j = 0u; j < u.n; j++) {
    if (u32(clamp(ids[u.ioff + j], 0, i32(u.size) - 1)) == r) { acc += src[u.soff + (o * u.n + j) * u.inner + i]; }
  }
  out[t] = acc;
}`,
      buffers: [bufferOf(src!), bufferOf(idx!), out.buffer],
      uniforms: new UniformWriter().u32(size, inner, n, outSize, src!.offset, idx!.offset, 0, 0).build(),
      workgroups: grid(outSize, WG),
    });
    return out;
  }
  be.run('elementwise', [], { op: 'fill', params: [0], shape: [outSize], out: { storage: out, shape: [outSize], strides: [1], offset: 0, dtype: 'float32' } });
  if (total === 0) return out;
  if (outer !== 1 && needsChunks(be, [out.buffer])) {
    throw new RangeError(`index_add: a table of ${out.buffer.size} bytes exceeds one binding (${be.rt.maxBindingBytes} bytes); row shards cover dim 0 only`);
  }
  for (const sh of rowShards(be, out.buffer, 0, size, inner, 4)) {
    be.rt.dispatch({
      name: 'index_add',
      key: 'index_add',
      wgsl: () => `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;
struct U { size: u32, inner: u32, n: u32, total: u32, soff: u32, ioff: u32, lo: u32, hi: u32, ooff: u32, p0: u32, p1: u32, p2: u32 };
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.total) { return; }
  let i = t % u.inner;
  let j = (t / u.inner) % u.n;
  let o = t / (u.inner * u.n);
  let id = u32(clamp(ids[u.ioff + j], 0, i32(u.size) - 1));
  if (id < u.lo || id >= u.hi) { return; }
  let v = src[u.soff + t];
  let dst = u.ooff + (o * u.size + id - u.lo) * u.inner + i;
  var old = atomicLoad(&out[dst]);
  loop {
    let r = atomicCompareExchangeWeak(&out[dst], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`,
      buffers: [bufferOf(src!), bufferOf(idx!), sh.bound.binding],
      uniforms: new UniformWriter().u32(size, inner, n, total, src!.offset, idx!.offset, sh.lo, sh.hi, sh.bound.offset, 0, 0, 0).build(),
      workgroups: grid(total, WG),
    });
  }
  return out;
};
