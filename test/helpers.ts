/**
 * Shared test helpers: backend setup, seeded random data, tolerance checks that report the worst
 * element, a central-difference gradient checker, and the location of ../shared.
 */
import { existsSync, readFileSync } from 'node:fs';
import { skip, skipPart, requiredBy } from './harness.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  init, shutdown, cpuBackend, noGrad, tensor, memory, NoAdapterError, loadSafetensors,
  type Backend, type Tensor, type AnyTypedArray,
} from '@foliar/tensor';

export { skip, skipPart, type SkipKind } from './harness.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------- backends

export interface Backends {
  /**
   * The WebGPU backend. Where there is none (no adapter, or FOLIAR_BACKEND=cpu), reading it records a
   * skipped part of the running test (see `skipPart`: the test is counted as skipped, a failure under
   * FOLIAR_REQUIRE_WEBGPU=1) and gives the CPU backend, so the rest of the test still runs on the CPU.
   */
  readonly gpu: Backend;
  readonly cpu: Backend;
  /** False when WebGPU is unavailable (reading `gpu` then gives the CPU backend). */
  readonly hasGpu: boolean;
  /** Why WebGPU is unavailable (null when it is available). */
  readonly noGpuReason: string | null;
}

const state: { be: Backends | null } = { be: null };

function makeBackends(gpu: Backend | null, reason: string | null): Backends {
  const cpu = cpuBackend();
  return {
    cpu,
    hasGpu: gpu !== null,
    noGpuReason: reason,
    get gpu(): Backend {
      if (gpu) return gpu;
      skipPart(`no WebGPU: ${reason} (ran on the CPU only)`, 'webgpu');
      return cpu;
    },
  };
}

/**
 * Initialises WebGPU (once per suite: uvu runs suites one after another in one process, and each
 * suite's `after` hook shuts the device down so the process can exit). Without an adapter, or with
 * FOLIAR_BACKEND=cpu, the suite runs with `hasGpu` false (an error instead under
 * FOLIAR_REQUIRE_WEBGPU=1: CI installs lavapipe, so nothing may fall back to the CPU there).
 */
export async function setup(): Promise<Backends> {
  let reason: string;
  if (process.env.FOLIAR_BACKEND === 'cpu') reason = 'FOLIAR_BACKEND=cpu';
  else {
    try {
      const gpu = await init({ backend: 'webgpu' });
      state.be = makeBackends(gpu, null);
      return state.be;
    } catch (e) {
      if (!(e instanceof NoAdapterError)) throw e;
      reason = e.message.split('\n')[0]!;
    }
  }
  if (requiredBy('webgpu')) {
    // uvu swallows errors thrown by `before` hooks (its tests then never run; scripts/test.mjs counts
    // them as failed): say why here
    const msg = `no WebGPU (${reason}) and FOLIAR_REQUIRE_WEBGPU is set: the WebGPU tests must run here`;
    console.error(`FAIL ${msg}`);
    throw new Error(msg);
  }
  console.warn(`SKIP WebGPU comparisons: ${reason} (tests that need WebGPU are counted as skipped)`);
  await init({ backend: 'cpu' });
  state.be = makeBackends(null, reason);
  return state.be;
}

export function teardown(): void {
  shutdown();
  state.be = null;
}

/** The backends set up by `setup()` (throws if called before). */
export function backends(): Backends {
  if (!state.be) throw new Error('helpers: call setup() in the suite\'s before hook');
  return state.be;
}

/** The WebGPU backend, or a skip of the running test (a failure under FOLIAR_REQUIRE_WEBGPU=1). */
export function requireGpu(what = 'this test'): Backend {
  const be = backends();
  if (!be.hasGpu) skip(`${what} needs WebGPU: ${be.noGpuReason}`, 'webgpu');
  return be.gpu;
}

/**
 * Runs `fn` with every dispatch's pipeline key recorded (which kernel form ran); the runtime's
 * dispatch is restored afterwards, also when `fn` throws.
 */
