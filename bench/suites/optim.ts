/**
 * One AdamW step over 10M parameters in three tensors ([2000,2000] ×2 and [2000,1000]). Memory-bound:
 * the rate is GB/s of the minimal traffic, f32 params + grads + both moments read and params + moments
 * written (7 × 4 bytes per parameter); "% of peak" is against the measured copy bandwidth. foliar runs
 * one fused kernel per tensor; tfjs's `tf.train.adam` (no AdamW in tfjs: the decoupled decay is one
 * multiply less work) composes elementwise ops, each a pass over memory.
 */
import * as ft from '@foliar/tensor';
import { AdamW } from '@foliar/nn';
import type * as TF from '@tensorflow/tfjs-core';
import { timeCall } from '../lib/measure.js';
import { syncOne } from '../lib/sync.js';
import { tfjs, tfSync, type Tf } from '../lib/peers.js';
import type { Row, RunInfo } from '../lib/report.js';

const SHAPES = [[2000, 2000], [2000, 2000], [2000, 1000]];
const PARAMS = SHAPES.reduce((a, s) => a + s[0]! * s[1]!, 0);
const BYTES = 7 * 4 * PARAMS;
const NAME = `AdamW step, ${(PARAMS / 1e6).toFixed(0)}M params in ${SHAPES.length} tensors`;

/** One warm-up call, then the median of the timed calls. */
const timeMs = (name: string, fn: () => Promise<void>, quick: boolean): Promise<number> => timeCall(name, fn, { iterations: quick ? 5 : 10, time: quick ? 300 : 1000 });

async function foliarStep(quick: boolean): Promise<number> {
  const params = SHAPES.map((s) => ft.randn(s).requiresGrad_());
  for (const p of params) p.grad = ft.tidy(() => ft.randn(p.shape).mul(0.01));
  const opt = new AdamW(params, { lr: 1e-3 });
  try {
    // the device executes in submission order: the last parameter's update finishing means all have
    return await timeMs(NAME, async () => {
      opt.step();
      await syncOne(params.at(-1)!);
    }, quick);
  } finally {
    opt.dispose();
    for (const p of params) {
      p.grad?.dispose();
      p.dispose();
    }
  }
}

async function tfStep(tf: Tf, peer: string, quick: boolean): Promise<number> {
  const vars = SHAPES.map((s, i) => tf.variable(tf.randomNormal(s), true, `bench_adam_${peer}_${i}`));
  const grads: { name: string; tensor: TF.Tensor }[] = vars.map((v) => ({ name: v.name, tensor: tf.tidy(() => tf.mul(tf.randomNormal(v.shape), 0.01)) }));
  const opt = tf.train.adam(1e-3);
  try {
    return await timeMs(`${peer} ${NAME}`, async () => {
      opt.applyGradients(grads);
      await tfSync(tf, vars.at(-1)!);
    }, quick);
  } finally {
    opt.dispose();
    tf.dispose(grads.map((g) => g.tensor));
    tf.dispose(vars);
  }
}

export async function optimSuite(info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const ms = await foliarStep(opts.quick);
  const rate = BYTES / ms / 1e6;
  const row: Row = {
    suite: 'optim', name: NAME, medianMs: ms, bytes: BYTES, rate, unit: 'GB/s',
    peakPct: info.peaks.copyGBs ? (100 * rate) / info.peaks.copyGBs : undefined, peers: {},
    note: 'tfjs: tf.train.adam (no decoupled decay)',
  };
  if (opts.peers) {
    for (const peer of ['webgpu', 'wasm'] as const) {
      const tf = await tfjs(peer);
      row.peers![`tfjs-${peer}`] = tf ? await tfStep(tf, `tfjs-${peer}`, opts.quick) : null;
    }
  }
  return [row];
}
