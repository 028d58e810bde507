/**
 * ResNet18 training throughput (images/s): forward + cross-entropy + backward + SGD step, batch 32,
 * at 64x64 and 128x128, on the current adapter; PyTorch on this machine's CPU as the peer when
 * `python3 -c "import torch"` works (same run, so the ratio compares like with like).
 * Inference throughput (eval forward, batch 32) against the same network built from tfjs-core ops on
 * tfjs-backend-webgpu and -wasm (tfjs-core registers no gradients, so no tfjs training row).
 *
 * Part of `npm run bench` once registered in suites/index.ts (`resnet: resnetSuite`); also runs
 * alone: `node --conditions=foliar-source --import tsx bench/suites/resnet.ts [--quick]`.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ft from '@foliar/tensor';
import { SGD } from '@foliar/nn';
import { resnet18 } from '@foliar/classifier';
import type * as TF from '@tensorflow/tfjs-core';
import { countFlops, flopNote } from '../lib/flop-count.js';
import type { Row, RunInfo } from '../lib/report.js';
import { tfjs, tfSync, type Tf } from '../lib/peers.js';

const BATCH = 32;

/** Training steps before the timed ones, the same number on both sides (the peer script takes it too). */
const WARMUP = 3;

/** Median ms of `steps` training steps after WARMUP warm-up steps (tinybench's warm-up would take minutes here). */
async function trainStepMs(size: number, steps: number): Promise<{ ms: number; flops: number }> {
  ft.manualSeed(0);
  const model = resnet18({ numClasses: 4 });
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = ft.randn([BATCH, 3, size, size]);
  const y = ft.tensor(Int32Array.from({ length: BATCH }, (_, i) => i % 4));
  const times: number[] = [];
  let flops = 0;
  const step = async (): Promise<void> => {
    const loss = ft.tidy(() => {
      const l = ft.crossEntropy(model.forward(x), y);
      l.backward();
      return l.detach();
    });
    opt.step();
    opt.zeroGrad();
    await loss.data(); // the device has finished the step
    loss.dispose();
  };
  try {
    flops = (await countFlops(ft.getBackend(), step)).flops; // the first warm-up step (pipelines compile) counts the work
    for (let i = 1; i < WARMUP; i++) await step(); // caches and V8's optimizing tiers settle, as in a training run
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await step();
      times.push(performance.now() - t0);
    }
  } finally {
    x.dispose();
    y.dispose();
    opt.dispose();
    model.dispose();
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, flops };
}

