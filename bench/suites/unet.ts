/**
 * The training-speed table of issue 12: one UNet2DConditionModel training step (forward, MSE, backward,
 * AdamW, loss read back) and one forward without gradients, batch 8, 77-token context, for the study's
 * UNet sizes, next to PyTorch running diffusers' layout of the same model (unet_torch.py, written out so
 * diffusers is not needed) in the same run. The peer runs where a Python with torch is found
 * ($FOLIAR_PYTHON, python3, /usr/bin/python3) on the CPU, or on FOLIAR_TORCH_DEVICE (cuda on an NVIDIA
 * machine); otherwise its column says why it is missing. Parameter counts of both sides are compared,
 * so a layout drift shows in the note.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { unetTrainCase, UNET_CONTEXT, UNET_CROSS, UNET_HEADS } from '../lib/unet-train.js';
import type { Row, RunInfo } from '../lib/report.js';
import { pythonWithTorch } from './resnet.js';
import { countFlops, flopNote } from '../lib/flop-count.js';
import * as ft from '@foliar/tensor';

const B = 8;
const CONTEXT = UNET_CONTEXT;
const CROSS = UNET_CROSS;
const HEADS = UNET_HEADS;

interface UNetCase { channels: number[]; size: number }

const CASES: UNetCase[] = [
  { channels: [32, 64], size: 16 },
  { channels: [32, 64], size: 32 },
  { channels: [64, 128, 128], size: 32 },
];

/** Warm-up calls before the timed ones, the same number on both sides (the peer script takes it too). */
const WARMUP = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const label = (c: UNetCase) => `UNet [${c.channels.join(', ')}], ${c.size}x${c.size}x4 latents, batch ${B}, ${CONTEXT}-token context`;

async function foliarCase(c: UNetCase, steps: number): Promise<{ params: number; trainMs: number; forwardMs: number; trainFlops: number; forwardFlops: number }> {
  const u = await unetTrainCase(c.channels, c.size, B);
  const train: number[] = [];
  const fwd: number[] = [];
  let trainFlops = 0, forwardFlops = 0;
  try {
    // the first warm-up call (pipelines compile) also counts the work of one call; the others let the
    // runtime's caches (bind groups, buffer pool) and V8's optimizing tiers settle, as in a training run
    trainFlops = (await countFlops(ft.getBackend(), () => u.step())).flops;
    for (let i = 1; i < WARMUP; i++) await u.step();
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await u.step();
      train.push(performance.now() - t0);
    }
    forwardFlops = (await countFlops(ft.getBackend(), () => u.forward())).flops;
    for (let i = 1; i < WARMUP; i++) await u.forward();
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await u.forward();
      fwd.push(performance.now() - t0);
    }
  } finally {
    u.dispose();
  }
  return { params: u.params, trainMs: median(train), forwardMs: median(fwd), trainFlops, forwardFlops };
}

type Peer = { label: string; results: { params: number; train_ms: number; forward_ms: number }[] } | { label: string; skip: string };

function torchPeer(steps: number): Peer {
  const device = process.env.FOLIAR_TORCH_DEVICE ?? 'cpu';
  const peerLabel = `pytorch-${device}`;
  const py = pythonWithTorch();
  if ('why' in py) return { label: peerLabel, skip: `PyTorch peer skipped: ${py.why}` };
  const args = [join(import.meta.dirname, 'unet_torch.py'), `configs=${JSON.stringify(CASES)}`, `batch=${B}`, `context=${CONTEXT}`, `cross=${CROSS}`, `heads=${HEADS}`, 'layers=2', `steps=${steps}`, `warmup=${WARMUP}`, `device=${device}`];
  const r = spawnSync(py.python, args, { encoding: 'utf8', timeout: 1_800_000 });
  if (r.status !== 0) return { label: peerLabel, skip: `PyTorch peer failed: ${(r.stderr ?? r.error?.message ?? '').trim().split('\n').slice(-3).join(' ')}` };
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { torch: string; threads: number; device: string; results: { params: number; train_ms: number; forward_ms: number }[] };
  console.error(`PyTorch ${out.torch} on ${out.device}, ${out.threads} threads (${py.python})`);
  return { label: peerLabel, results: out.results };
}

export async function unetSuite(info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const steps = opts.quick ? 3 : 5;
  const ours: Awaited<ReturnType<typeof foliarCase>>[] = [];
  for (const c of CASES) {
    const m = await foliarCase(c, steps);
    console.error(`${label(c)}: train step ${m.trainMs.toFixed(0)} ms, forward ${m.forwardMs.toFixed(0)} ms (${(m.params / 1e6).toFixed(2)}M parameters)`);
    ours.push(m);
  }
  const peer = opts.peers ? torchPeer(steps) : null;
  const rows: Row[] = [];
  CASES.forEach((c, i) => {
    const m = ours[i]!;
    const p = peer && 'results' in peer ? peer.results[i] : undefined;
    const paramsNote = p && p.params !== m.params ? `; parameter counts differ: foliar ${m.params}, PyTorch ${p.params}` : '';
    for (const [kind, ms, pms, flops] of [['train step (MSE + AdamW)', m.trainMs, p?.train_ms, m.trainFlops], ['forward (no grad)', m.forwardMs, p?.forward_ms, m.forwardFlops]] as const) {
      const fma = info.peaks.fmaGflops;
      const rate = flops / ms / 1e6;
      const row: Row = { suite: 'unet', name: `${label(c)}, ${kind}`, medianMs: ms, flops, rate, unit: 'GFLOP/s', peakPct: fma ? (100 * rate) / fma : undefined, peers: {} };
      const work = flopNote(flops, ms, pms, fma);
      if (peer) {
        row.peers![peer.label] = pms ?? null;
        row.note = 'skip' in peer ? `${peer.skip}; ${work}` : `${peer.label} ${pms!.toFixed(0)} ms; foliar/pytorch speed ratio ${(pms! / ms).toFixed(2)}; ${work}; ${(m.params / 1e6).toFixed(2)}M parameters${paramsNote}`;
      } else row.note = work;
      rows.push(row);
    }
  });
  return rows;
}
