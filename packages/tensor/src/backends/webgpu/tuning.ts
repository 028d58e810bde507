/**
 * Kernel variants chosen per adapter by measurement (GUIDE §1: lavapipe wants subgroup broadcasts and
 * no barriers, real GPUs want workgroup-memory tiles). A kernel family registers its candidates; the
 * first time the family runs on an adapter with no recorded choice, a small micro-benchmark runs in
 * the background on its own buffers, pipelines and command buffers (so it never touches the
 * runtime's pool, encoder or counters), and the heuristic choice serves until it ends. The winner is
 * cached on disk, keyed by adapter and Dawn version, so later processes start with it.
 *
 * A measurement that overturns the heuristic is trusted for good only once a second one, in a later
 * process, agrees (or the race was close, so the choice matters little): a machine busy with other
 * work can time one candidate while its neighbour runs and the other while it pauses. On this
 * project's 2-core machine one disturbed tuning cached 'gemm' for conv2d (3.8 vs 6.7 ms) where
 * 'window' is 2x faster on a quiet machine (3.6 vs 7-8 ms), and every later process inherited it.
 * Until confirmed, the cached choice serves and a background tuning runs again.
 *
 * Environment: FOLIAR_<FAMILY>_VARIANT (e.g. FOLIAR_MATMUL_VARIANT=tiled) forces a variant;
 * FOLIAR_NO_TUNE=1 never measures and ignores the cache (the heuristic choice);
 * FOLIAR_CACHE_DIR moves the cache (default $XDG_CACHE_HOME/foliar or ~/.cache/foliar);
 * FOLIAR_TUNE_TIMEOUT_MS sets how long a candidate's first dispatch may take (default 10 min).
 */
import type { WebGPUBackend } from './webgpu-backend.js';
import { awaitGpu } from '../../device/polling.js';

/** One dispatch of a candidate, on buffers the tuner owns (inputs first, then the output). */
export interface TuneDispatch {
  key: string;
  wgsl: () => string;
  /** Indices into the tuner's buffers, bound in order. */
  buffers: number[];
  uniforms?: Uint32Array;
  workgroups: [number, number, number];
}

export interface TuneProblem {
  /** Sizes in f32 elements of the buffers the candidates use (filled with small random values). */
  buffers: number[];
  /** Candidates by variant name (only those the adapter supports). */
  candidates: Record<string, TuneDispatch[]>;
  /**
   * How to verify a candidate before it may win: the buffer it writes, the result expected from
   * the input buffers' contents, and the largest absolute error allowed. A candidate that computes
   * a wrong result (e.g. a kernel that assumes another subgroup size), fails or does not finish
   * within the verification limit (verifyTimeoutMs) loses, and the reason is kept in TuneResult.rejected.
   */
  check?: { output: number; expected: (inputs: Float32Array[]) => Float32Array; tolerance: number };
}

export interface TuneResult {
  family: string;
  adapter: string;
  variant: string;
  /** Best time per candidate and run, ms (Infinity: failed or rejected). */
  ms: Record<string, number>;
  /** Runs per timed sample (repeated in one pass when one run is shorter than a submit's cost). */
  reps?: number;
  /** Candidates refused by the result check, with why. */
  rejected?: Record<string, string>;
  date: string;
  /** Bumped when a family's kernels change enough to invalidate cached choices. */
  version: number;
  /**
   * Consecutive tunings (across processes) that chose this variant, or 2 when the race was close
   * (the winner less than CLOSE_RACE ahead); a choice that overturns the heuristic with fewer than 2 is
   * measured again.
   */
  agreements?: number;
}

interface Family {
  version: number;
  variants: readonly string[];
  heuristic: (be: WebGPUBackend) => string;
  supported: (be: WebGPUBackend, variant: string) => boolean;
  problem: (be: WebGPUBackend) => TuneProblem;
}

