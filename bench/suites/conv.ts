/**
 * conv2d forward, input gradient and weight gradient at ResNet18 stage shapes (batch 8, 3x3, stride 1,
 * pad 1), a ResNet downsampling conv (stride 2) and 1x1 projection, small-channel VAE shapes (batch 8,
 * 64² and 32² images) and SD-UNet-like shapes (batch 2). FLOPs = 2·N·K·C·R·S·Ho·Wo for each of the
 * three (they are the same contraction). The per-adapter conv variant is tuned before the first case. foliar runs its raw kernels (no autograd bookkeeping); tfjs runs its
 * Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter kernels in its native NHWC layout.
 */
import * as ft from '@foliar/tensor';
import { timeCall } from '../lib/measure.js';
import { syncOne } from '../lib/sync.js';
import { tfjs, tfSync, type Tf } from '../lib/peers.js';
import type { Row, RunInfo } from '../lib/report.js';
import { tuneConv, convVariant, convWindowLanes } from '../../packages/tensor/src/ops/conv/webgpu.js';
import { windowApplies, type WindowMode } from '../../packages/tensor/src/ops/conv/webgpu-window.js';

/** Tunes (or reads the cached choice) and returns the variant conv2d uses on this backend. */
async function tuneConvNow(be: ft.WebGPUBackend): Promise<string> {
  const r = process.env.FOLIAR_NO_TUNE === '1' ? null : await tuneConv(be);
  const v = convVariant(be);
  if (r) console.error(`conv2d variant: ${v} (${Object.entries(r.ms).map(([k, t]) => `${k} ${Number.isFinite(t) ? t.toFixed(2) : 'n/a'} ms`).join(', ')})`);
  return v;
}

interface ConvCase {
  label: string;
  n: number;
  c: number;
  k: number;
  hw: number;
  /** Kernel size (square; default 3), stride (default 1); padding is (r - 1) / 2. */
  r?: number;
  stride?: number;
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
    { label: 'ResNet18 downsample', n: 8, c: 64, k: 128, hw: 32, stride: 2, quick: false },
    { label: 'ResNet18 1x1 projection', n: 8, c: 64, k: 128, hw: 32, r: 1, quick: false },
    { label: 'VAE 3ch in', n: 8, c: 3, k: 16, hw: 64, quick: false },
    { label: 'VAE 16ch', n: 8, c: 16, k: 16, hw: 64, quick: true },
    { label: 'VAE 32ch', n: 8, c: 32, k: 32, hw: 32, quick: false },
    { label: 'SD UNet 320ch', n: 2, c: 320, k: 320, hw: 8, quick: true },
    { label: 'SD UNet 640ch', n: 2, c: 640, k: 640, hw: 8, quick: false },
    { label: 'SD UNet 1280ch', n: 2, c: 1280, k: 1280, hw: 4, quick: true },
  ];
  return all.filter((c) => !quick || c.quick);
}

const geom = (c: ConvCase) => {
  const r = c.r ?? 3, stride = c.stride ?? 1, pad = (r - 1) >> 1;
  return { r, stride, pad, ho: Math.floor((c.hw + 2 * pad - r) / stride) + 1 };
};
const flopsOf = (c: ConvCase) => {
  const { r, ho } = geom(c);
  return 2 * c.n * c.k * c.c * r * r * ho * ho;
};
const caseName = (c: ConvCase, d: Dir) => {
  const { r, stride } = geom(c);
  return `conv2d ${d}, ${c.label} [${c.n},${c.c},${c.hw},${c.hw}]→${c.k}, ${r}x${r}${stride > 1 ? ` stride ${stride}` : ''}`;
};

/** The variant, and the kernel that actually runs where the window variant leaves a case to the GEMM. */
function kernelNote(variant: string, c: ConvCase, d: Dir): string {
  const be = ft.webgpuBackend();
  const lanes = be ? convWindowLanes(be) : null;
  const mode: WindowMode = d === 'forward' ? 'fwd' : d === 'grad input' ? 'dgrad' : 'wgrad';
  if (variant !== 'window' || lanes === null || windowApplies(mode, attrsOf(c), lanes)) return `variant '${variant}'`;
  return `variant '${variant}' (GEMM kernel here)`;
}

/** One warm-up call, then the median of a few timed calls. */
const timeMs = (name: string, fn: () => Promise<void>, quick: boolean): Promise<number> => timeCall(name, fn, { iterations: quick ? 3 : 5, time: quick ? 0 : 800 });

function attrsOf(c: ConvCase): ft.Conv2dAttrs {
  const { r, stride, pad, ho } = geom(c);
  return {
    n: c.n, c: c.c, h: c.hw, w: c.hw, k: c.k, ho, wo: ho, kh: r, kw: r,
    strideH: stride, strideW: stride, dilH: 1, dilW: 1, padTop: pad, padLeft: pad, groups: 1,
  };
}

async function foliarCase(c: ConvCase, quick: boolean): Promise<Record<Dir, number>> {
  const a = attrsOf(c);
  const x = ft.randn([c.n, c.c, c.hw, c.hw]);
  const w = ft.randn([c.k, c.c, a.kh, a.kw]).mul(0.05);
  const dy = ft.randn([c.n, c.k, a.ho, a.wo]);
  const run = (f: () => ft.Tensor) => async () => {
    const y = f();
    await syncOne(y);
    y.dispose();
  };
  try {
    return {
      forward: await timeMs(caseName(c, 'forward'), run(() => ft.conv2d(x, w, null, { padding: a.padTop, stride: a.strideH })), quick),
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
  const { r, stride, ho } = geom(c);
  const x = tf.randomNormal([c.n, c.hw, c.hw, c.c]) as import('@tensorflow/tfjs-core').Tensor4D;
  const w = tf.randomNormal([r, r, c.c, c.k], 0, 0.05) as import('@tensorflow/tfjs-core').Tensor4D;
  const dy = tf.randomNormal([c.n, ho, ho, c.k]) as import('@tensorflow/tfjs-core').Tensor4D;
  const common = { strides: [stride, stride], pad: 'same', dataFormat: 'NHWC' };
  const run = (f: () => import('@tensorflow/tfjs-core').Tensor) => async () => {
    const y = f();
    await tfSync(tf, y);
    y.dispose();
  };
  const has = (kernel: string) => !!tf.getKernel(kernel, peer);
  const name = (d: Dir) => `tfjs-${peer} ${caseName(c, d)}`;
  try {
    return {
      forward: await timeMs(name('forward'), run(() => tf.conv2d(x, w, stride, 'same')), quick),
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
  // the per-adapter variant choice, measured (or read from the cache) now: no background tuning
  // may overlap the timed cases
  const be = ft.webgpuBackend();
  const variant = be ? await tuneConvNow(be) : null;
  const rows = new Map<string, Row>();
  for (const c of list) {
    const t = await foliarCase(c, opts.quick);
    const flops = flopsOf(c);
    for (const d of DIRS) {
      const rate = flops / t[d] / 1e6;
      rows.set(caseName(c, d), {
        suite: 'conv', name: caseName(c, d), medianMs: t[d], flops, rate, unit: 'GFLOP/s',
        peakPct: info.peaks.fmaGflops ? (100 * rate) / info.peaks.fmaGflops : undefined, peers: {},
        note: variant ? kernelNote(variant, c, d) : undefined,
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
