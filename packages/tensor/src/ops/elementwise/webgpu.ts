import type { KernelFn, View } from '../../backend.js';
import { contiguousStrides, isContiguous, numel } from '../../shape.js';
import { ELEMENTWISE, type ElementwiseName } from './table.js';
import { WGSL_PRELUDE } from '../scalar-math.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../../backends/webgpu/webgpu-backend.js';
import { bytesPerElement, wgslType, type DType } from '../../dtype.js';
import { bindRange, needsChunks, unitsPerChunk } from '../../backends/webgpu/windows.js';
import type { ElementwiseAttrs } from './index.js';
import { checkPair } from './pair.js';

const WG = 256;
/**
 * Elements per invocation: on CPU adapters (lavapipe) the cost is per invocation and, on the strided
 * path, per index decomposition more than per byte (a contiguous 65K add 0.40 -> 0.27 ms, measured).
 */
const PER = 4;
/** vec4s per invocation in the flat vec4 form. */
const FLAT_VEC4S = 4;
const NAMES = ['a', 'b', 'c'];

/**
 * Generated from the op table. Two variants: `flat` when every view is contiguous with the output's
 * shape (index = invocation), `strided` otherwise (rank unrolled in the shader; shape, strides and
 * offsets in the uniform block so one pipeline serves every shape of that rank).
 */
