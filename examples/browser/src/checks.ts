/**
 * What the demo page runs for its self-test (and what test/browser runs the same way in Node, to
 * compare): WebGPU against the CPU reference backend at awkward sizes, the README's MLP, a matmul
 * timing. Platform-neutral: only @foliar packages, no DOM, no Node built-in.
 */
import * as ft from '@foliar/tensor';
import { Linear, ReLU, Sequential, AdamW } from '@foliar/nn';
import { spiral } from '../../lib/spiral.js';

export interface Comparison {
  what: string;
  /** Largest |webgpu - cpu| over the output. */
  maxAbsDiff: number;
  /** Largest |cpu| (the scale the difference is read against). */
  maxAbs: number;
  ok: boolean;
}

function gpu(): ft.Backend {
  const be = ft.webgpuBackend();
  if (!be) throw new Error(`no WebGPU backend (${ft.describeBackend()})`);
  return be;
}

/** `t` (on the CPU backend) copied to the WebGPU backend. */
async function toGpu(t: ft.Tensor): Promise<ft.Tensor> {
  return ft.tensor(await t.data(), { shape: [...t.shape], backend: gpu() });
}

async function compare(what: string, cpuOut: ft.Tensor, gpuOut: ft.Tensor, rtol: number): Promise<Comparison> {
  const a = await cpuOut.dataF32(), b = await gpuOut.dataF32();
  let maxAbsDiff = 0, maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    maxAbsDiff = Number.isNaN(d) ? Infinity : Math.max(maxAbsDiff, d);
    maxAbs = Math.max(maxAbs, Math.abs(a[i]!));
  }
  return { what, maxAbsDiff, maxAbs, ok: a.length === b.length && maxAbsDiff <= rtol * Math.max(1, maxAbs) };
}

/** A·B for [m, k]·[k, n] on WebGPU against the CPU backend (same random inputs). */
export async function compareMatmul(m: number, k: number, n: number, seed = 1): Promise<Comparison> {
  const cpu = ft.cpuBackend();
  const g = new ft.Generator(seed);
  const a = ft.randn([m, k], { generator: g, backend: cpu }), b = ft.randn([k, n], { generator: g, backend: cpu });
  const ga = await toGpu(a), gb = await toGpu(b);
  const c = ft.matmul(a, b), gc = ft.matmul(ga, gb);
  const r = await compare(`matmul ${m}x${k}x${n}`, c, gc, 1e-4);
  for (const t of [a, b, ga, gb, c, gc]) t.dispose();
  return r;
}

/**
 * ones[n, n]·ones[n, n] must be n everywhere: the check that catches a subgroup kernel written for
 * more lanes than the adapter has (8-lane broadcasts on 4-lane SwiftShader gave n/2).
 */
export async function onesProduct(n: number): Promise<{ n: number; min: number; max: number; ok: boolean }> {
  const a = ft.ones([n, n], { backend: gpu() });
  const c = ft.matmul(a, a);
  const d = await c.dataF32();
  let min = Infinity, max = -Infinity;
  for (const v of d) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  a.dispose();
  c.dispose();
  return { n, min, max, ok: min === n && max === n };
}

/** conv2d (N, C, H, W) * (K, C, kh, kw) with stride and padding, WebGPU against the CPU backend. */
export async function compareConv(shape: { n: number; c: number; h: number; w: number; k: number; kernel: number; stride?: number; padding?: number }, seed = 2): Promise<Comparison> {
  const cpu = ft.cpuBackend();
  const g = new ft.Generator(seed);
  const { n, c, h, w, k, kernel } = shape;
  const x = ft.randn([n, c, h, w], { generator: g, backend: cpu });
  const wt = ft.randn([k, c, kernel, kernel], { generator: g, backend: cpu, std: 0.2 });
  const bias = ft.randn([k], { generator: g, backend: cpu });
  const [gx, gw, gbias] = [await toGpu(x), await toGpu(wt), await toGpu(bias)];
  const opts = { stride: shape.stride ?? 1, padding: shape.padding ?? 0 };
  const y = ft.conv2d(x, wt, bias, opts), gy = ft.conv2d(gx, gw, gbias, opts);
  const r = await compare(`conv2d N${n} C${c} ${h}x${w} K${k} ${kernel}x${kernel} s${opts.stride} p${opts.padding}`, y, gy, 1e-4);
  for (const t of [x, wt, bias, gx, gw, gbias, y, gy]) t.dispose();
  return r;
}


/**
 * Trains the README's MLP on the spiral on the default backend, `steps` AdamW steps; `onLoss` hears
 * every `every`-th loss (reading a loss back waits for the GPU, so not every step).
 */
export async function trainMlp(opts: { steps?: number; every?: number; seed?: number; onLoss?: (step: number, loss: number) => void | Promise<void> } = {}): Promise<{ losses: [number, number][]; ms: number; accuracy: number }> {
  const steps = opts.steps ?? 200, every = opts.every ?? 10;
  ft.manualSeed(opts.seed ?? 0);
  const data = spiral();
  const x = ft.tensor(data.x, { shape: [data.n, 2] });
  const y = ft.tensor(data.y);
  const model = new Sequential(new Linear(2, 64), new ReLU(), new Linear(64, 64), new ReLU(), new Linear(64, 3));
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 1e-4 });
  const losses: [number, number][] = [];
  const t0 = performance.now();
  for (let step = 0; step <= steps; step++) {
    const loss = ft.tidy(() => {
      const l = ft.crossEntropy(model.forward(x), y);
      l.backward();
      return l;
    });
    opt.step();
    opt.zeroGrad();
    if (step % every === 0 || step === steps) {
      const v = await loss.item();
      losses.push([step, v]);
      await opts.onLoss?.(step, v);
    }
    loss.dispose();
  }
  const ms = performance.now() - t0;
  const acc = ft.tidy(() => model.forward(x).argmax(1).toFloat().eq(y.toFloat()).mean());
  const accuracy = await acc.item();
  acc.dispose();
  x.dispose();
  y.dispose();
  model.dispose();
  return { losses, ms, accuracy };
}

/** Median GFLOP/s of an n×n×n matmul on the default backend (`reps` timed runs after one warm-up). */
export async function matmulGflops(n: number, reps = 3): Promise<{ n: number; gflops: number; ms: number }> {
  const g = new ft.Generator(3);
  const a = ft.randn([n, n], { generator: g }), b = ft.randn([n, n], { generator: g });
  const run = async () => {
    const c = ft.matmul(a, b);
    await c.dataF32();
    c.dispose();
  };
  await run();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  a.dispose();
  b.dispose();
  times.sort((p, q) => p - q);
  const ms = times[Math.floor(times.length / 2)]!;
  return { n, ms, gflops: (2 * n ** 3) / (ms * 1e6) };
}
