import type { KernelFn } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid, type GpuStorage } from '../../backends/webgpu/webgpu-backend.js';
import type { ReduceAttrs } from './index.js';

const WG = 64;
/** Longest run one invocation reduces; longer axes go through partial sums (tree precision, parallelism). */
const CHUNK = 256;
/**
 * Up to this many elements per output, reductions with enough outputs (a bias gradient: one per
 * channel) or short runs take one pass: a second dispatch costs more than the serial sums it saves.
 */
const SINGLE_PASS = 4096;

/** Elements one invocation of the first pass reduces, for `outs` outputs of `total` elements each. */
export function reduceChunk(outs: number, total: number): number {
  return total <= SINGLE_PASS && (outs >= 32 || total <= 1024) ? Math.max(total, 1) : CHUNK;
}

function genWgsl(op: ReduceAttrs['op'], arg: boolean, firstPass: boolean, inType: string): string {
  const isMax = op === 'max' || op === 'argmax';
  const init = op === 'sum' ? '0.0' : isMax ? '-3.4028234e38' : '3.4028234e38';
  const cmp = isMax ? 'v > best' : 'v < best';
  // NaN wins as in PyTorch (argmax: the first NaN), tested on the bits: compilers may fold v != v
  const argIn = arg && !firstPass;
  return `
@group(0) @binding(0) var<storage, read> x: array<${inType}>;
${argIn ? '@group(0) @binding(1) var<storage, read> xi: array<i32>;' : ''}
@group(0) @binding(${argIn ? 2 : 1}) var<storage, read_write> out: array<f32>;
${arg ? `@group(0) @binding(${argIn ? 3 : 2}) var<storage, read_write> outi: array<i32>;` : ''}
fn f_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
struct U { outer: u32, size: u32, inner: u32, chunks: u32, offset: u32, chunk: u32, total: u32, groups: u32, gstride: u32, scale: f32, p1: u32, p2: u32 };
@group(0) @binding(${arg ? (argIn ? 4 : 3) : 2}) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.total) { return; }
  // t indexes the output [outer, chunks, inner]
  let i = t % u.inner;
  let oc = t / u.inner;
  let c = oc % u.chunks;
  let o = oc / u.chunks;
  // the reduced range is groups runs of size elements, gstride apart (one run unless grouped)
  let r0 = c * u.chunk;
  let r1 = min(r0 + u.chunk, u.size * u.groups);
  var gr = r0 / u.size;
  var rr = r0 % u.size;
  var best: f32 = ${init};
  var bi: i32 = 0;
  var first = true;
  for (var r = r0; r < r1; r++) {
    let off = u.offset + gr * u.gstride + (o * u.size + rr) * u.inner + i;
    rr++;
    if (rr == u.size) { rr = 0u; gr++; }
    let v = f32(x[off]);
    ${
      op === 'sum'
        ? 'best += v;'
        : `if (first || (!f_isnan(best) && (f_isnan(v) || ${cmp}))) { best = v; ${arg ? (argIn ? 'bi = xi[off - u.offset];' : 'bi = i32(r);') : ''} }\n    first = false;`
    }
  }
  out[t] = best${op === 'sum' ? ' * u.scale' : ''};
  ${arg ? 'outi[t] = bi;' : ''}
}`;
}

export const reduce: KernelFn<WebGPUBackend, 'reduce'> = (be, [x], attrs) => {
  const { op, outer, inner } = attrs;
  let size = attrs.size;
  let groups = Math.max(1, attrs.groups ?? 1);
  const arg = op === 'argmax' || op === 'argmin';
  let src = bufferOf(x!);
  let srcIdx: GPUBuffer | null = null;
  let offset = x!.offset;
  const temps: GpuStorage[] = [];
  let firstPass = true;
  for (;;) {
    // partial results are f32; only the first pass reads the input's own dtype
    const inType = firstPass && x!.dtype === 'int32' ? 'i32' : firstPass && x!.dtype === 'uint32' ? 'u32' : 'f32';
    const chunk = firstPass ? reduceChunk(outer * inner, size * groups) : CHUNK;
    const chunks = Math.max(1, Math.ceil((size * groups) / chunk));
    const total = outer * chunks * inner;
    const last = chunks === 1;
    const vals = be.alloc('float32', Math.max(total, 1));
    const idx = arg ? be.alloc('int32', Math.max(total, 1)) : null;
    // a mean's scale is applied once, by the last pass
    const u = new UniformWriter().u32(outer, size, inner, chunks, offset, chunk, total, groups, outer * size * inner).f32(last ? attrs.scale ?? 1 : 1).u32(0, 0).build();
    const buffers = [src];
    if (arg && !firstPass) buffers.push(srcIdx!);
    buffers.push(vals.buffer);
    if (idx) buffers.push(idx.buffer);
    if (total > 0) {
      be.rt.dispatch({
        name: `reduce_${op}`,
        key: `reduce:${op}:${firstPass}:${inType}`,
        wgsl: () => genWgsl(op, arg, firstPass, inType),
        buffers,
        uniforms: u,
        workgroups: grid(total, WG),
      });
    }
    for (const t of temps) t.release();
    temps.length = 0;
    if (last) {
      if (arg) {
        vals.release();
        return idx!;
      }
      return vals;
    }
    temps.push(vals);
    if (idx) temps.push(idx);
    src = vals.buffer;
    srcIdx = idx?.buffer ?? null;
    offset = 0;
    size = chunks;
    groups = 1;
    firstPass = false;
  }
};
