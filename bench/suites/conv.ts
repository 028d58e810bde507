/**
 * conv2d forward, input gradient and weight gradient at ResNet18 stage shapes (batch 8, 3x3, stride 1,
 * pad 1) and SD-UNet-like shapes (batch 2). FLOPs = 2·N·K·C·R·S·Ho·Wo for each of the three (they
 * are the same contraction). foliar runs its raw kernels (no autograd bookkeeping); tfjs runs its
 * Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter kernels in its native NHWC layout.
 */
import * as ft from '@foliar/tensor';
import { measure } from '../lib/measure.js';
import { tfjs, tfSync, type Tf } from '../lib/peers.js';
import type { Row, RunInfo } from '../lib/report.js';

interface ConvCase {
  label: string;
  n: number;
  c: number;
  k: number;
  hw: number;
  /** Included in --quick runs. */
  quick: boolean;
}

const DIRS = ['forward', 'grad input', 'grad weight'] as const;
type Dir = (typeof DIRS)[number];

function cases(quick: boolean): ConvCase[] {
  const all: ConvCase[] = [
    { label: 'ResNet18 layer1', n: 8, c: 64, k: 64, hw: 32, quick: true },
    { label: 'ResNet18 layer2', n: 8, c: 128, k: 128, hw: 16, quick: false },
    { label: 'ResNet18 layer3', n: 8, c: 256, k: 256, hw: 8, quick: true },
    { label: 'ResNet18 layer4', n: 8, c: 512, k: 512, hw: 4, quick: false },
    { label: 'SD UNet 320ch', n: 2, c: 320, k: 320, hw: 8, quick: true },
    { label: 'SD UNet 640ch', n: 2, c: 640, k: 640, hw: 8, quick: false },
    { label: 'SD UNet 1280ch', n: 2, c: 1280, k: 1280, hw: 4, quick: true },
  ];
  return all.filter((c) => !quick || c.quick);
}

const flopsOf = (c: ConvCase) => 2 * c.n * c.k * c.c * 9 * c.hw * c.hw;
const caseName = (c: ConvCase, d: Dir) => `conv2d ${d}, ${c.label} [${c.n},${c.c},${c.hw},${c.hw}]→${c.k}, 3x3`;

/** Reads one element: the device has finished when it arrives. */
async function syncOne(t: ft.Tensor): Promise<void> {
  // dispose the flat view too: a leaked view keeps t's buffer alive, and every call would then get a fresh (zero-filled) buffer
  const flat = t.reshape([-1]);
  const v = flat.narrow(0, 0, 1);
  await v.data();
  v.dispose();
  flat.dispose();
}

/** One explicit warm-up call (pipeline compile, pool fill), then the median of a few timed calls. */
async function timeMs(name: string, fn: () => Promise<void>, quick: boolean): Promise<number> {
  await fn();
  const m = await measure(name, fn, { warmup: false, iterations: quick ? 3 : 5, time: quick ? 0 : 800 });
  return m.medianMs;
}

function attrsOf(c: ConvCase): ft.Conv2dAttrs {
  return {
    n: c.n, c: c.c, h: c.hw, w: c.hw, k: c.k, ho: c.hw, wo: c.hw, kh: 3, kw: 3,
    strideH: 1, strideW: 1, dilH: 1, dilW: 1, padTop: 1, padLeft: 1, groups: 1,
  };
}

async function foliarCase(c: ConvCase, quick: boolean): Promise<Record<Dir, number>> {
  const a = attrsOf(c);
  const x = ft.randn([c.n, c.c, c.hw, c.hw]);
  const w = ft.randn([c.k, c.c, 3, 3]).mul(0.05);
  const dy = ft.randn([c.n, c.k, c.hw, c.hw]);
  const run = (f: () => ft.Tensor) => async () => {
    const y = f();
    await syncOne(y);
    y.dispose();
  };
  try {
    return {
      forward: await timeMs(caseName(c, 'forward'), run(() => ft.conv2d(x, w, null, { padding: 1 })), quick),
      'grad input': await timeMs(caseName(c, 'grad input'), run(() => ft.conv2dGradInputRaw(dy, w, a)), quick),
      'grad weight': await timeMs(caseName(c, 'grad weight'), run(() => ft.conv2dGradWeightRaw(x, dy, a)), quick),
    };
  } finally {
    x.dispose();
    w.dispose();
    dy.dispose();
  }
}

/** Timings per direction; null where the backend has no such kernel (tfjs-wasm lacks Conv2DBackpropFilter). */
async function tfCase(tf: Tf, peer: 'webgpu' | 'wasm', c: ConvCase, quick: boolean): Promise<Record<Dir, number | null>> {
  const x = tf.randomNormal([c.n, c.hw, c.hw, c.c]) as import('@tensorflow/tfjs-core').Tensor4D;
  const w = tf.randomNormal([3, 3, c.c, c.k], 0, 0.05) as import('@tensorflow/tfjs-core').Tensor4D;
  const dy = tf.randomNormal([c.n, c.hw, c.hw, c.k]) as import('@tensorflow/tfjs-core').Tensor4D;
  const common = { strides: [1, 1], pad: 'same', dataFormat: 'NHWC' };
  const run = (f: () => import('@tensorflow/tfjs-core').Tensor) => async () => {
    const y = f();
    await tfSync(tf, y);
    y.dispose();
  };
  const has = (kernel: string) => !!tf.getKernel(kernel, peer);
  const name = (d: Dir) => `tfjs-${peer} ${caseName(c, d)}`;
  try {
    return {
      forward: await timeMs(name('forward'), run(() => tf.conv2d(x, w, 1, 'same')), quick),
      'grad input': !has('Conv2DBackpropInput') ? null : await timeMs(name('grad input'), run(() =>
        tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...common, inputShape: x.shape }) as import('@tensorflow/tfjs-core').Tensor), quick),
      'grad weight': !has('Conv2DBackpropFilter') ? null : await timeMs(name('grad weight'), run(() =>
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: w.shape }) as import('@tensorflow/tfjs-core').Tensor), quick),
    };
  } finally {
    x.dispose();
    w.dispose();
    dy.dispose();
  }
}

export async function convSuite(info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const list = cases(opts.quick);
  const rows = new Map<string, Row>();
  for (const c of list) {
    const t = await foliarCase(c, opts.quick);
    const flops = flopsOf(c);
    for (const d of DIRS) {
      const rate = flops / t[d] / 1e6;
      rows.set(caseName(c, d), {
        suite: 'conv', name: caseName(c, d), medianMs: t[d], flops, rate, unit: 'GFLOP/s',
        peakPct: info.peaks.fmaGflops ? (100 * rate) / info.peaks.fmaGflops : undefined, peers: {},
      });
    }
    console.error(`conv ${c.label}: ${DIRS.map((d) => `${d} ${t[d].toFixed(1)} ms`).join(', ')}`);
  }
  if (opts.peers) {
    for (const peer of ['webgpu', 'wasm'] as const) {
      const tf = await tfjs(peer);
      for (const c of list) {
        const t = tf ? await tfCase(tf, peer, c, opts.quick) : null;
        for (const d of DIRS) rows.get(caseName(c, d))!.peers![`tfjs-${peer}`] = t ? t[d] : null;
      }
    }
  }
  return [...rows.values()];
}