/** Median ms of eval forwards (batch 32) after one warm-up. */
async function inferMs(size: number, runs: number): Promise<number> {
  ft.manualSeed(0);
  const model = resnet18({ numClasses: 4 });
  model.eval();
  const x = ft.randn([BATCH, 3, size, size]);
  const times: number[] = [];
  try {
    for (let i = 0; i <= runs; i++) {
      const t0 = performance.now();
      const y = ft.noGrad(() => model.forward(x));
      await y.data();
      y.dispose();
      if (i > 0) times.push(performance.now() - t0);
    }
  } finally {
    x.dispose();
    model.dispose();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * torchvision's ResNet18 (eval: batch norm with running statistics) written with tfjs-core ops in
 * NHWC, random weights: the same arithmetic as foliar's, for the inference comparison.
 */
function tfResnet18(tf: Tf): { forward: (x: TF.Tensor4D) => TF.Tensor; dispose: () => void } {
  const ws: TF.Tensor[] = [];
  const w = <T extends TF.Tensor>(t: T): T => (ws.push(t), t);
  const conv = (k: number, cin: number, cout: number) => w(tf.randomNormal([k, k, cin, cout], 0, Math.sqrt(2 / (k * k * cin))) as TF.Tensor4D);
  const bn = (c: number) => ({ mean: w(tf.zeros([c]) as TF.Tensor1D), variance: w(tf.ones([c]) as TF.Tensor1D), scale: w(tf.ones([c]) as TF.Tensor1D), offset: w(tf.zeros([c]) as TF.Tensor1D) });
  const cbn = (x: TF.Tensor4D, f: TF.Tensor4D, b: ReturnType<typeof bn>, stride: number, pad: number): TF.Tensor4D =>
    tf.batchNorm(tf.conv2d(x, f, stride, pad === 0 ? 'valid' : [[0, 0], [pad, pad], [pad, pad], [0, 0]]), b.mean, b.variance, b.offset, b.scale, 1e-5) as TF.Tensor4D;
  const stem = { f: conv(7, 3, 64), b: bn(64) };
  const blocks: { f1: TF.Tensor4D; b1: ReturnType<typeof bn>; f2: TF.Tensor4D; b2: ReturnType<typeof bn>; stride: number; down: { f: TF.Tensor4D; b: ReturnType<typeof bn> } | null }[] = [];
  let cin = 64;
  for (const [cout, stride] of [[64, 1], [128, 2], [256, 2], [512, 2]] as const) {
    for (let i = 0; i < 2; i++) {
      const s = i === 0 ? stride : 1;
      blocks.push({ f1: conv(3, cin, cout), b1: bn(cout), f2: conv(3, cout, cout), b2: bn(cout), stride: s, down: s !== 1 || cin !== cout ? { f: conv(1, cin, cout), b: bn(cout) } : null });
      cin = cout;
    }
  }
  const fc = w(tf.randomNormal([512, 4], 0, 0.05) as TF.Tensor2D);
  const fcb = w(tf.zeros([4]) as TF.Tensor1D);
  return {
    forward: (x) => tf.tidy(() => {
      let h = tf.relu(cbn(x, stem.f, stem.b, 2, 3)) as TF.Tensor4D;
      h = tf.maxPool(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]], -Infinity) as TF.Tensor4D, 3, 2, 'valid');
      for (const b of blocks) {
        const y = tf.relu(cbn(h, b.f1, b.b1, b.stride, 1)) as TF.Tensor4D;
        const z = cbn(y, b.f2, b.b2, 1, 1);
        h = tf.relu(tf.add(z, b.down ? cbn(h, b.down.f, b.down.b, b.stride, 0) : h)) as TF.Tensor4D;
      }
      return tf.add(tf.matMul(tf.mean(h, [1, 2]) as TF.Tensor2D, fc), fcb);
    }),
    dispose: () => tf.dispose(ws),
  };
}