function genWgsl(op: ElementwiseName, inDtypes: DType[], outDtype: DType, rank: number, flat: boolean, gridWg = 0, pairOp?: ElementwiseName, vec4 = false): string {
  const def = ELEMENTWISE[op];
  // a paired row stores m(5) elements past each output element (ElementwiseAttrs.pair)
  const pairAt = (o: string) => (pairOp ? `\n    out[${o} + m(5u)] = ${wgslType(outDtype)}(${ELEMENTWISE[pairOp].wgsl});` : '');
  const n = inDtypes.length;
  const elem = (d: DType) => (vec4 ? `vec4<${wgslType(d)}>` : wgslType(d));
  const decl = inDtypes
    .map((d, i) => `@group(0) @binding(${i}) var<storage, read> in${i}: array<${elem(d)}>;`)
    .join('\n');
  const metaWords = 8 + rank + (n + 1) * (rank + 1);
  const vecs = Math.max(1, Math.ceil(metaWords / 4));
  let body = '';
  const t = wgslType(outDtype);
  // strided forms: [0]=count [1..4]=params [5]=pair shift [8..8+rank)=shape, then per view (inputs,
  // out): rank strides + offset. `decompose` turns the first element's index into each view's offset
  // o<v> once (integer division is slow on CPU adapters), leaving the coordinates c<d> for carries.
  const viewBase = (v: number) => 8 + rank + v * (rank + 1);
  const st = (v: number, d: number) => `m(${viewBase(v) + d}u)`;
  const decompose = (): string => {
    let code = `  var rem = i0;\n`;
    for (let v = 0; v <= n; v++) code += `  var o${v} = m(${viewBase(v) + rank}u);\n`;
    for (let d = rank - 1; d >= 0; d--) {
      code += `  var c${d} = rem % m(${8 + d}u); rem = rem / m(${8 + d}u);\n`;
      for (let v = 0; v <= n; v++) code += `  o${v} += c${d} * ${st(v, d)};\n`;
    }
    return code;
  };
  // vec4 forms: one vec4 load per input (`load(i)` its index), the op per component as in the scalar
  // forms, one vec4 store at `at` (and the paired row's at `pairAt4`)
  const vec4Ops = (load: (i: number) => string, at: string, pairAt4?: string): string => {
    let code = inDtypes.map((_, i) => `  let v${i} = in${i}[${load(i)}];`).join('\n');
    code += `\n  var r: vec4<${t}>;\n`;
    if (pairOp) code += `  var r2: vec4<${t}>;\n`;
    for (const c of ['x', 'y', 'z', 'w']) {
      code += `  {\n${inDtypes.map((_, i) => `    let ${NAMES[i]} = f32(v${i}.${c});`).join('\n')}\n    r.${c} = ${t}(${def.wgsl});${pairOp ? `\n    r2.${c} = ${t}(${ELEMENTWISE[pairOp].wgsl});` : ''}\n  }\n`;
    }
    return code + `  out[${at}] = r;${pairOp && pairAt4 ? `\n  out[${pairAt4}] = r2;` : ''}`;
  };
  if (vec4 && flat) {
    // flat, every offset and the count multiples of 4: FLAT_VEC4S vec4s per input and invocation
    // (lavapipe loads per lane in a loop over the lanes, so a vec4 costs little more than one element,
    // and each invocation has a fixed cost: adds of 0.25-8 MiB ran 1.2-1.5x faster with 4 than with 1,
    // 2 and 8 were slower than 4; bench/results/latest-speed-s23.md)
    for (let j = 0; j < FLAT_VEC4S; j++) {
      body += `  {\n  let q = i0 / 4u + ${j}u;\n  if (q * 4u >= m(0u)) { return; }\n`;
      body += vec4Ops((i) => `q + m(${8 + i}u) / 4u`, `q + m(${8 + n}u) / 4u`) + '\n  }\n';
    }
  } else if (gridWg) {
    // rank 3 on a 3-D grid: z and y are the two outer dims, x runs along the inner one; the offsets
    // come from the workgroup ids without any division (a division by a uniform is scalarised per
    // lane on CPU adapters: it cost more than the copy itself in permutes)
    body += `  let i0 = gid.x * ${PER}u;\n  if (i0 >= m(10u)) { return; }\n`;
    for (let v = 0; v <= n; v++) body += `  var o${v} = m(${viewBase(v) + rank}u) + gid.z * ${st(v, 0)} + gid.y * ${st(v, 1)} + i0 * ${st(v, 2)};\n`;
    body += `  for (var e = 0u; e < ${PER}u; e++) {\n    if (i0 + e >= m(10u)) { break; }\n`;
    body += inDtypes.map((_, i) => `    let ${NAMES[i]} = f32(in${i}[o${i}]);`).join('\n');
    body += `\n    out[o${n}] = ${t}(${def.wgsl});${pairAt(`o${n}`)}\n`;
    body += Array.from({ length: n + 1 }, (_, v) => `    o${v} += ${st(v, 2)};`).join('\n');
    body += '\n  }';
  } else if (flat) {
    body += `  for (var e = 0u; e < ${PER}u; e++) {\n    let k = i0 + e;\n    if (k >= m(0u)) { break; }\n`;
    body += inDtypes.map((_, i) => `    let ${NAMES[i]} = f32(in${i}[k + m(${8 + i})]);`).join('\n');
    body += `\n    out[k + m(${8 + n})] = ${t}(${def.wgsl});${pairAt(`k + m(${8 + n})`)}\n  }`;
  } else if (vec4) {
    // strided, but every view's last dim contiguous, whole vec4s long, and every other stride and offset
    // a multiple of 4: the invocation's 4 elements are one vec4 of each view (no carry)
    body += decompose();
    body += vec4Ops((i) => `o${i} / 4u`, `o${n} / 4u`, `(o${n} + m(5u)) / 4u`);
  } else {
    // the first element's coordinates decomposed once; the next PER - 1 elements step along the last
    // dim and carry into the ones before it
    body += decompose();
    const carry = (d: number): string => {
      if (d < 0) return '';
      const wrap = d > 0 ? `\n${'  '.repeat(rank - d + 2)}if (c${d} == m(${8 + d}u)) { c${d} = 0u; ${Array.from({ length: n + 1 }, (_, v) => `o${v} -= m(${8 + d}u) * ${st(v, d)};`).join(' ')}${carry(d - 1)} }` : '';
      return ` c${d} += 1u; ${Array.from({ length: n + 1 }, (_, v) => `o${v} += ${st(v, d)};`).join(' ')}${wrap}`;
    };
    body += `  for (var e = 0u; e < ${PER}u; e++) {\n    if (i0 + e >= m(0u)) { break; }\n`;
    body += inDtypes.map((_, i) => `    let ${NAMES[i]} = f32(in${i}[o${i}]);`).join('\n');
    body += `\n    out[o${n}] = ${t}(${def.wgsl});${pairAt(`o${n}`)}\n   ${carry(rank - 1)}\n  }`;
  }
  return `${WGSL_PRELUDE}
${decl}
@group(0) @binding(${n}) var<storage, read_write> out: array<${elem(outDtype)}>;
struct Meta { v: array<vec4<u32>, ${vecs}> };
@group(0) @binding(${n + 1}) var<uniform> um: Meta;
fn m(i: u32) -> u32 { return um.v[i >> 2u][i & 3u]; }
@compute @workgroup_size(${gridWg || WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
${gridWg ? '' : `  let i0 = (gid.x + gid.y * nwg.x * ${WG}u) * ${vec4 && flat ? PER * FLAT_VEC4S : PER}u;
  if (i0 >= m(0u)) { return; }
`}  let p0 = bitcast<f32>(m(1u)); let p1 = bitcast<f32>(m(2u)); let p2 = bitcast<f32>(m(3u)); let p3 = bitcast<f32>(m(4u));
${body}
}`;
}

