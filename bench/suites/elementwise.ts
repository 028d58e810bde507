/**
 * Elementwise ops, memory-bound: the rate is GB/s of the minimal traffic (each input element read
 * once, each output element written once, f32; a broadcast operand counted at its own size), and
 * "% of peak" is against the measured copy bandwidth. The peers run the same op on the same shapes
 * (tfjs composes SiLU as x · sigmoid(x), as a tfjs user would).
 */
import * as ft from '@foliar/tensor';
import type * as TF from '@tensorflow/tfjs-core';
import { timeCall } from '../lib/measure.js';
import { syncOne } from '../lib/sync.js';
import { tfSync, type Tf } from '../lib/peers.js';
import { memoryBoundRows } from '../lib/memory-bound.js';
import type { Row, RunInfo } from '../lib/report.js';

type Kind = 'add' | 'relu' | 'silu' | 'mul_scalar' | 'bias_add';

interface EwCase {
  kind: Kind;
  shape: number[];
  label: string;
  quick: boolean;
}

function cases(quick: boolean): EwCase[] {
  const all: EwCase[] = [
    { kind: 'add', shape: [8, 64, 32, 32], label: 'residual, ResNet18 layer1 batch 8', quick: true },
    { kind: 'add', shape: [2, 320, 64, 64], label: 'residual, SD 64x64 latents', quick: true },
    { kind: 'relu', shape: [32, 64, 32, 32], label: 'ResNet18 stem, batch 32', quick: true },
    { kind: 'silu', shape: [8, 64, 16, 16], label: 'tiny UNet block', quick: true },
    { kind: 'silu', shape: [2, 320, 64, 64], label: 'SD 64x64 latents', quick: false },
    { kind: 'mul_scalar', shape: [4, 1 << 20], label: '4M values (a scaled update)', quick: false },
    { kind: 'bias_add', shape: [8, 64, 32, 32], label: 'per-channel bias [1, C, 1, 1] (strided kernel)', quick: true },
  ];
  return all.filter((c) => !quick || c.quick);
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const nameOf = (c: EwCase) => `${c.kind} [${c.shape.join(',')}], ${c.label}`;
/** Minimal traffic in bytes: inputs read once, the output written once. */
function bytesOf(c: EwCase): number {
  const n = numel(c.shape);
  if (c.kind === 'add') return 3 * 4 * n;
  if (c.kind === 'bias_add') return 2 * 4 * n + 4 * c.shape[1]!;
  return 2 * 4 * n;
}

/** One warm-up call, then the median of the timed calls. */
const timeMs = (name: string, fn: () => Promise<void>, quick: boolean): Promise<number> => timeCall(name, fn, { iterations: quick ? 5 : 10, time: quick ? 300 : 1000 });

function foliarOp(c: EwCase, x: ft.Tensor, y: ft.Tensor, bias: ft.Tensor): ft.Tensor {
  switch (c.kind) {
    case 'add': return ft.add(x, y);
    case 'relu': return ft.relu(x);
    case 'silu': return ft.silu(x);
    case 'mul_scalar': return ft.mul(x, 0.5);
    case 'bias_add': return ft.add(x, bias);
  }
}

async function foliarCase(c: EwCase, quick: boolean): Promise<number> {
  const x = ft.randn(c.shape), y = ft.randn(c.shape);
  const bias = ft.randn([1, c.shape[1]!, ...c.shape.slice(2).map(() => 1)]);
  try {
    return await timeMs(nameOf(c), async () => {
      const out = foliarOp(c, x, y, bias);
      await syncOne(out);
      out.dispose();
    }, quick);
  } finally {
    for (const t of [x, y, bias]) t.dispose();
  }
}

function tfOp(tf: Tf, c: EwCase, x: TF.Tensor, y: TF.Tensor, bias: TF.Tensor): TF.Tensor {
  switch (c.kind) {
    case 'add': return tf.add(x, y);
    case 'relu': return tf.relu(x);
    case 'silu': return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
    case 'mul_scalar': return tf.mul(x, 0.5);
    case 'bias_add': return tf.add(x, bias);
  }
}

async function tfCase(tf: Tf, peer: string, c: EwCase, quick: boolean): Promise<number> {
  const x = tf.randomNormal(c.shape), y = tf.randomNormal(c.shape);
  const bias = tf.randomNormal([1, c.shape[1]!, ...c.shape.slice(2).map(() => 1)]);
  try {
    return await timeMs(`${peer} ${nameOf(c)}`, async () => {
      const out = tfOp(tf, c, x, y, bias);
      await tfSync(tf, out);
      out.dispose();
    }, quick);
  } finally {
    for (const t of [x, y, bias]) t.dispose();
  }
}

export async function elementwiseSuite(info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  return memoryBoundRows(info, {
    suite: 'elementwise', cases: cases(opts.quick), nameOf, bytesOf,
    foliar: (c) => foliarCase(c, opts.quick),
    peer: (tf, peer, c) => tfCase(tf, peer, c, opts.quick),
  }, opts.peers);
}
