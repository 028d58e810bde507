import type { KernelFn, View } from '../../backend.js';
import { contiguousStrides, isContiguous, numel } from '../../shape.js';
import { ELEMENTWISE, type ElementwiseName } from './table.js';
import { WGSL_PRELUDE } from '../scalar-math.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../../backends/webgpu/webgpu-backend.js';
import { wgslType, type DType } from '../../dtype.js';
import type { ElementwiseAttrs } from './index.js';

const WG = 256;
const NAMES = ['a', 'b', 'c'];

/**
 * Generated from the op table. Two variants: `flat` when every view is contiguous with the output's
 * shape (index = invocation), `strided` otherwise (rank unrolled in the shader; shape, strides and
 * offsets in the uniform block so one pipeline serves every shape of that rank).
 */
function genWgsl(op: ElementwiseName, inDtypes: DType[], outDtype: DType, rank: number, flat: boolean): string {
  const def = ELEMENTWISE[op];
  const n = inDtypes.length;
  const decl = inDtypes
    .map((d, i) => `@group(0) @binding(${i}) var<storage, read> in${i}: array<${wgslType(d)}>;`)
    .join('\n');
  const metaWords = 8 + rank + (n + 1) * (rank + 1);
  const vecs = Math.max(1, Math.ceil(metaWords / 4));
  let body = '';
  if (flat) {
    body += inDtypes.map((_, i) => `  let ${NAMES[i]} = f32(in${i}[idx + m(${8 + i})]);`).join('\n');
    body += `\n  out[idx + m(${8 + n})] = ${wgslType(outDtype)}(${def.wgsl});`;
  } else {
    // layout: [0]=count [1..4]=params [8..8+rank)=shape, then per view (inputs, out): rank strides + offset
    const viewBase = (v: number) => 8 + rank + v * (rank + 1);
    body += `  var rem = idx;\n`;
    for (let v = 0; v <= n; v++) body += `  var o${v} = m(${viewBase(v) + rank});\n`;
    for (let d = rank - 1; d >= 0; d--) {
      body += `  { let s = m(${8 + d}); let q = rem % s; rem = rem / s;\n`;
      for (let v = 0; v <= n; v++) body += `    o${v} += q * m(${viewBase(v) + d});\n`;
      body += `  }\n`;
    }
    body += inDtypes.map((_, i) => `  let ${NAMES[i]} = f32(in${i}[o${i}]);`).join('\n');
    body += `\n  out[o${n}] = ${wgslType(outDtype)}(${def.wgsl});`;
  }
  return `${WGSL_PRELUDE}
${decl}
@group(0) @binding(${n}) var<storage, read_write> out: array<${wgslType(outDtype)}>;
struct Meta { v: array<vec4<u32>, ${vecs}> };
@group(0) @binding(${n + 1}) var<uniform> um: Meta;
fn m(i: u32) -> u32 { return um.v[i >> 2u][i & 3u]; }
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  if (idx >= m(0u)) { return; }
  let p0 = bitcast<f32>(m(1u)); let p1 = bitcast<f32>(m(2u)); let p2 = bitcast<f32>(m(3u)); let p3 = bitcast<f32>(m(4u));
${body}
}`;
}

export const elementwise: KernelFn<WebGPUBackend, 'elementwise'> = (be, inputs, attrs) => {
  const a = attrs;
  const op = a.op as ElementwiseName;
  if (!(op in ELEMENTWISE)) throw new Error(`unknown elementwise op '${a.op}'`);
  const outDtype = a.out?.dtype ?? a.outDtype ?? 'float32';
  const count = numel(a.shape);
  const outView: View = a.out ?? {
    storage: be.alloc(outDtype, count),
    shape: a.shape,
    strides: contiguousStrides(a.shape),
    offset: 0,
    dtype: outDtype,
  };
  if (count > 0) {
    const views = [...inputs, outView];
    const flat = views.every((v) => isContiguous(a.shape, v.strides));
    const rank = flat ? 0 : a.shape.length;
    const p = a.params ?? [];
    const u = new UniformWriter().u32(count).f32(p[0] ?? 0, p[1] ?? 0, p[2] ?? 0, p[3] ?? 0).u32(0, 0, 0);
    if (flat) u.u32(...views.map((v) => v.offset));
    else {
      u.u32(...a.shape);
      for (const v of views) u.u32(...v.strides.map((s) => s), v.offset);
    }
    const inDtypes = inputs.map((v) => v.dtype);
    const key = `ew:${op}:${inDtypes.join(',')}:${outDtype}:${flat ? 'flat' : `r${rank}`}`;
    be.rt.dispatch({
      name: op,
      key,
      wgsl: () => genWgsl(op, inDtypes, outDtype, rank, flat),
      buffers: views.map(bufferOf),
      uniforms: u.build(),
      workgroups: grid(count, WG),
    });
  }
  return a.out ? undefined : outView.storage;
};
