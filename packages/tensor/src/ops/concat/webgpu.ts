import type { KernelFn, View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf } from '../../backends/webgpu/webgpu-backend.js';
import { wgslType, type DType } from '../../dtype.js';
import { needsChunks } from '../../backends/webgpu/windows.js';

/** Elements of the inner dim per invocation. */
const PER = 4;
/** Inputs per dispatch at most (each a storage binding; more go in further dispatches). */
const MAX_INPUTS = 4;
const MAX_GRID = 65535;
/** Words per input in the uniform block: first channel, end channel, offset, outer, dim and inner strides, 2 spare. */
const WORDS = 8;

/**
 * One dispatch writes a run of inputs: z = outer index, y = output channel, x = inner elements (PER
 * per invocation), so no invocation divides. The branch on the channel picks the input and is
 * uniform over a workgroup (one y per workgroup).
 */
function genWgsl(n: number, type: string, wg: number): string {
  const decl = Array.from({ length: n }, (_, k) => `@group(0) @binding(${k}) var<storage, read> in${k}: array<${type}>;`).join('\n');
  const branch = Array.from({ length: n }, (_, k) => {
    const w = (j: number) => `m(${4 + k * WORDS + j}u)`;
    return `${k ? ' else ' : '  '}if (c < ${w(1)}) {
    let b = ${w(2)} + o * ${w(3)} + (c - ${w(0)}) * ${w(4)} + i0 * ${w(5)};
    for (var e = 0u; e < ${PER}u; e++) { if (i0 + e < inner) { out[ob + e] = in${k}[b + e * ${w(5)}]; } }
  }`;
  }).join('');
  return `${decl}
@group(0) @binding(${n}) var<storage, read_write> out: array<${type}>;
struct Meta { v: array<vec4<u32>, ${1 + (n * WORDS) / 4}> };
@group(0) @binding(${n + 1}) var<uniform> um: Meta;
fn m(i: u32) -> u32 { return um.v[i >> 2u][i & 3u]; }
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let inner = m(0u);
  let i0 = gid.x * ${PER}u;
  if (i0 >= inner) { return; }
  let c = gid.y + m(2u);
  let o = gid.z;
  let ob = (o * m(1u) + c) * inner + i0;
${branch}
}`;
}

/** Float32 and 32-bit integer data in one kernel per type; the copy path takes what does not fit the grid. */
function kernelType(d: DType): string | null {
  return d === 'float32' || d === 'int32' || d === 'uint32' ? wgslType(d) : null;
}

export const concat: KernelFn<WebGPUBackend, 'concat'> = (be, inputs, attrs) => {
  const { outer, inner, sizes } = attrs;
  const total = sizes.reduce((a, b) => a + b, 0);
  const dtype = inputs[0]!.dtype;
  const out = be.alloc(dtype, outer * total * inner);
  if (outer * total * inner === 0) return out;
  const type = kernelType(dtype);
  const perX = Math.ceil(inner / PER);
  // short inner dims would leave most of each workgroup idle: per-input copies serve them better
  const fits = type !== null && perX >= 4 && outer <= MAX_GRID && total <= MAX_GRID && inputs.every((v) => v.dtype === dtype) &&
    !needsChunks(be, [...inputs.map(bufferOf), out.buffer]);
  let start = 0;
  if (!fits) {
    inputs.forEach((v, k) => {
      const shape = [outer, sizes[k]!, inner];
      if (sizes[k]! > 0) {
        be.run('elementwise', [{ ...v, shape }], { op: 'copy', params: [], shape, out: { storage: out, shape, strides: [total * inner, inner, 1], offset: start * inner, dtype } });
      }
      start += sizes[k]!;
    });
    return out;
  }
  let wg = 4;
  while (wg < 64 && wg < perX) wg *= 2;
  const x = Math.ceil(perX / wg);
  for (let k0 = 0; k0 < inputs.length; k0 += MAX_INPUTS) {
    const run: View[] = [];
    const words: number[] = [];
    const first = start;
    for (let k = k0; k < Math.min(inputs.length, k0 + MAX_INPUTS); k++) {
      const v = inputs[k]!;
      if (sizes[k]! > 0) {
        const [so, sd, si] = v.strides as [number, number, number];
        words.push(start, start + sizes[k]!, v.offset, so, sd, si, 0, 0);
        run.push(v);
      }
      start += sizes[k]!;
    }
    if (run.length === 0) continue; // only empty inputs in this run
    be.rt.dispatch({
      name: 'concat',
      key: `concat:${run.length}:${type}:${wg}`,
      wgsl: () => genWgsl(run.length, type!, wg),
      buffers: [...run.map(bufferOf), out.buffer],
      uniforms: new UniformWriter().u32(inner, total, first, 0, ...words).build(),
      workgroups: [x, start - first, outer],
    });
  }
  return out;
};
