/**
 * Normalisations and softmax, memory-bound: the rate is GB/s of the minimal traffic (each input
 * element read once, each output element written once, f32; the small affine vectors are ignored),
 * and "% of peak" is against the measured copy bandwidth. tfjs has softmax and an inference-style
 * batchNorm(x, mean, var, offset, scale); its layer/group norms and the batch statistics of training
 * batch norm are composed from moments + elementwise ops, as a tfjs user would write them.
 */
import * as ft from '@foliar/tensor';
import type * as TF from '@tensorflow/tfjs-core';
import { timeCall } from '../lib/measure.js';
import { syncOne } from '../lib/sync.js';
import { tfSync, type Tf } from '../lib/peers.js';
import { memoryBoundRows } from '../lib/memory-bound.js';
import type { Row, RunInfo } from '../lib/report.js';

type Kind = 'group_norm' | 'layer_norm' | 'softmax' | 'batch_norm';

interface NormCase {
  kind: Kind;
  shape: number[];
  label: string;
  quick: boolean;
}

function cases(quick: boolean): NormCase[] {
  const all: NormCase[] = [
    { kind: 'group_norm', shape: [2, 320, 64, 64], label: 'SD 64x64 latents, 320ch', quick: true },
    { kind: 'group_norm', shape: [2, 640, 32, 32], label: 'SD 640ch', quick: false },
    { kind: 'group_norm', shape: [2, 1280, 16, 16], label: 'SD 1280ch', quick: true },
    { kind: 'layer_norm', shape: [2, 1024, 640], label: 'SD transformer tokens', quick: true },
    { kind: 'layer_norm', shape: [2, 4096, 320], label: 'SD transformer tokens', quick: false },
    { kind: 'softmax', shape: [16384, 77], label: 'cross-attention rows of 77', quick: true },
    { kind: 'softmax', shape: [4096, 1024], label: 'rows of 1024', quick: true },
    { kind: 'softmax', shape: [1024, 4096], label: 'rows of 4096', quick: true },
    { kind: 'batch_norm', shape: [8, 64, 32, 32], label: 'training, ResNet18 layer1', quick: true },
    { kind: 'batch_norm', shape: [32, 128, 16, 16], label: 'training, ResNet18 layer2 batch 32', quick: false },
  ];
  return all.filter((c) => !quick || c.quick);
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const nameOf = (c: NormCase) => `${c.kind} [${c.shape.join(',')}]${c.kind === 'group_norm' ? ' 32 groups' : ''}, ${c.label}`;
const bytesOf = (c: NormCase) => 2 * 4 * numel(c.shape);

/** One warm-up call, then the median of the timed calls. */
const timeMs = (name: string, fn: () => Promise<void>, quick: boolean): Promise<number> => timeCall(name, fn, { iterations: quick ? 5 : 10, time: quick ? 300 : 1000 });

async function foliarCase(c: NormCase, quick: boolean): Promise<number> {
  const x = ft.randn(c.shape);
  const C = c.kind === 'layer_norm' || c.kind === 'softmax' ? c.shape.at(-1)! : c.shape[1]!;
  const w = ft.randn([C]), b = ft.randn([C]);
  const rm = ft.zeros([C]), rv = ft.ones([C]);
  const op = (): ft.Tensor => {
    switch (c.kind) {
      case 'group_norm': return ft.groupNorm(x, 32, w, b);
      case 'layer_norm': return ft.layerNorm(x, [C], w, b);
      case 'softmax': return ft.softmax(x, -1);
      case 'batch_norm': return ft.batchNorm(x, rm, rv, w, b, { training: true });
    }
  };
  try {
    return await timeMs(nameOf(c), async () => {
      const y = op();
      await syncOne(y);
      y.dispose();
    }, quick);
  } finally {
    for (const t of [x, w, b, rm, rv]) t.dispose();
  }
}

/** tfjs equivalents (NCHW kept: the ops are layout-agnostic elementwise + reductions). */
function tfOp(tf: Tf, c: NormCase, x: TF.Tensor, w: TF.Tensor, b: TF.Tensor): TF.Tensor {
  const eps = 1e-5;
  const N = c.shape[0]!;
  const C = c.kind === 'layer_norm' || c.kind === 'softmax' ? c.shape.at(-1)! : c.shape[1]!;
  switch (c.kind) {
    case 'softmax':
      return tf.softmax(x);
    case 'layer_norm':
      return tf.tidy(() => {
        const { mean, variance } = tf.moments(x, -1, true);
        const aff = [...c.shape.slice(0, -1).map(() => 1), C];
        return tf.batchNorm(x, mean, variance, tf.reshape(b, aff), tf.reshape(w, aff), eps);
      });
    case 'group_norm':
      return tf.tidy(() => {
        const xg = tf.reshape(x, [N, 32, -1]);
        const { mean, variance } = tf.moments(xg, -1, true);
        const xn = tf.reshape(tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, eps))), c.shape);
        const aff = [1, C, ...c.shape.slice(2).map(() => 1)];
        return tf.add(tf.mul(xn, tf.reshape(w, aff)), tf.reshape(b, aff));
      });
    case 'batch_norm':
      return tf.tidy(() => {
        const aff = [1, C, ...c.shape.slice(2).map(() => 1)];
        const { mean, variance } = tf.moments(x, [0, ...c.shape.slice(2).map((_, i) => i + 2)], true);
        return tf.batchNorm(x, mean, variance, tf.reshape(b, aff), tf.reshape(w, aff), eps);
      });
  }
}

async function tfCase(tf: Tf, peer: string, c: NormCase, quick: boolean): Promise<number> {
  const C = c.kind === 'layer_norm' || c.kind === 'softmax' ? c.shape.at(-1)! : c.shape[1]!;
  const x = tf.randomNormal(c.shape), w = tf.randomNormal([C]), b = tf.randomNormal([C]);
  try {
    return await timeMs(`${peer} ${nameOf(c)}`, async () => {
      const y = tfOp(tf, c, x, w, b);
      await tfSync(tf, y);
      y.dispose();
    }, quick);
  } finally {
    for (const t of [x, w, b]) t.dispose();
  }
}

export async function normSuite(info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  return memoryBoundRows(info, {
    suite: 'norm', cases: cases(opts.quick), nameOf, bytesOf,
    foliar: (c) => foliarCase(c, opts.quick),
    peer: (tf, peer, c) => tfCase(tf, peer, c, opts.quick),
  }, opts.peers);
}
