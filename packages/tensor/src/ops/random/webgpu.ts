import type { KernelFn } from '../../backend.js';
import { WebGPUBackend, UniformWriter, grid } from '../../backends/webgpu/webgpu-backend.js';
import { WGSL_PHILOX } from '../../random/philox.js';
import type { RandomAttrs } from './index.js';
import { bindRange, needsChunks, unitsPerChunk } from '../../backends/webgpu/windows.js';

const WG = 64;

/** One invocation per block of 4 numbers (one Philox call). */
export const random: KernelFn<WebGPUBackend, 'random'> = (be, _inputs, attrs) => {
  const a = attrs;
  const bits = a.dist === 'bits';
  const out = be.alloc(bits ? 'uint32' : 'float32', a.n);
  const blocks = Math.ceil(a.n / 4);
  if (blocks === 0) return out;
  const emit =
    a.dist === 'bits'
      ? 'let v = r[j];'
      : a.dist === 'uniform'
        ? 'let v = u.p0 + (u.p1 - u.p0) * (f32(r[j] >> 8u) * 5.9604644775390625e-8);'
        : `let pr = j & 2u;
    let u1 = (f32(r[pr] >> 8u) + 1.0) * 5.9604644775390625e-8;
    let u2 = f32(r[pr + 1u] >> 8u) * 5.9604644775390625e-8;
    let rad = sqrt(-2.0 * log(u1));
    let th = 6.283185307179586 * u2;
    let v = u.p0 + u.p1 * select(rad * sin(th), rad * cos(th), (j & 1u) == 0u);`;
  // a tensor larger than one binding: chunks of whole Philox blocks (16 per 256-byte window step),
  // each with its counter advanced to its first block, so the numbers equal the unsplit ones
  const chunk = needsChunks(be, [out.buffer]) ? Math.max(16, unitsPerChunk(be, 16) & ~15) : blocks;
  for (let b0 = 0; b0 < blocks; b0 += chunk) {
    const nb = Math.min(chunk, blocks - b0), c = a.counter + b0;
    const win = bindRange(be, out.buffer, b0 * 4, Math.min(a.n - b0 * 4, nb * 4), 4);
    be.rt.dispatch({
      name: `random_${a.dist}`,
      key: `random:${a.dist}`,
      wgsl: () => `${WGSL_PHILOX}
@group(0) @binding(0) var<storage, read_write> out: array<${bits ? 'u32' : 'f32'}>;
struct U { n: u32, seedLo: u32, seedHi: u32, cLo: u32, cHi: u32, blocks: u32, p0: f32, p1: f32 };
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let b = gid.x + gid.y * nwg.x * ${WG}u;
  if (b >= u.blocks) { return; }
  let lo = u.cLo + b;
  let hi = u.cHi + select(0u, 1u, lo < u.cLo);
  let r = philox(vec4<u32>(lo, hi, 0u, 0u), vec2<u32>(u.seedLo, u.seedHi));
  for (var j = 0u; j < 4u; j++) {
    let i = b * 4u + j;
    if (i >= u.n) { break; }
    ${emit}
    out[i] = v;
  }
}`,
      buffers: [win.binding],
      uniforms: new UniformWriter().u32(Math.min(a.n - b0 * 4, nb * 4), a.seedLo, a.seedHi, c % 0x100000000, Math.floor(c / 0x100000000), nb).f32(a.p0, a.p1).build(),
      workgroups: grid(nb, WG),
    });
  }
  return out;
};