async function tfInferMs(tf: Tf, size: number, runs: number): Promise<number> {
  const net = tfResnet18(tf);
  const x = tf.randomNormal([BATCH, size, size, 3]) as TF.Tensor4D;
  const times: number[] = [];
  try {
    for (let i = 0; i <= runs; i++) {
      const t0 = performance.now();
      const y = net.forward(x);
      await tfSync(tf, y);
      y.dispose();
      if (i > 0) times.push(performance.now() - t0);
    }
  } finally {
    x.dispose();
    net.dispose();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** The first Python that imports torch: $FOLIAR_PYTHON, python3, then the system's (Debian's python3-torch). */
export function pythonWithTorch(): { python: string } | { why: string } {
  const candidates = [process.env.FOLIAR_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  let why = '';
  for (const python of [...new Set(candidates)]) {
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (!probe.error && probe.status === 0) return { python };
    why ||= probe.error?.message ?? probe.stderr.trim().split('\n').pop() ?? '';
  }
  return { why: `python3 -c "import torch" failed (${why})` };
}

/** PyTorch CPU medians per size, or the reason there are none. */
function torchPeer(sizes: number[], steps: number): { ms: Record<string, number>; label: string } | { skip: string } {
  const py = pythonWithTorch();
  if ('why' in py) return { skip: `PyTorch peer skipped: ${py.why}` };
  const script = join(import.meta.dirname, 'resnet_torch.py');
  // FOLIAR_TORCH_DEVICE=cuda compares with PyTorch on the same NVIDIA GPU the WebGPU adapter runs on
  const device = process.env.FOLIAR_TORCH_DEVICE ?? 'cpu';
  const r = spawnSync(py.python, [script, `sizes=${sizes.join(',')}`, `batch=${BATCH}`, `steps=${steps}`, `warmup=${WARMUP}`, `device=${device}`], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return { skip: `PyTorch peer failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}` };
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { torch: string; threads: number; device: string; results: Record<string, number> };
  console.error(`PyTorch ${out.torch} on ${out.device}, ${out.threads} threads (${py.python})`);
  return { ms: out.results, label: device === 'cpu' ? 'pytorch-cpu' : `pytorch-${device}` };
}

export async function resnetSuite(info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const sizes = [64, 128];
  const steps = opts.quick ? 2 : 4;
  const rows: Row[] = [];
  for (const s of sizes) {
    const { ms, flops } = await trainStepMs(s, steps);
    console.error(`resnet18 train ${s}x${s}: ${ms.toFixed(0)} ms/step, ${(BATCH / (ms / 1000)).toFixed(1)} img/s`);
    rows.push({ suite: 'resnet', name: `ResNet18 train step, batch ${BATCH}, ${s}x${s}`, medianMs: ms, flops, rate: BATCH / (ms / 1000), unit: 'img/s', peers: {} });
  }
  const inferRows: Row[] = [];
  for (const s of sizes) {
    const ms = await inferMs(s, steps + 1);
    console.error(`resnet18 eval forward ${s}x${s}: ${ms.toFixed(0)} ms, ${(BATCH / (ms / 1000)).toFixed(1)} img/s`);
    inferRows.push({ suite: 'resnet', name: `ResNet18 eval forward, batch ${BATCH}, ${s}x${s}`, medianMs: ms, rate: BATCH / (ms / 1000), unit: 'img/s', peers: {} });
  }
  if (opts.peers) {
    for (const peer of ['webgpu', 'wasm'] as const) {
      const tf = await tfjs(peer);
      for (const [i, s] of sizes.entries()) {
        // single-threaded wasm at 128x128 takes many seconds per batch: 64x64 only there
        inferRows[i]!.peers![`tfjs-${peer}`] = tf && !(peer === 'wasm' && s > 64) ? await tfInferMs(tf, s, steps + 1) : null;
      }
    }
  }
  if (!opts.peers) for (const r of rows) r.note = flopNote(r.flops!, r.medianMs, undefined, info.peaks.fmaGflops);
  if (opts.peers) {
    const peer = torchPeer(sizes, steps);
    if ('skip' in peer) {
      console.error(peer.skip);
      for (const r of rows) { r.peers![`pytorch-${process.env.FOLIAR_TORCH_DEVICE ?? 'cpu'}`] = null; r.note = `${peer.skip}; ${flopNote(r.flops!, r.medianMs, undefined, info.peaks.fmaGflops)}`; }
    } else {
      rows.forEach((r, i) => {
        const p = peer.ms[String(sizes[i])]!;
        r.peers![peer.label] = p;
        r.note = `${peer.label} ${(BATCH / (p / 1000)).toFixed(1)} img/s; foliar/pytorch speed ratio ${(p / r.medianMs).toFixed(2)}${r.flops ? `; ${flopNote(r.flops, r.medianMs, p, info.peaks.fmaGflops)}` : ''}`;
        console.error(`${r.name}: ${r.note}`);
      });
    }
  }
  return [...rows, ...inferRows];
}

// standalone: print the rows as JSON
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const backend = await ft.init({ backend: (process.env.FOLIAR_BACKEND as 'webgpu' | 'cpu' | undefined) ?? 'webgpu' });
  console.error(`bench on ${backend.describe()}`);
  const info: RunInfo = { adapter: backend.describe(), dawn: '', cpu: '', node: process.version, date: new Date().toISOString(), peaks: {} };
  const rows = await resnetSuite(info, { quick: process.argv.includes('--quick'), peers: !process.argv.includes('--no-peers') });
  console.log(JSON.stringify(rows, null, 2));
  ft.shutdown();
}
