/**
 * scaledDotProductAttention forward and forward+backward, q/k/v [B=2, H=4, L, D], in both
 * implementations: 'fused' (online-softmax kernel, no stored [L, L] scores) and 'math' (the fast
 * matmul + softmax, scores kept), which 'auto' picks while the scores fit its budget. FLOPs: forward 4·BH·L²·D (QKᵀ and PV); forward+backward
 * 3.5× that (the FlashAttention convention: the backward recomputes the scores, then four more
 * products). tfjs composes matMul + softmax + matMul (materialising the scores) and differentiates it
 * by hand with the same ops (tfjs-core alone has no gradients registered). Peak-memory rows run once at seq 1024 and 4096 and compare foliar's peak growth with
 * the size of the score matrix a composed implementation would hold.
 */
import * as ft from '@foliar/tensor';
import type * as TF from '@tensorflow/tfjs-core';
import { measure } from '../lib/measure.js';
import { tfjs, tfSync, type Tf } from '../lib/peers.js';
import type { Row, RunInfo } from '../lib/report.js';

const B = 2, H = 4;
type Mode = 'forward' | 'forward+backward';

interface AttnCase {
  l: number;
  d: number;
  mode: Mode;
  impl?: ft.AttentionImplementation;
  /** Batch and heads when not B, H: the study UNets' small heads run batch 8 x 8 heads. */
  b?: number;
  h?: number;
}

function cases(quick: boolean): AttnCase[] {
  const list: AttnCase[] = [];
  for (const l of [256, 1024])
    for (const d of [40, 64, 80])
      for (const mode of ['forward', 'forward+backward'] as const) if (!quick || l === 256 || d === 64) list.push({ l, d, mode });
  // the study's UNets (issue 12): head dim 8 at 8² latents (64 tokens), 16 at 16² (256 tokens), batch 8 x 8
  // heads; and 1,024 tokens of head dim 8 (one image: 8 heads keep the math path's scores at 32 MiB)
  for (const [l, d, b] of [[64, 8, 8], [256, 16, 8], [1024, 8, 1]] as const)
    for (const mode of ['forward', 'forward+backward'] as const) if (!quick || l !== 1024) list.push({ l, d, mode, b, h: 8 });
  return list;
}

const bhOf = (c: AttnCase): [number, number] => [c.b ?? B, c.h ?? H];
const flopsOf = (c: AttnCase) => 4 * bhOf(c)[0] * bhOf(c)[1] * c.l * c.l * c.d * (c.mode === 'forward' ? 1 : 3.5);
const nameOf = (c: AttnCase) => `sdpa ${c.impl ?? 'auto'} ${c.mode}, B·H ${bhOf(c)[0] * bhOf(c)[1]}, seq ${c.l}, head dim ${c.d}`;
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

async function syncOne(t: ft.Tensor): Promise<void> {
  // dispose the flat view too: a leaked view keeps t's buffer alive
  const flat = t.reshape([-1]);
  const v = flat.narrow(0, 0, 1);
  await v.data();
  v.dispose();
  flat.dispose();
}

async function timeMs(name: string, fn: () => Promise<void>, slow: boolean, quick: boolean): Promise<number> {
  await fn();
  const m = await measure(name, fn, { warmup: false, iterations: slow || quick ? 3 : 6, time: slow ? 0 : quick ? 300 : 1000 });
  return m.medianMs;
}

/** One foliar call of the case on fresh-looking inputs; returns after the device has finished. */
function foliarStep(q: ft.Tensor, k: ft.Tensor, v: ft.Tensor, dy: ft.Tensor, mode: Mode, implementation: ft.AttentionImplementation = 'auto'): () => Promise<void> {
  return async () => {
    const y = ft.scaledDotProductAttention(q, k, v, { implementation });
    if (mode === 'forward') {
      await syncOne(y);
    } else {
      y.backward(dy);
      for (const t of [q, k, v]) {
        await syncOne(t.grad!);
        t.grad!.dispose();
        t.grad = null;
      }
    }
    y.dispose();
  };
}

function foliarInputs(l: number, d: number, grad: boolean, b = B, h = H): ft.Tensor[] {
  const shape = [b, h, l, d];
  const q = ft.randn(shape), k = ft.randn(shape), v = ft.randn(shape);
  if (grad) for (const t of [q, k, v]) t.requiresGrad = true;
  return [q, k, v, ft.randn(shape)];
}

function tfAttention(tf: Tf, q: TF.Tensor, k: TF.Tensor, v: TF.Tensor): TF.Tensor {
  const scale = 1 / Math.sqrt(q.shape.at(-1)!);
  return tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), scale)), v);
}

/**
 * Forward + backward of the composed attention, written out with the ops tf.grads would emit:
 * tfjs-core alone registers no gradient functions (the tfjs umbrella package does), so tf.grads
 * is unavailable here. Returns [dq, dk, dv].
 */
