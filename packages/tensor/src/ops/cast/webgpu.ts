// cast kernel (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../../backends/webgpu/webgpu-backend.js';
import { contiguousStrides, isContiguous, numel } from '../../shape.js';
import { bindRange, needsChunks, unitsPerChunk } from '../../backends/webgpu/windows.js';

/**
 * float16 lives in WebGPU buffers as packed u32 words (two halves per word, element i in the low
 * half when i is even), on every adapter: `enable f16` is never needed. Kernels that compute read
 * halves with unpack2x16float (ops/cast/wgsl.ts); this kernel converts with integer bit arithmetic
 * only, so that f32 ↔ f16 rounds exactly like the CPU reference (nearest even, subnormals kept,
 * overflow to inf) whatever the adapter does with denormal floats.
 *
 * A fresh f16 output is written one word (two elements) per invocation; writing f16 into an
 * existing strided view (cat / pad into an f16 tensor) takes atomics on the word, because two
 * invocations may own the two halves of one word.
 */
const MAX_RANK = 8;
const WG = 64;

export const F16_BITS_WGSL = `
fn f32_bits_to_f16(x: u32) -> u32 {
  let sign = (x >> 16u) & 0x8000u;
  let ex = (x >> 23u) & 0xffu;
  let mant = x & 0x7fffffu;
  if (ex == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u | (mant >> 13u), mant != 0u); }
  let e = i32(ex) - 112;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    let sig = mant | 0x800000u;
    let shift = u32(14 - e);
    let halfway = 1u << (shift - 1u);
    let rest = sig & ((1u << shift) - 1u);
    var h = sig >> shift;
    if (rest > halfway || (rest == halfway && (h & 1u) != 0u)) { h += 1u; }
    return sign | h;
  }
  var h = (u32(e) << 10u) | (mant >> 13u);
  let rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) != 0u)) { h += 1u; }
  return sign | h;
}
fn f16_bits_to_f32(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let ex = (h >> 10u) & 0x1fu;
  var mant = h & 0x3ffu;
  if (ex == 0x1fu) { return sign | 0x7f800000u | (mant << 13u); }
  if (ex != 0u) { return sign | ((ex + 112u) << 23u) | (mant << 13u); }
  if (mant == 0u) { return sign; }
  var e = 113u;
  loop {
    if ((mant & 0x400u) != 0u) { break; }
    mant = mant << 1u;
    e = e - 1u;
  }
  return sign | (e << 23u) | ((mant & 0x3ffu) << 13u);
}`;

/** fn name(e): the element offset of flat index e through the strides u.<strides> (rank unrolled at run time). */
const offsetFn = (name: string, strides: string): string => `fn ${name}(e: u32) -> u32 {
  var r = e; var o = 0u;
  for (var d = i32(u.rank) - 1; d >= 0; d--) {
    let sz = u.shape[d / 4][d % 4];
    o += (r % sz) * u.${strides}[d / 4][d % 4];
    r = r / sz;
  }
  return o;
}`;

function wgsl(fromH: boolean, toH: boolean, into: boolean): string {
  // src element bits in the source format; conv: to the target format
  const read = fromH ? 'fn rd(i: u32) -> u32 { return (src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu; }' : 'fn rd(i: u32) -> u32 { return src[i]; }';
  const conv = fromH === toH ? 'fn cv(b: u32) -> u32 { return b; }' : fromH ? 'fn cv(b: u32) -> u32 { return f16_bits_to_f32(b); }' : 'fn cv(b: u32) -> u32 { return f32_bits_to_f16(b); }';
  const outDecl = toH && into ? 'array<atomic<u32>>' : 'array<u32>';
  let body: string;
  if (!toH) body = `if (e >= u.n) { return; }
  dst[u.ooff + offOut(e)] = cv(rd(u.ioff + offIn(e)));`;
  else if (into) body = `if (e >= u.n) { return; }
  let j = u.ooff + offOut(e);
  let sh = (j & 1u) * 16u;
  let h = cv(rd(u.ioff + offIn(e)));
  atomicAnd(&dst[j >> 1u], ~(0xffffu << sh));
  atomicOr(&dst[j >> 1u], h << sh);`;
  else body = `let e0 = e * 2u;
  if (e0 >= u.n) { return; }
  let lo = cv(rd(u.ioff + offIn(e0)));
  var hi = 0u;
  if (e0 + 1u < u.n) { hi = cv(rd(u.ioff + offIn(e0 + 1u))); }
  dst[e] = lo | (hi << 16u);`;
  return `
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: ${outDecl};
struct U { n: u32, rank: u32, ioff: u32, ooff: u32, shape: array<vec4<u32>, 2>, si: array<vec4<u32>, 2>, so: array<vec4<u32>, 2> };
@group(0) @binding(2) var<uniform> u: U;
${F16_BITS_WGSL}
${read}
${conv}
${offsetFn('offIn', 'si')}
${offsetFn('offOut', 'so')}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * ${WG}u;
  ${body}
}`;
}