/**
 * The 3-D grid for a strided iteration space of rank <= 3 (after coalescing), or null where one
 * does not fit or does not pay (more dims, an outer dim past the 65535 workgroups of a grid
 * dimension, an inner dim under 512 elements): x covers the inner dim, PER elements per invocation.
 */
function grid3(shape: readonly number[]): { wg: number; workgroups: [number, number, number] } | null {
  if (shape.length > 3) return null;
  const [d0, d1, d2] = [...Array(3 - shape.length).fill(1), ...shape] as [number, number, number];
  const per = Math.ceil(d2 / PER);
  // short inner dims would make many tiny workgroups (a workgroup costs more than a division there:
  // a permute with 16-element rows ran 2.2x slower this way)
  if (per < 128) return null;
  let wg = 8;
  while (wg < WG && wg < per) wg *= 2;
  const x = Math.ceil(per / wg);
  if (x > 65535 || d1 > 65535 || d0 > 65535) return null;
  return { wg, workgroups: [x, d1, d0] };
}

/**
 * The iteration space with size-1 dims dropped and neighbouring dims merged where every view steps
 * through them as one (stride[d] = stride[d + 1] · shape[d + 1], broadcast zeros included), as
 * PyTorch's TensorIterator does: a bias over [N, C, H, W] becomes [N·C, H·W], a contiguous slice flat.
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const keep = shape.map((s, d) => d).filter((d) => shape[d] !== 1);
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (const d of keep) {
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((st, v) => outStrides[v]![last] === st[d]! * shape[d]!)) {
      outShape[last] = outShape[last]! * shape[d]!;
      strides.forEach((st, v) => { outStrides[v]![last] = st[d]!; });
    } else {
      outShape.push(shape[d]!);
      strides.forEach((st, v) => outStrides[v]!.push(st[d]!));
    }
  }
  if (outShape.length === 0) return { shape: [1], strides: strides.map(() => [1]) };
  return { shape: outShape, strides: outStrides };
}

export const elementwise: KernelFn<WebGPUBackend, 'elementwise'> = (be, inputs, attrs) => {
  const a = attrs;
  const op = a.op as ElementwiseName;
  if (!(op in ELEMENTWISE)) throw new Error(`unknown elementwise op '${a.op}'`);
  const outDtype = a.out?.dtype ?? a.outDtype ?? 'float32';
  const count = numel(a.shape);
  const pairOp = a.pair?.op as ElementwiseName | undefined;
  if (a.pair) checkPair(a.pair, a.out);
  const shift = a.pair?.offset ?? 0;
  const pk = pairOp ? `:pair=${pairOp}` : '';
  const outView: View = a.out ?? {
    storage: be.alloc(outDtype, count),
    shape: a.shape,
    strides: contiguousStrides(a.shape),
    offset: 0,
    dtype: outDtype,
  };
  if (count > 0) {
    const views = [...inputs, outView];
    const c = coalesce(a.shape, views.map((v) => v.strides));
    const flat = c.strides.every((st) => isContiguous(c.shape, st));
    const rank = flat ? 0 : c.shape.length;
    const p = a.params ?? [];
    const u = new UniformWriter().u32(count).f32(p[0] ?? 0, p[1] ?? 0, p[2] ?? 0, p[3] ?? 0).u32(shift, 0, 0);
    if (flat) u.u32(...views.map((v) => v.offset));
    else {
      u.u32(...c.shape);
      views.forEach((v, i) => u.u32(...c.strides[i]!, v.offset));
    }
    const inDtypes = inputs.map((v) => v.dtype);
    const g3 = flat ? null : grid3(c.shape);
    if (g3) {
      // the rank-3 grid form: shape padded to 3 dims on the left (stride 0), see genWgsl
      const pad = 3 - c.shape.length;
      const ug = new UniformWriter().u32(count).f32(p[0] ?? 0, p[1] ?? 0, p[2] ?? 0, p[3] ?? 0).u32(shift, 0, 0);
      ug.u32(...Array(pad).fill(1), ...c.shape);
      views.forEach((v, i) => ug.u32(...Array(pad).fill(0), ...c.strides[i]!, v.offset));
      be.rt.dispatch({
        name: op,
        key: `ew:${op}:${inDtypes.join(',')}:${outDtype}:g3:${g3.wg}${pk}`,
        wgsl: () => genWgsl(op, inDtypes, outDtype, 3, false, g3.wg, pairOp),
        buffers: views.map(bufferOf),
        uniforms: ug.build(),
        workgroups: g3.workgroups,
      });
      return a.out ? undefined : outView.storage;
    }
    const key = `ew:${op}:${inDtypes.join(',')}:${outDtype}:${flat ? 'flat' : `r${rank}`}${pk}`;
    const buffers = views.map(bufferOf);
    if (flat && needsChunks(be, buffers) && a.pair) {
      // the pair's stores would leave the output's window: two passes, each an ordinary row
      elementwise(be, inputs, { ...a, pair: undefined });
      elementwise(be, inputs, { ...a, op: a.pair.op, pair: undefined, out: { ...a.out!, offset: a.out!.offset + shift } });
      return undefined;
    }
    if (flat && needsChunks(be, buffers)) {
      // a tensor larger than one binding: the flat kernel runs over windows of every view
      const per = unitsPerChunk(be, Math.max(...views.map((v) => bytesPerElement(v.dtype)))) & ~3;
      for (let s = 0; s < count; s += per) {
        const len = Math.min(per, count - s);
        const bound = views.map((v, i) => bindRange(be, buffers[i]!, v.offset + s, len, bytesPerElement(v.dtype)));
        const uc = new UniformWriter().u32(len).f32(p[0] ?? 0, p[1] ?? 0, p[2] ?? 0, p[3] ?? 0).u32(0, 0, 0).u32(...bound.map((b) => b.offset));
        be.rt.dispatch({ name: op, key, wgsl: () => genWgsl(op, inDtypes, outDtype, rank, flat), buffers: bound.map((b) => b.binding), uniforms: uc.build(), workgroups: grid(Math.ceil(len / PER), WG) });
      }
      return a.out ? undefined : outView.storage;
    }
    // whole vec4s of 32-bit elements: the vec4 form (PER = 4 elements per invocation either way). Flat:
    // offsets and count multiples of 4. Strided: every view's last dim contiguous and a multiple of 4
    // long, its other strides and its offset multiples of 4 (the paired row's shift too)
    const words = views.every((v) => v.offset % 4 === 0 && v.dtype !== 'float16');
    const last = c.shape.length - 1;
    const vec4 = words && count % PER === 0 && (flat
      ? !pairOp
      : c.shape[last]! % 4 === 0 && c.strides.every((st) => st.every((x, d) => (d === last ? x === 1 : x % 4 === 0))) && shift % 4 === 0);
    be.rt.dispatch({
      name: op,
      key: vec4 ? `${key}:v4` : key,
      wgsl: () => genWgsl(op, inDtypes, outDtype, rank, flat, 0, pairOp, vec4),
      buffers,
      uniforms: u.build(),
      workgroups: grid(Math.ceil(count / (vec4 && flat ? PER * FLAT_VEC4S : PER)), WG),
    });
  }
  return a.out ? undefined : outView.storage;
};