export async function withDispatchKeys(gpu: Backend, fn: () => Promise<void>): Promise<string[]> {
  const keys: string[] = [];
  const rt = (gpu as unknown as { rt: { dispatch(spec: { key: string }): void } }).rt;
  const orig = rt.dispatch;
  rt.dispatch = function (this: unknown, spec: { key: string }) {
    keys.push(spec.key);
    return orig.call(this, spec);
  };
  try {
    await fn();
  } finally {
    rt.dispatch = orig;
  }
  return keys;
}

// ---------------------------------------------------------------- seeded random data

import { prng } from './prng.js';
export { prng };

/** Runs `body` with these environment variables set (undefined: unset), and restores them after. */
export async function withEnv<T>(vars: Record<string, string | undefined>, body: () => Promise<T>): Promise<T> {
  const prev = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>): void => {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) delete process.env[k];
      else process.env[k] = x;
    }
  };
  apply(vars);
  try {
    return await body();
  } finally {
    apply(prev);
  }
}

/** Runs `body` with kernel tuning on and its cache in `dir` (by default a scratch folder of this process). */
export function withScratchTuneCache<T>(body: () => Promise<T>, dir = `/tmp/foliar-tune-test-${process.pid}`): Promise<T> {
  return withEnv({ FOLIAR_CACHE_DIR: dir, FOLIAR_NO_TUNE: undefined }, body);
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Uniform values in [low, high). */
export function randArray(n: number, seed: number, low = -1, high = 1): Float32Array {
  const r = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = low + (high - low) * r();
  return out;
}

/** Standard normal values (Box-Muller over mulberry32). */
export function randnArray(n: number, seed: number, std = 1): Float32Array {
  const r = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = 1 - r(), u2 = r();
    out[i] = std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

/** Integers in [low, high) as Int32Array. */
export function randIntArray(n: number, seed: number, low: number, high: number): Int32Array {
  const r = prng(seed);
  return Int32Array.from({ length: n }, () => low + Math.floor(r() * (high - low)));
}

export interface RandOptions {
  seed?: number;
  low?: number;
  high?: number;
  backend?: Backend;
  requiresGrad?: boolean;
}

/** A float32 tensor of uniform values (default [-1, 1)) on `backend` (default CPU). */
export function randTensor(shape: readonly number[], opts: RandOptions = {}): Tensor {
  const data = randArray(numelOf(shape), opts.seed ?? 1, opts.low ?? -1, opts.high ?? 1);
  return tensor(data, { shape, backend: opts.backend ?? cpuBackend(), requiresGrad: opts.requiresGrad ?? false });
}

/** The same data on another backend as a fresh leaf. */
export function onBackend(data: AnyTypedArray, shape: readonly number[], backend: Backend, requiresGrad = false): Tensor {
  return tensor(data, { shape, backend, requiresGrad });
}

// ---------------------------------------------------------------- comparisons

export interface CloseOptions {
  /** Relative tolerance per element (default 1e-4). */
  rtol?: number;
  /** Absolute tolerance (default 1e-4 × the reference scale max|expected|, at least 1e-6). */
  atol?: number;
  /** Prefix for the failure message. */
  msg?: string;
}

type Values = Tensor | ArrayLike<number>;

function isTensor(v: Values): v is Tensor {
  return typeof (v as Tensor).data === 'function' && Array.isArray((v as Tensor).shape);
}

async function valuesOf(v: Values): Promise<{ data: ArrayLike<number>; shape: readonly number[] | null }> {
  if (isTensor(v)) return { data: await v.data(), shape: v.shape };
  return { data: v, shape: null };
}

function multiIndex(i: number, shape: readonly number[] | null): string {
  if (!shape || shape.length === 0) return `${i}`;
  const idx: number[] = [];
  let r = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(r % shape[d]!);
    r = Math.floor(r / shape[d]!);
  }
  return `${i} [${idx.join(', ')}]`;
}

/**
 * Asserts |actual - expected| <= atol + rtol·|expected| elementwise (NaN matches NaN, ±Infinity must
 * match exactly). On failure the message names the worst element, both values and the allowance.
 */
export async function assertClose(actual: Values, expected: Values, opts: CloseOptions = {}): Promise<void> {
  const a = await valuesOf(actual), e = await valuesOf(expected);
  const pre = opts.msg ? `${opts.msg}: ` : '';
  if (a.shape && e.shape && (a.shape.length !== e.shape.length || a.shape.some((d, i) => d !== e.shape![i]))) {
    throw new Error(`${pre}shape [${a.shape.join(', ')}] differs from expected [${e.shape.join(', ')}]`);
  }
  if (a.data.length !== e.data.length) throw new Error(`${pre}${a.data.length} values, expected ${e.data.length}`);
  let scale = 0;
  for (let i = 0; i < e.data.length; i++) if (Number.isFinite(e.data[i]!)) scale = Math.max(scale, Math.abs(e.data[i]!));
  const rtol = opts.rtol ?? 1e-4;
  const atol = opts.atol ?? Math.max(1e-4 * scale, 1e-6);
  let worst = -1, worstRatio = 0;
  for (let i = 0; i < e.data.length; i++) {
    const x = a.data[i]!, y = e.data[i]!;
    let ratio: number;
    if (Number.isNaN(y) || Number.isNaN(x)) ratio = Number.isNaN(x) && Number.isNaN(y) ? 0 : Infinity;
    else if (!Number.isFinite(y) || !Number.isFinite(x)) ratio = x === y ? 0 : Infinity;
    else ratio = Math.abs(x - y) / (atol + rtol * Math.abs(y));
    if (ratio > worstRatio || (ratio === Infinity && worstRatio !== Infinity)) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (worstRatio > 1) {
    const x = a.data[worst]!, y = e.data[worst]!;
    throw new Error(
      `${pre}mismatch at index ${multiIndex(worst, e.shape ?? a.shape)}: got ${x}, expected ${y} ` +
        `(|diff| ${Math.abs(x - y).toExponential(3)} > allowed ${(atol + rtol * Math.abs(y)).toExponential(3)}; ` +
        `rtol ${rtol}, atol ${atol.toExponential(2)}, ${e.data.length} elements)`,
    );
  }
}

/** Asserts bit-exact equality of two arrays, naming the first difference. */
export function assertExact(actual: ArrayLike<number>, expected: ArrayLike<number>, msg = 'values'): void {
  if (actual.length !== expected.length) throw new Error(`${msg}: length ${actual.length}, expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const x = actual[i]!, y = expected[i]!;
    if (!(x === y || (Number.isNaN(x) && Number.isNaN(y)))) throw new Error(`${msg}: first difference at ${i}: ${x} vs ${y}`);
  }
}

/** Asserts that fn throws and that the message matches every pattern. */
export function assertThrowsWith(fn: () => unknown, patterns: RegExp[], what = 'call'): string {
  let msg: string | null = null;
  try {
    fn();
  } catch (e) {
    msg = (e as Error).message;
  }
  if (msg === null) throw new Error(`${what} did not throw`);
  for (const p of patterns) if (!p.test(msg)) throw new Error(`${what}: error message "${msg}" does not match ${p}`);
  return msg;
}

// ---------------------------------------------------------------- gradient checking

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-3). */
  eps?: number;
  /** Tolerance relative to the largest numeric gradient entry (default 3e-3). */
  tol?: number;
  /** Absolute tolerance floor (default 1e-3). */
  atol?: number;
  /** Seed of the random cotangent R (loss = sum(out · R)). */
  seed?: number;
  msg?: string;
}

/**
 * Compares autograd against central differences on the CPU backend in f32. The loss is
 * sum(out · R) for a fixed random R, accumulated in f64 on the host so the only f32 noise is the
 * op's own. Inputs with requiresGrad are checked; the others are passed through unchanged.
 */
export async function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): Promise<void> {
  const eps = opts.eps ?? 1e-3;
  const cpu = cpuBackend();
  for (const t of inputs) if (t.backend !== cpu) throw new Error('gradcheck: inputs must live on the CPU backend');
  const datas = await Promise.all(inputs.map((t) => t.data()));
  const leaves = inputs.map((t, i) => tensor(datas[i]!, { shape: t.shape, backend: cpu, requiresGrad: t.requiresGrad }));
  const out = fn(...leaves);
  const R = randnArray(out.size, opts.seed ?? 7);
  const Rt = tensor(R, { shape: out.shape, backend: cpu });
  out.backward(Rt);
  const analytic = await Promise.all(leaves.map(async (l) => (l.requiresGrad ? (l.grad ? await l.grad.data() : null) : null)));
  out.dispose();
  Rt.dispose();
  for (const l of leaves) l.dispose();

  const lossAt = async (k: number, data: AnyTypedArray): Promise<number> => {
    const xs = inputs.map((t, i) => tensor(i === k ? data : datas[i]!, { shape: t.shape, backend: cpu }));
    const y = noGrad(() => fn(...xs));
    const d = await y.data();
    let s = 0;
    for (let i = 0; i < d.length; i++) s += d[i]! * R[i]!;
    y.dispose();
    for (const x of xs) x.dispose();
    return s;
  };

  for (let k = 0; k < inputs.length; k++) {
    if (!inputs[k]!.requiresGrad) continue;
    const base = datas[k]! as Float32Array;
    const numeric = new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const plus = base.slice(), minus = base.slice();
      plus[i] = base[i]! + eps;
      minus[i] = base[i]! - eps;
      const h = plus[i]! - minus[i]!; // the step actually taken after f32 rounding
      numeric[i] = ((await lossAt(k, plus)) - (await lossAt(k, minus))) / h;
    }
    const ana = analytic[k] ?? new Float32Array(base.length); // no .grad = zero gradient
    let scale = 0;
    for (const v of numeric) scale = Math.max(scale, Math.abs(v));
    await assertClose(ana, numeric, {
      rtol: 0,
      atol: Math.max((opts.tol ?? 3e-3) * scale, opts.atol ?? 1e-3),
      msg: `${opts.msg ?? 'gradcheck'}: input ${k} ${inputs[k]!.describe()} analytic vs numeric gradient`,
    });
  }
}

/**
 * Runs fn on the CPU and on WebGPU from the same host data, backpropagates the same random
 * cotangent, and compares the outputs and the gradients of every input with requiresGrad. Without
 * WebGPU it compares nothing and records a skipped part of the running test (`skipPart`: counted
 * as skipped; a failure under FOLIAR_REQUIRE_WEBGPU=1).
 */
export async function compareBackends(
  fn: (...xs: Tensor[]) => Tensor,
  specs: { data: AnyTypedArray; shape: readonly number[]; requiresGrad?: boolean }[],
  opts: CloseOptions & { grad?: boolean; gradRtol?: number } = {},
): Promise<void> {
  const be0 = backends();
  if (!be0.hasGpu) {
    skipPart(`no WebGPU to compare with the CPU: ${be0.noGpuReason}`, 'webgpu');
    return;
  }
  const { gpu, cpu } = be0;
  const run = async (be: Backend) => {
    const xs = specs.map((s) => tensor(s.data, { shape: s.shape, backend: be, requiresGrad: (opts.grad ?? true) && (s.requiresGrad ?? false) }));
    const y = fn(...xs);
    const out = await y.data();
    const grads: (AnyTypedArray | null)[] = [];
    if (y.requiresGrad) {
      const R = tensor(randnArray(y.size, 11), { shape: y.shape, backend: be });
      y.backward(R);
      R.dispose();
      for (const x of xs) grads.push(x.grad ? await x.grad.data() : null);
    }
    const shape = [...y.shape];
    y.dispose();
    for (const x of xs) x.dispose();
    return { out, grads, shape };
  };
  const c = await run(cpu), g = await run(gpu);
  const pre = opts.msg ? `${opts.msg}: ` : '';
  if (c.shape.join() !== g.shape.join()) throw new Error(`${pre}shapes differ: CPU [${c.shape}] WebGPU [${g.shape}]`);
  await assertClose(g.out, c.out, { ...opts, msg: `${pre}WebGPU vs CPU forward ${JSON.stringify(c.shape)}` });
  for (let i = 0; i < c.grads.length; i++) {
    const cg = c.grads[i], gg = g.grads[i];
    if (!cg && !gg) continue;
    if (!cg || !gg) throw new Error(`${pre}input ${i}: gradient missing on ${cg ? 'WebGPU' : 'CPU'}`);
    await assertClose(gg, cg, { rtol: opts.gradRtol ?? opts.rtol ?? 1e-4, msg: `${pre}WebGPU vs CPU grad of input ${i}` });
  }
}

// ---------------------------------------------------------------- shared data

let warned = new Set<string>();

/**
 * The shared reference data folder (../shared or $FOLIAR_SHARED), optionally a path inside it.
 * Returns null (with a visible SKIP warning naming `what`) when it is absent.
 */
export function shared(rel = '', what = 'test'): string | null {
  const root = process.env.FOLIAR_SHARED ?? path.resolve(repoRoot, '..', 'shared');
  const p = path.join(root, rel);
  if (existsSync(p)) return p;
  // CI sets this: a suite that reads ../shared must not pass by skipping there
  if (process.env.FOLIAR_REQUIRE_SHARED) throw new Error(`${what}: ${p} not found and FOLIAR_REQUIRE_SHARED is set`);
  const key = `${what}:${p}`;
  if (!warned.has(key)) console.warn(`SKIP ${what}: ${path.relative(repoRoot, p) || p} not found (../shared not found)`);
  warned.add(key);
  return null;
}

export function resetSharedWarnings(): void {
  warned = new Set();
}

// ---------------------------------------------------------------- golden files

export interface GoldenTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

/**
 * Reads every tensor of a golden safetensors file (relative to ../shared/golden), float tensors as
 * float32 and I64 tensors as int32. Skips the running test when ../shared is absent (call it inside
 * a test).
 */
export async function readGolden(rel: string, what = rel): Promise<Record<string, GoldenTensor>> {
  const p = shared(path.join('golden', rel), what);
  if (!p) skip(`${what}: ../shared/golden not found`, 'shared');
  const { SafetensorsFile } = await import('../packages/tensor/src/io/safetensors.js');
  const f = await SafetensorsFile.open(p);
  const out: Record<string, GoldenTensor> = {};
  try {
    for (const k of f.keys()) {
      const isInt = f.entry(k)!.dtype.startsWith('I');
      const r = await f.read(k, { as: isInt ? 'int32' : 'float32' });
      out[k] = { shape: r.shape, data: r.data as Float32Array | Int32Array };
    }
  } finally {
    f.close();
  }
  return out;
}

/**
 * The F32 tensors of `golden/ops/<name>.safetensors`, read synchronously with the library's in-memory
 * safetensors reader (for suites that build their cases at load time).
 */
export function readGoldenOpsSync(name: string): Map<string, { shape: number[]; data: Float32Array }> {
  const p = path.join(shared('golden/ops', `golden ${name}`) ?? '', `${name}.safetensors`);
  const f = loadSafetensors(new Uint8Array(readFileSync(p)), p);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const k of f.keys()) {
    const e = f.entry(k)!;
    if (e.dtype === 'F32') out.set(k, { shape: [...e.shape], data: f.read(k, { as: 'float32' }).data as Float32Array });
  }
  return out;
}

/**
 * `memory()` after a forced garbage collection. A handle nobody disposed is released by the tensor
 * finalizer whenever V8 collects it, so an earlier test's leftovers can lower the live counts in the
 * middle of a leak check; collecting first (and letting the finalizer callbacks run) makes a
 * before/after comparison see only what the code under test kept. scripts/test.mjs runs every test
 * file with --expose-gc; without it this is plain `memory()`.
 */
export async function settledMemory(): Promise<ReturnType<typeof memory>> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3 && gc; i++) {
    gc();
    await new Promise<void>((r) => setImmediate(r)); // FinalizationRegistry callbacks run as tasks
  }
  return memory();
}