const families = new Map<string, Family>();
const envNames = new Map<string, string>();
/**
 * How long a candidate's verification (its first dispatch) may take, ms. The first dispatch includes
 * compiling: lavapipe builds a pipeline's machine code when it first runs, not when it is created, and
 * with an empty Mesa shader cache (a fresh machine) the 64x4 subgroup matmul took 57 s there and the
 * window conv 16 s (session 24). The limit used to be 20 s, which rejected exactly the fastest variants
 * on every fresh machine and cached the slowest ('base' for matmul) as the choice. It only has to catch
 * a kernel that never finishes (the queue is stuck then anyway). FOLIAR_TUNE_TIMEOUT_MS overrides it.
 */
const VERIFY_TIMEOUT_MS = 600_000;
function verifyTimeoutMs(): number {
  const v = Number(env().FOLIAR_TUNE_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : VERIFY_TIMEOUT_MS;
}
/** `p`'s value, or 'timeout' when it has not settled within `limit` ms (GPU promises polled by awaitGpu). */
async function within<T>(p: Promise<T>, limit: number): Promise<T | 'timeout'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), limit)));
  try {
    return await Promise.race([awaitGpu(p), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
/** The reason a candidate that gave no result in time is rejected with (also how a timeout is recognized). */
const NO_RESULT = 'no result within';
/** Shortest timed sample (ms) and most repetitions per sample: see measureFamily. */
const MIN_SAMPLE_MS = 1;
const MAX_REPS = 1024;
/** A winner less than this much faster than the runner-up needs no confirmation (either is fine). */
const CLOSE_RACE = 1.2;
/** Per backend: family -> chosen variant (tuned, cached or overridden). */
const chosen = new WeakMap<WebGPUBackend, Map<string, string>>();
const overrides = new WeakMap<WebGPUBackend, Map<string, string>>();
const running = new WeakMap<WebGPUBackend, Map<string, Promise<TuneResult | null>>>();

export function registerTunable(family: string, f: Family): void {
  families.set(family, f);
}

type Env = Record<string, string | undefined>;
const env = (): Env => (globalThis as { process?: { env?: Env } }).process?.env ?? {};

// ------------------------------------------------------------------ choosing

/** The variant a family uses on this backend now (synchronous: kernels call it on every dispatch). */
export function variantFor(be: WebGPUBackend, family: string): string {
  const f = families.get(family);
  if (!f) throw new Error(`tuning: unknown kernel family '${family}'`);
  // read on every call (tests and benchmarks set it at run time); the name is built once per family
  let name = envNames.get(family);
  if (name === undefined) envNames.set(family, (name = `FOLIAR_${family.toUpperCase()}_VARIANT`));
  const forced = env()[name];
  if (forced) {
    if (!f.variants.includes(forced)) throw new Error(`FOLIAR_${family.toUpperCase()}_VARIANT='${forced}': expected one of ${f.variants.join(', ')}`);
    if (f.supported(be, forced)) return forced;
  }
  const o = overrides.get(be)?.get(family);
  if (o) return o;
  const c = chosen.get(be)?.get(family);
  if (c) return c;
  const h = f.heuristic(be);
  if (env().FOLIAR_NO_TUNE === '1') return remember(be, family, h);
  const cached = readCache()[cacheKey(be, family)];
  if (cached && cached.version === f.version && f.variants.includes(cached.variant) && f.supported(be, cached.variant)) {
    // an unconfirmed choice against the heuristic serves, and is measured once more meanwhile
    if (cached.variant !== h && (cached.agreements ?? 1) < 2) void tune(be, family).catch(() => null);
    return remember(be, family, cached.variant);
  }
  // measure in the background; the heuristic serves meanwhile
  void tune(be, family).catch(() => null);
  return h;
}

/** Forces a variant on this backend (tests, benchmarks); undefined restores the normal choice. */
export function setVariant(be: WebGPUBackend, family: string, variant: string | undefined): void {
  const f = families.get(family);
  if (!f) throw new Error(`tuning: unknown kernel family '${family}'`);
  if (variant !== undefined && !f.supported(be, variant)) throw new Error(`tuning: ${family} variant '${variant}' is not supported on this adapter`);
  let m = overrides.get(be);
  if (!m) overrides.set(be, (m = new Map()));
  if (variant === undefined) m.delete(family);
  else m.set(family, variant);
}

/** The variants of a family this adapter can run. */
export function supportedVariants(be: WebGPUBackend, family: string): string[] {
  const f = families.get(family);
  if (!f) throw new Error(`tuning: unknown kernel family '${family}'`);
  return f.variants.filter((v) => f.supported(be, v));
}

function remember(be: WebGPUBackend, family: string, v: string): string {
  let m = chosen.get(be);
  if (!m) chosen.set(be, (m = new Map()));
  m.set(family, v);
  return v;
}

// ------------------------------------------------------------------ measuring

/**
 * Runs the family's micro-benchmark now (once per backend unless `force`), records the winner for
 * this backend and in the disk cache, and returns the timings; null when the device went away.
 */
export function tune(be: WebGPUBackend, family: string, opts: { force?: boolean } = {}): Promise<TuneResult | null> {
  let m = running.get(be);
  if (!m) running.set(be, (m = new Map()));
  const prev = m.get(family);
  if (prev && !opts.force) return prev;
  const p = measureFamily(be, family);
  m.set(family, p);
  return p;
}

async function measureFamily(be: WebGPUBackend, family: string): Promise<TuneResult | null> {
  const f = families.get(family);
  if (!f) throw new Error(`tuning: unknown kernel family '${family}'`);
  const device = be.rt.device;
  let lost = false;
  void device.lost.then(() => (lost = true));
  const problem = f.problem(be);
  const names = Object.keys(problem.candidates).filter((v) => f.supported(be, v));
  const U = GPUBufferUsage;
  // each buffer gets its own deterministic values, so a kernel that mixes up operands is caught
  const inputs = problem.buffers.map((n, bi) => {
    const data = new Float32Array(Math.max(n, 4));
    for (let i = 0; i < data.length; i++) data[i] = (((i + 7919 * bi) * 2654435761) % 1000) / 1000 - 0.5;
    return data;
  });
  const bufs = inputs.map((data) => {
    const b = device.createBuffer({ size: data.byteLength, usage: U.STORAGE | U.COPY_DST | U.COPY_SRC, label: `foliar-tune-${family}` });
    device.queue.writeBuffer(b, 0, data);
    return b;
  });
  const uniforms: GPUBuffer[] = [];
  let qsToDestroy: GPUQuerySet | null = null;
  try {
    // compile every candidate first, then time rounds. Synchronously, on this thread, as the runtime
    // compiles: an asynchronous compile runs LLVM on Dawn's worker thread beside the runtime's own
    // compiles and dispatches, and on lavapipe (2 cores) such a compile took 9-15 s instead of 0.4 s,
    // and once ran for over 25 min (session 24). The cost is a pause of about a second, once per machine.
    const encoded: Record<string, { pipeline: GPUComputePipeline; group: GPUBindGroup; wg: [number, number, number] }[]> = {};
    for (const v of names) {
      try {
        encoded[v] = await Promise.all(
          problem.candidates[v]!.map(async (d) => {
            device.pushErrorScope('validation');
            const module = device.createShaderModule({ code: d.wgsl(), label: `tune ${d.key}` });
            const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: `tune ${d.key}` });
            const err = await awaitGpu(device.popErrorScope());
            if (err) throw new Error(err.message);
            const entries: GPUBindGroupEntry[] = d.buffers.map((i, binding) => ({ binding, resource: { buffer: bufs[i]! } }));
            if (d.uniforms) {
              const ub = device.createBuffer({ size: Math.max(16, Math.ceil(d.uniforms.byteLength / 16) * 16), usage: U.UNIFORM | U.COPY_DST });
              device.queue.writeBuffer(ub, 0, d.uniforms.buffer, d.uniforms.byteOffset, d.uniforms.byteLength);
              uniforms.push(ub);
              entries.push({ binding: d.buffers.length, resource: { buffer: ub } });
            }
            return { pipeline, group: device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }), wg: d.workgroups };
          }),
        );
      } catch {
        // a candidate that fails to compile here simply loses
      }
    }
    // GPU-side time of our own pass when the adapter has timestamps: work the rest of the process
    // queued meanwhile is then not counted; wall time around submit..done otherwise
    const stamps = be.rt.features.has('timestamp-query');
    const qs = stamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : null;
    const resolve = stamps ? device.createBuffer({ size: 16, usage: U.QUERY_RESOLVE | U.COPY_SRC }) : null;
    if (resolve) uniforms.push(resolve);
    qsToDestroy = qs;
    /** Time of `reps` back-to-back runs of a candidate in one pass, ms. */
    const run = async (v: string, reps = 1): Promise<number> => {
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass(qs ? { timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
      for (let r = 0; r < reps; r++) {
        for (const d of encoded[v]!) {
          pass.setPipeline(d.pipeline);
          pass.setBindGroup(0, d.group);
          pass.dispatchWorkgroups(...d.wg);
        }
      }
      pass.end();
      let readback: GPUBuffer | null = null;
      if (qs && resolve) {
        readback = device.createBuffer({ size: 16, usage: U.MAP_READ | U.COPY_DST });
        enc.resolveQuerySet(qs, 0, 2, resolve, 0);
        enc.copyBufferToBuffer(resolve, 0, readback, 0, 16);
      }
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      if (!readback) {
        await awaitGpu(device.queue.onSubmittedWorkDone());
        return performance.now() - t0;
      }
      try {
        await awaitGpu(readback.mapAsync(GPUMapMode.READ));
        const [a, b] = new BigUint64Array(readback.getMappedRange().slice(0));
        const ns = Number(b! - a!);
        // some implementations report zeros or garbage: fall back to the wall clock
        return ns > 0 && ns < 1e11 ? ns / 1e6 : performance.now() - t0;
      } finally {
        readback.destroy();
      }
    };
    /** Runs a candidate once on a NaN-filled output and compares; a reason when it is wrong. */
    const verify = async (v: string, expected: Float32Array): Promise<string | null> => {
      const check = problem.check!;
      const out = bufs[check.output]!;
      device.queue.writeBuffer(out, 0, new Float32Array(out.size / 4).fill(NaN));
      const readback = device.createBuffer({ size: out.size, usage: U.MAP_READ | U.COPY_DST });
      try {
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        for (const d of encoded[v]!) {
          pass.setPipeline(d.pipeline);
          pass.setBindGroup(0, d.group);
          pass.dispatchWorkgroups(...d.wg);
        }
        pass.end();
        enc.copyBufferToBuffer(out, 0, readback, 0, out.size);
        device.queue.submit([enc.finish()]);
        const limit = verifyTimeoutMs();
        const done = await within(readback.mapAsync(GPUMapMode.READ), limit);
        if (done === 'timeout') return `${NO_RESULT} ${limit / 1000} s`;
        const got = new Float32Array(readback.getMappedRange().slice(0));
        readback.unmap();
        return compareResult(got, expected, check.tolerance);
      } catch (e) {
        return `failed: ${(e as Error).message}`;
      } finally {
        readback.destroy();
      }
    };
    const ms: Record<string, number> = Object.fromEntries(f.variants.map((v) => [v, Infinity]));
    const rejected: Record<string, string> = {};
    let live = names.filter((v) => encoded[v]);
    if (problem.check) {
      const expected = problem.check.expected(inputs);
      const ok: string[] = [];
      let stuck = false;
      for (const v of live) {
        if (lost) break;
        // the queue runs in order: behind a candidate that is still running, the next one's result
        // cannot come in time either, so it is not verified (and counts as inconclusive) rather than failed
        const why = stuck ? `${NO_RESULT} its limit: the queue was still busy with an earlier candidate` : await verify(v, expected);
        if (why) rejected[v] = why;
        else ok.push(v);
        if (why?.startsWith(NO_RESULT) && !stuck) stuck = (await within(device.queue.onSubmittedWorkDone(), verifyTimeoutMs())) === 'timeout';
      }
      live = ok;
    }
    await awaitGpu(device.queue.onSubmittedWorkDone()); // start from an idle queue
    for (const v of live) if (!lost) await run(v); // warm-up (first-use costs inside the driver)
    // On a fast GPU one run of the problem is shorter than a submit's fixed cost (timestamps
    // included: 256^3 read 0.07 ms for two variants 2.5x apart on an H200), so each timed sample
    // repeats the candidate in one pass until the fastest takes MIN_SAMPLE_MS; on lavapipe one run
    // already does, and nothing is repeated.
    let reps = 1;
    let probing = live;
    for (let probe = 0; probe < 8 && !lost && live.length > 1; probe++) {
      const t: Record<string, number> = {};
      for (const v of probing) if (!lost) t[v] = await run(v, reps);
      const fastest = Math.min(...Object.values(t));
      // candidates 10x behind need no more precision (the rounds below still time them once)
      probing = probing.filter((v) => !(t[v]! > 10 * fastest));
      if (!(fastest < MIN_SAMPLE_MS) || reps >= MAX_REPS) break;
      reps = Math.min(MAX_REPS, reps * Math.max(2, Math.ceil(MIN_SAMPLE_MS / Math.max(fastest, 1e-3))));
    }
    // best of a few rounds: robust to other work sharing the machine; only hopeless candidates
    // (10x behind after a round) are dropped, so one disturbed sample cannot decide
    for (let round = 0; round < 4 && !lost; round++) {
      for (const v of live) {
        if (lost) break;
        if (round > 0 && ms[v]! > 10 * Math.min(...Object.values(ms))) continue;
        ms[v] = Math.min(ms[v]!, (await run(v, reps)) / reps);
      }
    }
    if (lost) return null;
    // nothing survived: the heuristic unless it was rejected, then the first variant that was not
    const h = f.heuristic(be);
    const fallback = rejected[h] ? (f.variants.find((v) => !rejected[v] && f.supported(be, v)) ?? h) : h;
    const variant = live.reduce((best, v) => (ms[v]! < ms[best]! ? v : best), live[0] ?? fallback);
    remember(be, family, variant);
    const prev = readCache()[cacheKey(be, family)];
    const others = Object.entries(ms).filter(([v]) => v !== variant).map(([, t]) => t);
    const close = others.length > 0 && Math.min(...others) < CLOSE_RACE * ms[variant]!;
    const agreements = close ? 2 : prev && prev.version === f.version && prev.variant === variant ? (prev.agreements ?? 1) + 1 : 1;
    const result: TuneResult = { family, adapter: adapterKey(be), variant, ms, reps, date: new Date().toISOString(), version: f.version, agreements };
    if (Object.keys(rejected).length) result.rejected = rejected;
    // a candidate that gave no result in time was not shown wrong, only not measured: the choice holds
    // for this process, and the next one measures again instead of inheriting it
    const inconclusive = Object.values(rejected).some((why) => why.startsWith(NO_RESULT));
    if (!inconclusive) writeCache(cacheKey(be, family), result);
    return result;
  } catch {
    return null;
  } finally {
    for (const b of [...bufs, ...uniforms]) b.destroy();
    qsToDestroy?.destroy();
  }
}

/** Null when `got` matches `expected` within `tol` (absolute, scaled up for large values), else why not. */
export function compareResult(got: Float32Array, expected: Float32Array, tol: number): string | null {
  if (got.length < expected.length) return `wrote ${got.length} values, expected ${expected.length}`;
  let bad = 0;
  let first = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!, g = got[i]!;
    if (!(Math.abs(g - e) <= tol * Math.max(1, Math.abs(e)))) {
      bad++;
      if (first < 0) first = i;
    }
  }
  return bad ? `wrong result: ${bad} of ${expected.length} values differ (first at ${first}: ${got[first]} vs ${expected[first]})` : null;
}

