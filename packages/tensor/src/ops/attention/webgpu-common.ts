// Shared by the attention kernels (webgpu.ts: one row per invocation; webgpu-subgroup.ts: rows shared
// by subgroup broadcasts): the uniform block, the per-pass offsets and the row loaders.
import { UniformWriter } from '../../backends/webgpu/webgpu-backend.js';
import type { AttentionAttrs } from './index.js';

export const WG = 64;
// head dims up to 16 compile unrolled in well under a second on lavapipe
export const UNROLL_MAX = 4;
export const NEG = '-3.4028234e38';

export const chunks = (d: number): number => Math.ceil(d / 4);

export interface Plan {
  c: number;
  v: number;
  vec4: boolean;
  /** Head dims of at most UNROLL_MAX chunks: constant trip counts, so the row arrays live in registers. */
  unroll: boolean;
  mask: AttentionAttrs['mask'];
}

export const UNIFORMS = `struct U { bh: u32, heads: u32, lq: u32, lk: u32, d: u32, dv: u32, nc: u32, nv: u32,
  qoff: u32, koff: u32, voff: u32, moff: u32, ms0: u32, ms1: u32, ms2: u32, ms3: u32,
  ooff: u32, loff: u32, goff: u32, scale: f32, bh0: u32, q0: u32, so1: u32, so2: u32, doff: u32,
  qsb: u32, qsh: u32, qsl: u32, ksb: u32, ksh: u32, ksl: u32, vsb: u32, vsh: u32, vsl: u32,
  osb: u32, osh: u32, osl: u32, gsb: u32, gsh: u32, gsl: u32, t1sb: u32, t1sh: u32, t1sl: u32, t2sb: u32, t2sh: u32, t2sl: u32 };`;

/** [batch, head, row] strides (elements) of a [B, H, L, D] tensor whose rows are contiguous. */
export type RowStrides = readonly [number, number, number];
/** The row strides of a contiguous [B, H, L, D]. */
export const denseRows = (heads: number, l: number, d: number): RowStrides => [heads * l * d, l * d, d];

/**
 * Row strides of every row tensor a pass reads or writes: q, k, v, o (read), g, and its two stored row
 * buffers t1, t2 (o / dq / dk, and dv). Absent ones are contiguous.
 */
export interface PassStrides { q: RowStrides; k: RowStrides; v: RowStrides; o?: RowStrides; g?: RowStrides; t1?: RowStrides; t2?: RowStrides }

/**
 * Offsets (elements) of every buffer a pass reads or writes: the views' offsets, plus the remainders of
 * window bindings when a tensor larger than one binding runs in chunks (s1/s2: the pass's two stored
 * buffers, d: dvec read by the dK/dV pass). A chunk covers heads [bh0, bh0 + bh) and, in the forward,
 * queries [q0, q0 + lq): the mask is indexed globally through them.
 */
export interface Offsets { q: number; k: number; v: number; m: number; o?: number; l?: number; g?: number; s1?: number; s2?: number; d?: number }
export interface ChunkDims { bh: number; lq: number; bh0: number; q0: number }

/** Offsets and strides of the vec4-bound buffers are in vec4 units; of scalar-bound ones in elements (`s2Row`: s2 is a row buffer). */
export function uniforms(a: AttentionAttrs, p: Plan, offs: Offsets, st: PassStrides, ch: ChunkDims = { bh: a.bh, lq: a.lq, bh0: 0, q0: 0 }, s2Row = false): Uint32Array {
  const ms = a.maskStrides ?? [0, 0, 0, 0];
  const div = p.vec4 ? 4 : 1;
  const rows = (r: RowStrides | undefined): number[] => (r ?? [0, 0, 0]).map((x) => x / div);
  return new UniformWriter()
    .u32(ch.bh, a.heads, ch.lq, a.lk, a.d, a.dv, p.c, p.v)
    .u32(offs.q / div, offs.k / div, offs.v / div, offs.m, ...ms)
    .u32((offs.o ?? 0) / div, offs.l ?? 0, (offs.g ?? 0) / div)
    .f32(a.scale)
    .u32(ch.bh0, ch.q0, (offs.s1 ?? 0) / div, (offs.s2 ?? 0) / (s2Row ? div : 1), offs.d ?? 0)
    .u32(...rows(st.q), ...rows(st.k), ...rows(st.v), ...rows(st.o), ...rows(st.g), ...rows(st.t1), ...rows(st.t2))
    .build();
}

/**
 * `let h<buf> = ...`: where head bh's rows of a row tensor start (`off`: its offset uniform; `s`: its
 * strides' prefix in the uniforms). Computed once per invocation: bh is the workgroup's.
 */
export const headBase = (buf: string, off: string, s: string): string => `let h${buf} = ${off} + (bh / u.heads) * u.${s}sb + (bh % u.heads) * u.${s}sh;`;

/**
 * fn ld_<buf>(h, i, c) -> vec4: chunk c of row i of the head starting at h (see headBase), rows
 * u.<s>sl apart; zero past the row's end.
 */
export function loader(buf: string, dim: string, s: string, vec4: boolean): string {
  if (vec4) return `fn ld_${buf}(h: u32, i: u32, c: u32) -> vec4<f32> { return ${buf}[h + i * u.${s}sl + c]; }`;
  const el = (e: number): string => `select(0.0, ${buf}[b + min(4u * c + ${e}u, ${dim} - 1u)], 4u * c + ${e}u < ${dim})`;
  return `fn ld_${buf}(h: u32, i: u32, c: u32) -> vec4<f32> { let b = h + i * u.${s}sl; return vec4<f32>(${[0, 1, 2, 3].map(el).join(', ')}); }`;
}
/** fn st_<buf>(h, i, c, v): stores chunk c of row i of the head starting at h, rows u.<s>sl apart. */
export function storer(buf: string, dim: string, s: string, vec4: boolean): string {
  if (vec4) return `fn st_${buf}(h: u32, i: u32, c: u32, v: vec4<f32>) { ${buf}[h + i * u.${s}sl + c] = v; }`;
  const body = [0, 1, 2, 3].map((e) => `if (4u * c + ${e}u < ${dim}) { ${buf}[b + 4u * c + ${e}u] = v[${e}]; }`).join(' ');
  return `fn st_${buf}(h: u32, i: u32, c: u32, v: vec4<f32>) { let b = h + i * u.${s}sl; ${body} }`;
}

/** Additive mask element for (query i, key j) of head bh (chunk-local; bh0 makes it global). */
export const MASK_AT = (i: string, j: string): string =>
  `msk[u.moff + ((bh + u.bh0) / u.heads) * u.ms0 + ((bh + u.bh0) % u.heads) * u.ms1 + ${i} * u.ms2 + ${j} * u.ms3]`;

