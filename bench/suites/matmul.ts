import * as ft from '@foliar/tensor';
import { measure } from '../lib/measure.js';
import { tfjs, tfSync } from '../lib/peers.js';
import type { Row, RunInfo } from '../lib/report.js';

interface Case {
  name: string;
  a: number[];
  b: number[];
  flops: number;
}

function cases(quick: boolean): Case[] {
  const sq = (n: number): Case => ({ name: `matmul ${n}³`, a: [n, n], b: [n, n], flops: 2 * n ** 3 });
  const list = [sq(256), sq(512), sq(1024)];
  if (!quick) list.push(sq(2048));
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
    const a = ft.randn(c.a), b = ft.randn(c.b);
    const iterations = c.flops > 4e9 ? 3 : 8;
    const m = await measure(c.name, async () => {
      const y = a.matmul(b);
      await syncOne(y);
      y.dispose();
    }, { iterations, time: c.flops > 4e9 ? 0 : 1200 });
    a.dispose();
    b.dispose();
    const rate = c.flops / m.medianMs / 1e6;
    rows.push({ suite: 'matmul', name: c.name, medianMs: m.medianMs, flops: c.flops, rate, unit: 'GFLOP/s', peakPct: info.peaks.fmaGflops ? (100 * rate) / info.peaks.fmaGflops : undefined, peers: {} });
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
          const y = tf.matMul(a, b);
          await tfSync(tf, y);
          y.dispose();
        }, { iterations: c.flops > 4e9 ? 3 : 8, time: c.flops > 4e9 ? 0 : 1200 });
        a.dispose();
        b.dispose();
        rows[i]!.peers![`tfjs-${peer}`] = m.medianMs;
      }
    }
  }
  return rows;
}

/** dawn.node's busy polling vs foliar's setTimeout routing, on the same matmul. */
export async function pollingSuite(): Promise<Row[]> {
  const rows: Row[] = [];
  const a = ft.randn([512, 512]), b = ft.randn([512, 512]);
  const flops = 2 * 512 ** 3;
  for (const mode of ['immediate', 'timeout'] as const) {
    ft.setPollingMode(mode);
    const m = await measure(`polling ${mode}`, async () => {
      const y = a.matmul(b);
      await syncOne(y);
      y.dispose();
    }, { iterations: 10, time: 1500 });
    rows.push({ suite: 'polling', name: `matmul 512³, polling '${mode}'`, medianMs: m.medianMs, flops, rate: flops / m.medianMs / 1e6, unit: 'GFLOP/s', note: mode === 'timeout' ? 'foliar default' : "dawn.node's own setImmediate loop" });
  }
  ft.setPollingMode('timeout');
  a.dispose();
  b.dispose();
  return rows;
}