// ------------------------------------------------------------------ disk cache

interface NodeFs {
  readFileSync(p: string, enc: 'utf8'): string;
  writeFileSync(p: string, s: string): void;
  renameSync(a: string, b: string): void;
  mkdirSync(p: string, o: { recursive: boolean }): void;
}
type GetBuiltin = (id: string) => unknown;

/** node:fs when running under Node (without a static import: the package also runs in browsers). */
function nodeFs(): NodeFs | null {
  const gb = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process?.getBuiltinModule;
  return gb ? (gb('fs') as NodeFs) : null;
}

/** The cache file, or null where there is no file system. */
export function tuningCachePath(): string | null {
  const gb = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process?.getBuiltinModule;
  if (!gb) return null;
  const path = gb('path') as { join: (...p: string[]) => string };
  const os = gb('os') as { homedir: () => string };
  const e = env();
  const dir = e.FOLIAR_CACHE_DIR ?? (e.XDG_CACHE_HOME ? path.join(e.XDG_CACHE_HOME, 'foliar') : path.join(os.homedir(), '.cache', 'foliar'));
  return path.join(dir, 'tuning.json');
}

let dawnVersion: string | undefined;
function dawn(): string {
  if (dawnVersion !== undefined) return dawnVersion;
  dawnVersion = 'unknown';
  try {
    const gb = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process?.getBuiltinModule;
    if (gb) {
      const mod = gb('module') as { createRequire: (u: string) => (id: string) => { version?: string } };
      dawnVersion = `dawn.node ${mod.createRequire(import.meta.url)('webgpu/package.json').version ?? '?'}`;
    } else {
      dawnVersion = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent ?? 'browser';
    }
  } catch {
    // no webgpu package: a browser bundle or another runtime
  }
  return dawnVersion;
}

