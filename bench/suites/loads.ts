import type { WebGPUBackend } from '@foliar/tensor';
import * as ft from '@foliar/tensor';
import { measure } from '../lib/measure.js';
import type { Row, RunInfo } from '../lib/report.js';

/**
 * What one load costs a kernel, by address space and form: each case runs a loop of 8 loads and 8
 * adds per iteration in every invocation of 8-invocation workgroups, over data that stays in the
 * CPU's caches (a 256 KiB window), so the time is the loads' instructions, not memory bandwidth.
 * The rate is the bytes the loads hand to invocations per second. The last cases make the same
 * loads and adds from larger loop bodies (32 and 128 load sites per iteration, fewer iterations).
 *
 * Why: on lavapipe a load whose address differs per invocation becomes a loop over the lanes with
 * a bounds check per lane and component, and in the subgroup matmul the loads, not the FMAs, take
 * most of the time (bench/results/latest-speed-s26.md, latest-speed-s27.md). This suite shows the price of each form on
 * the adapter it runs on, so a kernel's loads can be chosen for it.
 */
const ITER = 2048;
/** f32 values past the 64K window that the largest load-site offsets reach. */
const SLACK = 128 * 64;
const WORKGROUPS = 512;
const WG = 8;

interface Case {
  name: string;
  /** Loop body: `values` loads added into s0..s3 (s0 += …). */
  body: string;
  /** f32 values loaded per invocation and iteration. */
  values: number;
  /** Loop iterations, when not ITER (a larger body runs fewer, for the same number of loads and adds). */
  iterations?: number;
}

/**
 * `sites` per-invocation f32 loads unrolled in one loop body, run ITER * 8 / sites times: the same loads
 * and adds as the 8-load case, from a larger body. On lavapipe each load site is some 9 instructions per
 * lane, and once the body outgrows the CPU's decoded-instruction cache every load costs 2-3x more.
 */
function manySites(sites: number, name = `storage f32, address per invocation, ${sites} load sites in the loop body`): Case {
  const loads = Array.from({ length: sites }, (_, v) => `s${v % 4} += S[b + ${v * 64}u];`).join(' ');
  return { name, values: sites, iterations: (ITER * 8) / sites, body: `let b = (base + i * 8u + l) & 65535u; ${loads}` };
}

const CASES: Case[] = [
  { name: 'no loads (loop and adds only)', values: 0, body: 'let f = f32(i + l); s0 += f; s1 += f * 2.0; s2 += f * 3.0; s3 += f * 4.0; s0 += f; s1 += f; s2 += f; s3 += f;' },
  manySites(8, 'storage f32, address per invocation'),
  { name: 'storage f32, same address in every invocation', values: 8, body: 'let b = (base + i * 8u) & 65535u; s0 += S[b]; s1 += S[b + 64u]; s2 += S[b + 128u]; s3 += S[b + 192u]; s0 += S[b + 256u]; s1 += S[b + 320u]; s2 += S[b + 384u]; s3 += S[b + 448u];' },
  { name: 'storage vec4, address per invocation', values: 8, body: 'let b = ((base + i * 8u) / 4u + l) & 16383u; let v0 = S4[b]; let v1 = S4[b + 16u]; s0 += v0.x; s1 += v0.y; s2 += v0.z; s3 += v0.w; s0 += v1.x; s1 += v1.y; s2 += v1.z; s3 += v1.w;' },
  { name: 'uniform vec4, address per invocation', values: 8, body: 'let b = (base / 4u + i * 2u + l) & 4095u; let v0 = UB[b]; let v1 = UB[(b + 16u) & 4095u]; s0 += v0.x; s1 += v0.y; s2 += v0.z; s3 += v0.w; s0 += v1.x; s1 += v1.y; s2 += v1.z; s3 += v1.w;' },
  { name: 'workgroup f32, address per invocation', values: 8, body: 'let b = (i * 8u + l) & 4095u; s0 += W[b]; s1 += W[(b + 64u) & 4095u]; s2 += W[(b + 128u) & 4095u]; s3 += W[(b + 192u) & 4095u]; s0 += W[(b + 256u) & 4095u]; s1 += W[(b + 320u) & 4095u]; s2 += W[(b + 384u) & 4095u]; s3 += W[(b + 448u) & 4095u];' },
  manySites(32),
  manySites(128),
];

function wgsl(body: string, iterations: number): string {
  return `
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read> S4: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> UB: array<vec4<f32>, 4096>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
var<workgroup> W: array<f32, 4096>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  var s0 = 0.0; var s1 = 0.0; var s2 = 0.0; var s3 = 0.0;
  let base = (g.x * 977u) & 65535u;
  // every binding is used in every case, so that all cases share one layout
  let z = S[l] * 0.0 + S4[l].x * 0.0 + UB[l].x * 0.0 + W[l] * 0.0;
  for (var i = 0u; i < ${iterations}u; i++) { ${body} }
  O[g.x * ${WG}u + l] = s0 + s1 + s2 + s3 + z;
}`;
}

export async function loadsSuite(info: RunInfo, _opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const be = ft.webgpuBackend() as WebGPUBackend | null;
  if (!be) return [];
  const elems = 1 << 16;
  const src = be.alloc('float32', elems + SLACK);
  be.run('elementwise', [], { op: 'fill', params: [0.5], shape: [elems + SLACK], out: { storage: src, shape: [elems + SLACK], strides: [1], offset: 0, dtype: 'float32' } });
  const ubo = be.rt.device.createBuffer({ size: 65536, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  be.rt.device.queue.writeBuffer(ubo, 0, new Float32Array(16384).fill(0.25));
  const out = be.alloc('float32', WORKGROUPS * WG);
  const rows: Row[] = [];
  let baseMs = 0;
  try {
    for (const c of CASES) {
      const iterations = c.iterations ?? ITER;
      const code = wgsl(c.body, iterations);
      const one = () => be.rt.dispatch({ name: 'bench_loads', key: `bench:loads:${c.name}`, wgsl: () => code, buffers: [src.buffer, src.buffer, ubo, out.buffer], workgroups: [WORKGROUPS] });
      const m = await measure(c.name, async () => {
        one();
        await be.sync();
      }, { iterations: 8, time: 800 });
      if (c.values === 0) baseMs = m.medianMs;
      const lanesLoads = WORKGROUPS * WG * iterations * c.values;
      const bytes = lanesLoads * 4;
      const nsPerValue = c.values ? ((m.medianMs - baseMs) * 1e6) / lanesLoads : 0;
      rows.push({
        suite: 'loads',
        name: c.name,
        medianMs: m.medianMs,
        ...(c.values ? { bytes, rate: bytes / m.medianMs / 1e6, unit: 'GB/s' as const, peakPct: info.peaks.copyGBs ? (100 * bytes) / m.medianMs / 1e6 / info.peaks.copyGBs : undefined } : {}),
        note: c.values ? `${nsPerValue.toFixed(2)} ns per value an invocation loads, above the loop without loads (wall time, all threads)` : `${ITER} iterations × ${WORKGROUPS * WG} invocations`,
      });
    }
  } finally {
    src.release();
    out.release();
    ubo.destroy();
  }
  return rows;
}