export const cast: KernelFn<WebGPUBackend, 'cast'> = (be, inputs, attrs) => {
  const src = inputs[0]!;
  const n = numel(attrs.shape);
  const fromH = src.dtype === 'float16', toH = attrs.dtype === 'float16';
  for (const d of [src.dtype, attrs.dtype]) if (d !== 'float32' && d !== 'float16') throw new TypeError(`cast: WebGPU casts float32/float16 only, got ${d}`);
  if (attrs.out && attrs.out.dtype !== attrs.dtype) throw new TypeError(`cast: the output view is ${attrs.out.dtype}, the target ${attrs.dtype}`);
  const fresh = attrs.out ? null : be.alloc(attrs.dtype, n);
  if (n > 0) {
    // size-1 dims dropped; the rest must fit the uniform block
    const keep = attrs.shape.map((d, i) => (d === 1 ? -1 : i)).filter((i) => i >= 0);
    if (keep.length > MAX_RANK) throw new RangeError(`cast: rank ${keep.length} above ${MAX_RANK}`);
    const shape = keep.map((i) => attrs.shape[i]!);
    const si = keep.map((i) => src.strides[i]!);
    const outStrides = attrs.out ? keep.map((i) => attrs.out!.strides[i]!) : contiguousStrides(shape);
    const pad = (a: number[]): number[] => [...a, ...new Array<number>(MAX_RANK - a.length).fill(1)];
    const uni = new UniformWriter().u32(n, shape.length, src.offset, attrs.out?.offset ?? 0, ...pad(shape), ...pad(si), ...pad(outStrides)).build();
    const into = !!attrs.out;
    if (!into && isContiguous(attrs.shape, src.strides) && needsChunks(be, [bufferOf(src), fresh!.buffer])) {
      // a tensor larger than one binding (loading SD's f32 token embedding into f16): element ranges,
      // 128-element aligned so that every window starts on a 256-byte boundary in both formats
      const per = Math.max(128, unitsPerChunk(be, 4) & ~127);
      const pad1 = (v: number): number[] => [v, ...new Array<number>(MAX_RANK - 1).fill(1)];
      for (let s0 = 0; s0 < n; s0 += per) {
        const len = Math.min(per, n - s0);
        const win = bindRange(be, bufferOf(src), src.offset + s0, len, fromH ? 2 : 4);
        const out = bindRange(be, fresh!.buffer, s0, len, toH ? 2 : 4);
        be.rt.dispatch({
          name: 'cast',
          key: `cast:${fromH}:${toH}:false`,
          wgsl: () => wgsl(fromH, toH, false),
          buffers: [win.binding, out.binding],
          uniforms: new UniformWriter().u32(len, 1, win.offset, out.offset, ...pad1(len), ...pad1(1), ...pad1(1)).build(),
          workgroups: grid(toH ? Math.ceil(len / 2) : len, WG),
        });
      }
      return fresh!;
    }
    const threads = toH && !into ? Math.ceil(n / 2) : n;
    be.rt.dispatch({
      name: 'cast',
      key: `cast:${fromH}:${toH}:${into}`,
      wgsl: () => wgsl(fromH, toH, into),
      buffers: [bufferOf(src), attrs.out ? bufferOf(attrs.out) : fresh!.buffer],
      uniforms: uni,
      workgroups: grid(threads, WG),
    });
  }
  return fresh ?? undefined;
};