/** Identifies the adapter and the WebGPU implementation: a cached choice is only valid for both. */
export function adapterKey(be: WebGPUBackend): string {
  const i = be.rt.info;
  return [i.vendor, i.architecture, i.device, i.description, dawn()].join('|');
}

function cacheKey(be: WebGPUBackend, family: string): string {
  return `${adapterKey(be)}|${family}`;
}

function dirname(p: string): string {
  const gb = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process?.getBuiltinModule;
  return (gb!('path') as { dirname: (p: string) => string }).dirname(p);
}

/** A browser's localStorage (the cache's place where there is no file system), or null. */
function webStorage(): { getItem(k: string): string | null; setItem(k: string, v: string): void } | null {
  try {
    return (globalThis as { localStorage?: { getItem(k: string): string | null; setItem(k: string, v: string): void } }).localStorage ?? null;
  } catch {
    return null; // storage denied (opaque origins, some privacy settings)
  }
}
const STORAGE_KEY = 'foliar.tuning';

function readCache(): Record<string, TuneResult> {
  const fs = nodeFs();
  const p = tuningCachePath();
  if (!fs || !p) {
    // a browser: the same JSON in localStorage, so a page measures once per adapter, not per load
    try {
      const j = JSON.parse(webStorage()?.getItem(STORAGE_KEY) ?? '{}') as unknown;
      return j && typeof j === 'object' ? (j as Record<string, TuneResult>) : {};
    } catch {
      return {};
    }
  }
  try {
    const j = JSON.parse(fs.readFileSync(p, 'utf8')) as unknown;
    return j && typeof j === 'object' ? (j as Record<string, TuneResult>) : {};
  } catch {
    return {}; // absent or unreadable: measure again
  }
}

function writeCache(key: string, r: TuneResult): void {
  const fs = nodeFs();
  const p = tuningCachePath();
  if (!fs || !p) {
    try {
      const all = readCache();
      all[key] = r;
      webStorage()?.setItem(STORAGE_KEY, JSON.stringify(all));
    } catch {
      // storage full or denied: measure again next time
    }
    return;
  }
  try {
    const all = readCache();
    all[key] = r;
    fs.mkdirSync(dirname(p), { recursive: true });
    const tmp = `${p}.tmp-${(globalThis as { process?: { pid?: number } }).process?.pid ?? 0}-${Math.random().toString(36).slice(2)}`;
    fs.writeFileSync(tmp, JSON.stringify(all, null, 2) + '\n');
    fs.renameSync(tmp, p);
  } catch {
    // a read-only home is no reason to fail a matmul
  }
}