function tfAttentionGrads(tf: Tf, q: TF.Tensor, k: TF.Tensor, v: TF.Tensor, dy: TF.Tensor): TF.Tensor[] {
  return tf.tidy(() => {
    const scale = 1 / Math.sqrt(q.shape.at(-1)!);
    const p = tf.softmax(tf.mul(tf.matMul(q, k, false, true), scale));
    tf.matMul(p, v); // the forward output: part of the work, freed by tidy
    const dv = tf.matMul(p, dy, true, false);
    const dp = tf.matMul(dy, v, false, true);
    const ds = tf.mul(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), scale);
    return [tf.matMul(ds, k), tf.matMul(ds, q, true, false), dv];
  });
}

async function tfCase(tf: Tf, peer: string, c: AttnCase, quick: boolean): Promise<number> {
  const [q, k, v, dy] = [0, 1, 2, 3].map(() => tf.randomNormal([...bhOf(c), c.l, c.d]));
  try {
    return await timeMs(`${peer} ${nameOf(c)}`, async () => {
      if (c.mode === 'forward') {
        const y = tf.tidy(() => tfAttention(tf, q!, k!, v!));
        await tfSync(tf, y);
        y.dispose();
      } else {
        const gs = tfAttentionGrads(tf, q!, k!, v!, dy!);
        for (const g of gs) await tfSync(tf, g);
        tf.dispose(gs);
      }
    }, flopsOf(c) > 5e9, quick);
  } finally {
    tf.dispose([q!, k!, v!, dy!]);
  }
}

/**
 * One run at a long sequence: peak device memory growth over the inputs vs the [BH, L, L] scores.
 * B·H = 2 (one batch, two heads) keeps the seq-4096 run to seconds on a software adapter.
 */
async function memoryRow(l: number, mode: Mode, impl: ft.AttentionImplementation): Promise<Row> {
  const d = 64, bh = 2;
  const [q, k, v, dy] = foliarInputs(l, d, mode !== 'forward', 1, bh);
  const step = foliarStep(q!, k!, v!, dy!, mode, impl);
  const warm = foliarInputs(64, d, mode !== 'forward'); // compile the pipelines outside the measurement
  await foliarStep(warm[0]!, warm[1]!, warm[2]!, warm[3]!, mode, impl)();
  for (const t of warm) t.dispose();
  ft.resetPeakMemory();
  const base = ft.memory().liveBytes;
  const t0 = performance.now();
  await step();
  const ms = performance.now() - t0;
  const extra = ft.memory().peakBytes - base;
  for (const t of [q, k, v, dy]) t!.dispose();
  const scores = bh * l * l * 4;
  const inputs = 4 * bh * l * d * 4;
  const flops = (flopsOf({ l, d, mode }) * bh) / (B * H);
  console.error(`attention ${impl} ${mode} seq ${l}: peak +${MiB(extra)} over ${MiB(inputs)} of q/k/v/dy; scores would be ${MiB(scores)}`);
  return {
    suite: 'attention', name: `sdpa ${impl} ${mode} peak memory, B·H ${bh}, seq ${l}, head dim ${d}`, medianMs: ms, flops,
    rate: flops / ms / 1e6, unit: 'GFLOP/s',
    note: `peak +${MiB(extra)} over the ${MiB(inputs)} of q/k/v/dy; f32 scores [${bh},${l},${l}] alone: ${MiB(scores)} (single run)`,
  };
}

export async function attentionSuite(info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const list = cases(opts.quick).flatMap((c) => (['math', 'fused'] as const).map((impl) => ({ ...c, impl })));
  const rows: Row[] = [];
  for (const c of list) {
    const [q, k, v, dy] = foliarInputs(c.l, c.d, c.mode !== 'forward', ...bhOf(c));
    const ms = await timeMs(nameOf(c), foliarStep(q!, k!, v!, dy!, c.mode, c.impl), flopsOf(c) > 5e9, opts.quick);
    for (const t of [q, k, v, dy]) t!.dispose();
    const flops = flopsOf(c);
    const rate = flops / ms / 1e6;
    console.error(`${nameOf(c)}: ${ms.toFixed(1)} ms`);
    rows.push({
      suite: 'attention', name: nameOf(c), medianMs: ms, flops, rate, unit: 'GFLOP/s',
      peakPct: info.peaks.fmaGflops ? (100 * rate) / info.peaks.fmaGflops : undefined, peers: {},
    });
  }
  if (opts.peers) {
    for (const peer of ['webgpu', 'wasm'] as const) {
      const tf = await tfjs(peer);
      for (const [i, c] of list.entries()) {
        if (c.impl !== 'math') continue; // one peer measurement per case, shared by its two rows
        // single-threaded wasm at seq 1024 costs seconds per call: only the seq 256 cases there
        const skip = !tf || (peer === 'wasm' && c.l > 256);
        const ms = skip ? null : await tfCase(tf, `tfjs-${peer}`, c, opts.quick);
        rows[i]!.peers![`tfjs-${peer}`] = ms;
        rows[i + 1]!.peers![`tfjs-${peer}`] = ms;
      }
    }
  }
  rows.push(await memoryRow(1024, 'forward+backward', 'fused'));
  rows.push(await memoryRow(1024, 'forward+backward', 'math'));
  rows.push(await memoryRow(4096, opts.quick ? 'forward' : 'forward+backward', 'auto'));
  return rows;
}
