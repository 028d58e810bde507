import * as ft from '@foliar/tensor';
import { measure } from '../lib/measure.js';
import { tfjs, tfSync } from '../lib/peers.js';
import type { Row, RunInfo } from '../lib/report.js';

interface Case {
  name: string;
  a: number[];
  b: number[];
  flops: number;
  /** B stored as [n, k] and used transposed (the shape of a backward pass: dA = dY·Bᵀ). */
  transB?: boolean;
}

function cases(quick: boolean): Case[] {
  const sq = (n: number): Case => ({ name: `matmul ${n}³`, a: [n, n], b: [n, n], flops: 2 * n ** 3 });
  const list = [sq(256), sq(512), sq(1024)];
  if (!quick) list.push(sq(2048));
  list.push({ name: 'matmul 1024³, A·Bᵀ (transposed view)', a: [1024, 1024], b: [1024, 1024], flops: 2 * 1024 ** 3, transB: true });
  list.push({ name: 'bmm [16,256,64]x[16,64,256] (attention scores)', a: [16, 256, 64], b: [16, 64, 256], flops: 2 * 16 * 256 * 256 * 64 });
  return list;
}

/** Reads one element: the device has finished the matmul when it arrives. */
async function syncOne(t: ft.Tensor): Promise<void> {
  const v = t.reshape([-1]).narrow(0, 0, 1);
  await v.data();
  v.dispose();
}

export async function matmulSuite(info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  const list = cases(opts.quick);
  for (const c of list) {
    const a = ft.randn(c.a), bs = ft.randn(c.b);
    const b = c.transB ? bs.transpose(-1, -2) : bs;
    const iterations = c.flops > 4e9 ? 3 : 8;
    const m = await measure(c.name, async () => {
      const y = a.matmul(b);
      await syncOne(y);
      y.dispose();
    }, { iterations, time: c.flops > 4e9 ? 0 : 1200 });
    a.dispose();
    b.dispose();
    bs.dispose();
    const rate = c.flops / m.medianMs / 1e6;
    rows.push({ suite: 'matmul', name: c.name, medianMs: m.medianMs, flops: c.flops, rate, unit: 'GFLOP/s', peakPct: info.peaks.fmaGflops ? (100 * rate) / info.peaks.fmaGflops : undefined, peers: {}, note: variantNow() });
  }
  if (opts.peers) {
    for (const peer of ['webgpu', 'wasm'] as const) {
      const tf = await tfjs(peer);
      for (const [i, c] of list.entries()) {
        if (!tf) {
          rows[i]!.peers![`tfjs-${peer}`] = null;
          continue;
        }
        if (peer === 'wasm' && c.flops > 4e9) {
          rows[i]!.peers![`tfjs-${peer}`] = null;
          continue;
        }
        const a = tf.randomNormal(c.a), b = tf.randomNormal(c.b);
        const m = await measure(`tfjs-${peer} ${c.name}`, async () => {
          const y = tf.matMul(a, b, false, !!c.transB);
          await tfSync(tf, y);
          y.dispose();
        }, { iterations: c.flops > 4e9 ? 3 : 8, time: c.flops > 4e9 ? 0 : 1200 });
        a.dispose();
        b.dispose();
        rows[i]!.peers![`tfjs-${peer}`] = m.medianMs;
      }
    }
  }
  rows.push(...(await variantRows(info, opts.quick)));
  return rows;
}

type VariantApi = { matmulVariant?: (be: ft.WebGPUBackend) => string; matmulVariants?: (be: ft.WebGPUBackend) => string[] };
/** The variant plain calls use now (the API is optional: it may not be exported from the package index yet). */
function variantNow(): string | undefined {
  const api = ft as unknown as VariantApi;
  const be = ft.webgpuBackend();
  const v = process.env.FOLIAR_MATMUL_VARIANT ?? (be && api.matmulVariant ? api.matmulVariant(be) : undefined);
  return v ? `variant '${v}'` : undefined;
}

/** Each variant forced in turn on the same matmul: what the per-adapter choice chooses between. */
async function variantRows(info: RunInfo, quick: boolean): Promise<Row[]> {
  const be = ft.webgpuBackend();
  if (!be) return [];
  const api = ft as unknown as VariantApi;
  const variants = api.matmulVariants ? api.matmulVariants(be) : ['base', ...(be.rt.subgroups ? ['subgroup'] : []), 'tiled'];
  const n = quick ? 256 : 512;
  const flops = 2 * n ** 3;
  const a = ft.randn([n, n]), b = ft.randn([n, n]);
  const rows: Row[] = [];
  const before = process.env.FOLIAR_MATMUL_VARIANT;
  try {
    for (const v of variants) {
      process.env.FOLIAR_MATMUL_VARIANT = v;
      const m = await measure(`variant ${v}`, async () => {
        const y = a.matmul(b);
        await syncOne(y);
        y.dispose();
      }, { iterations: 5, time: 800 });
      const rate = flops / m.medianMs / 1e6;
      rows.push({ suite: 'matmul', name: `matmul ${n}³, variant '${v}' forced`, medianMs: m.medianMs, flops, rate, unit: 'GFLOP/s', peakPct: info.peaks.fmaGflops ? (100 * rate) / info.peaks.fmaGflops : undefined });
    }
  } finally {
    if (before === undefined) delete process.env.FOLIAR_MATMUL_VARIANT;
    else process.env.FOLIAR_MATMUL_VARIANT = before;
    a.dispose();
    b.dispose();
  }
  return rows;
}

/** dawn.node's busy polling vs foliar's setTimeout routing, on the same matmul. */
export async function pollingSuite(): Promise<Row[]> {
  const rows: Row[] = [];
  // big enough that the wait dominates (with the fast variant 512³ is a few ms on lavapipe)
  const N = 1024;
  const a = ft.randn([N, N]), b = ft.randn([N, N]);
  const flops = 2 * N ** 3;
  for (const mode of ['immediate', 'timeout'] as const) {
    ft.setPollingMode(mode);
    const m = await measure(`polling ${mode}`, async () => {
      const y = a.matmul(b);
      await syncOne(y);
      y.dispose();
    }, { iterations: 10, time: 1500 });
    rows.push({ suite: 'polling', name: `matmul ${N}³, polling '${mode}'`, medianMs: m.medianMs, flops, rate: flops / m.medianMs / 1e6, unit: 'GFLOP/s', note: mode === 'timeout' ? 'foliar default' : "dawn.node's own setImmediate loop" });
  }
  ft.setPollingMode('timeout');
  a.dispose();
  b.dispose();
  return rows;
}
