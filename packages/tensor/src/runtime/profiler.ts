/**
 * Step profiler: per op kind and per named scope (model block), the dispatch count, the host time
 * spent in `WebGPURuntime.dispatch()` and the GPU time of each dispatch from timestamp queries where
 * the adapter has 'timestamp-query'. `profile(fn)` measures one call; FOLIAR_PROFILE=1 (read when a
 * runtime is created) profiles continuously into a report read with `profileReport()`.
 *
 * The runtime pays one branch per dispatch while nothing is being profiled (`rt.profiler` is null).
 */
import { awaitGpu } from '../device/polling.js';
import type { DispatchSpec, WebGPURuntime } from './webgpu-runtime.js';

// ---------------------------------------------------------------- scopes

let scope = '';
let continuous: Collector | null = null;
const sessions: Collector[] = [];

/** True while a `profile()` call or continuous profiling (FOLIAR_PROFILE=1) is collecting. */
export function isProfiling(): boolean {
  return sessions.length > 0;
}

/** The scope path that profiled dispatches (and autograd nodes recorded now) are attributed to; '' outside any. */
export function profileScopePath(): string {
  return scope;
}

/**
 * Runs `fn` inside the named scope (nested scopes join with '/'). Costs nothing but a check when
 * nothing is being profiled. An async `fn` keeps the scope until it settles: work interleaved
 * meanwhile is attributed to it too.
 */
export function profileScope<T>(name: string, fn: () => T): T {
  if (sessions.length === 0) return fn();
  const prev = scope;
  scope = prev ? `${prev}/${name}` : name;
  let pending = false;
  try {
    const r = fn();
    if (r instanceof Promise) {
      pending = true;
      return r.finally(() => {
        scope = prev;
      }) as T;
    }
    return r;
  } finally {
    if (!pending) scope = prev;
  }
}

const BACKWARD = ' (backward)';
const UNSCOPED_BACKWARD = '(backward)';

/** The scope of a node's backward: its forward scope + ' (backward)' (once: recomputations inside a backward keep it). */
export function backwardScopeOf(forwardScope: string): string {
  if (!forwardScope) return UNSCOPED_BACKWARD;
  return forwardScope.endsWith(BACKWARD) || forwardScope === UNSCOPED_BACKWARD ? forwardScope : forwardScope + BACKWARD;
}

/** Sets the scope path and returns the previous one (the autograd engine, per node). */
export function swapProfileScope(path: string): string {
  const prev = scope;
  scope = path;
  return prev;
}

// ---------------------------------------------------------------- aggregation

/** Mutable totals of one row while collecting. */
interface Acc {
  dispatches: number;
  compiles: number;
  hostMs: number;
  gpuNs: number;
}

const newAcc = (): Acc => ({ dispatches: 0, compiles: 0, hostMs: 0, gpuNs: 0 });

function accOf(m: Map<string, Acc>, key: string): Acc {
  let a = m.get(key);
  if (!a) m.set(key, (a = newAcc()));
  return a;
}

type Stats = WebGPURuntime['stats'];
const statKeys = ['dispatches', 'submits', 'pipelinesCompiled', 'readbacks', 'bindGroupsReused'] as const;

/** What one profile (a `profile()` call, or the continuous one since its last reset) has seen. */
class Collector {
  readonly ops = new Map<string, Acc>();
  readonly scopes = new Map<string, Acc>();
  readonly total = newAcc();
  compileMs = 0;
  timed = 0;
  readonly t0 = performance.now();
  /** Runtime counters at the start, per runtime; `end` is filled when the collector stops. */
  readonly start = new Map<WebGPURuntime, Stats>();
  end: Map<WebGPURuntime, Stats> | null = null;
  constructor(readonly wantsGpu: boolean) {
    for (const rt of runtimes) this.start.set(rt, { ...rt.stats });
  }

  /** The accumulators a dispatch adds to: total, op row, scope row. */
  add(op: string, path: string, hostMs: number, compiled: boolean, timed: boolean): Acc[] {
    const rows = [this.total, accOf(this.ops, op), accOf(this.scopes, path)];
    for (const a of rows) {
      a.dispatches++;
      a.hostMs += hostMs;
      if (compiled) a.compiles++;
    }
    if (compiled) this.compileMs += hostMs;
    if (timed) this.timed++;
    return rows;
  }

  statsDelta(): Stats {
    const out: Stats = { dispatches: 0, submits: 0, pipelinesCompiled: 0, readbacks: 0, bindGroupsReused: 0 };
    for (const [rt, s0] of this.start) {
      const s1 = this.end?.get(rt) ?? rt.stats;
      for (const k of statKeys) out[k] += s1[k] - s0[k];
    }
    return out;
  }
}

// ---------------------------------------------------------------- per-runtime recording

/** Queries per query set (WebGPU's maximum): two per dispatch, so 2048 dispatches per set. */
const QUERIES = 4096;

interface Readback {
  buffer: GPUBuffer;
  /** Per dispatch slot, the accumulators its GPU time goes to (null: never written). */
  slots: (Acc[] | null)[];
}

/**
 * Attached to a runtime (`rt.profiler`) while any collector is active. With timestamps, every
 * dispatch gets a compute pass of its own writing a begin/end pair into the query set; a full set is
 * resolved into a mappable buffer in the runtime's open encoder and reused.
 */
export class RuntimeProfiler {
  private querySet: GPUQuerySet | null = null;
  private resolveBuffer: GPUBuffer | null = null;
  private slots: (Acc[] | null)[] = [];
  private readbacks: Readback[] = [];
  /** GPU objects this profiler holds (query set, resolve and readback buffers): for leak checks. */
  liveObjects = 0;

  constructor(readonly rt: WebGPURuntime) {}

  private get timestamps(): boolean {
    return this.rt.features.has('timestamp-query') && sessions.some((c) => c.wantsGpu);
  }

  /** The runtime's dispatch while profiling. */
  dispatch(spec: DispatchSpec): void {
    const rt = this.rt;
    const compiled0 = rt.stats.pipelinesCompiled;
    const slot = this.timestamps ? this.nextSlot() : -1;
    const t0 = performance.now();
    if (slot >= 0) {
      rt.beginPass({ timestampWrites: { querySet: this.querySet!, beginningOfPassWriteIndex: 2 * slot, endOfPassWriteIndex: 2 * slot + 1 } });
      rt.encode(spec);
      rt.endPass();
    } else rt.encode(spec);
    const hostMs = performance.now() - t0;
    const compiled = rt.stats.pipelinesCompiled !== compiled0;
    const targets: Acc[] = [];
    for (const c of sessions) targets.push(...c.add(spec.name, scope, hostMs, compiled, slot >= 0 && c.wantsGpu));
    if (slot >= 0) this.slots[slot] = targets;
    rt.submitIfFull();
  }

  /** The next free begin/end pair, resolving the set first when it is full. */
  private nextSlot(): number {
    if (!this.querySet) {
      this.querySet = this.rt.device.createQuerySet({ type: 'timestamp', count: QUERIES, label: 'foliar-profiler' });
      this.resolveBuffer = this.rt.device.createBuffer({ size: QUERIES * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'foliar-profiler-resolve' });
      this.liveObjects += 2;
    }
    if (this.slots.length * 2 >= QUERIES) this.resolve();
    this.slots.push(null);
    return this.slots.length - 1;
  }

  /** Resolves the used part of the query set into a new readback buffer (in the runtime's open encoder). */
  private resolve(): void {
    const n = this.slots.length;
    if (!this.querySet || n === 0) return;
    const bytes = n * 2 * 8;
    const buffer = this.rt.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'foliar-profiler-readback' });
    this.liveObjects++;
    const enc = this.rt.openEncoder();
    enc.resolveQuerySet(this.querySet, 0, n * 2, this.resolveBuffer!, 0);
    enc.copyBufferToBuffer(this.resolveBuffer!, 0, buffer, 0, bytes);
    this.readbacks.push({ buffer, slots: this.slots });
    // queue order puts the resolve before any later write into the reused set
    this.slots = [];
  }

  /** Submits everything, reads every timestamp pair taken so far and credits it to its rows. */
  async drain(): Promise<void> {
    this.resolve();
    this.rt.flush();
    const pending = this.readbacks;
    this.readbacks = [];
    try {
      for (const r of pending) {
        await awaitGpu(r.buffer.mapAsync(GPUMapMode.READ));
        const t = new BigUint64Array(r.buffer.getMappedRange().slice(0));
        r.slots.forEach((targets, i) => {
          if (!targets) return;
          const ns = Number(t[2 * i + 1]! - t[2 * i]!);
          // unwritten or reordered stamps read as 0 or wrap around: count nothing rather than garbage
          if (!(ns > 0 && ns < 1e12)) return;
          for (const a of targets) a.gpuNs += ns;
        });
      }
    } finally {
      for (const r of pending) {
        r.buffer.destroy();
        this.liveObjects--;
      }
    }
  }

  /** Releases the query set and buffers (timestamps not yet drained are lost). */
  dispose(): void {
    for (const r of this.readbacks) r.buffer.destroy();
    this.liveObjects -= this.readbacks.length;
    this.readbacks = [];
    this.slots = [];
    if (this.querySet) {
      this.querySet.destroy();
      this.resolveBuffer!.destroy();
      this.liveObjects -= 2;
    }
    this.querySet = null;
    this.resolveBuffer = null;
  }
}

// ---------------------------------------------------------------- runtimes

const runtimes = new Set<WebGPURuntime>();

function env(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
}

/**
 * Called by a new runtime: profiles it while collectors are active. FOLIAR_PROFILE is read here:
 * '1' starts the continuous profile (kept across runtimes), anything else ends it.
 */
export function registerRuntime(rt: WebGPURuntime): void {
  runtimes.add(rt);
  const on = env('FOLIAR_PROFILE') === '1';
  if (on && !continuous) {
    continuous = new Collector(true);
    sessions.push(continuous);
  } else if (!on && continuous) {
    sessions.splice(sessions.indexOf(continuous), 1);
    continuous = null;
  }
  for (const c of sessions) c.start.set(rt, { ...rt.stats });
  if (sessions.length) rt.profiler = new RuntimeProfiler(rt);
}

/** Called by a runtime being destroyed. */
export function unregisterRuntime(rt: WebGPURuntime): void {
  rt.profiler?.dispose();
  rt.profiler = null;
  runtimes.delete(rt);
  // keep what the collectors saw of it
  for (const c of sessions) {
    const s0 = c.start.get(rt);
    if (s0) (c.end ??= new Map()).set(rt, { ...rt.stats });
  }
}

function attachAll(): void {
  for (const rt of runtimes) rt.profiler ??= new RuntimeProfiler(rt);
}

async function drainAll(): Promise<void> {
  for (const rt of runtimes) await rt.profiler?.drain();
}

function detachIdle(): void {
  if (sessions.length) return;
  for (const rt of runtimes) {
    rt.profiler?.dispose();
    rt.profiler = null;
  }
}

/** GPU objects held by the profilers of live runtimes (0 once profiling is off): for tests. */
export function profilerGpuObjects(): number {
  let n = 0;
  for (const rt of runtimes) n += rt.profiler?.liveObjects ?? 0;
  return n;
}

// ---------------------------------------------------------------- reports

/** One line of a grouping: an op kind, or a scope path ('(none)' outside scopes). */
export interface ProfileRow {
  name: string;
  dispatches: number;
  /** Dispatches that compiled their pipeline (the compile is part of hostMs). */
  compiles: number;
  /** Host time inside dispatch(): pipeline lookup or compile, bind group, uniform write, encoding. */
  hostMs: number;
  /** Sum of the dispatches' GPU times (timestamp queries); null without them. */
  gpuMs: number | null;
  /** Fraction of the report's GPU time (host time without GPU times). */
  share: number;
}

export interface ProfileReport {
  /** Counters of the runtime over the profiled span. */
  dispatches: number;
  submits: number;
  pipelinesCompiled: number;
  readbacks: number;
  /** Dispatches that reused a cached bind group (docs/profiling.md: what a dispatch costs the host). */
  bindGroupsReused: number;
  hostMs: number;
  /** Host time of the dispatches that compiled a pipeline (included in hostMs). */
  compileMs: number;
  gpuMs: number | null;
  /** Where gpuMs comes from: per-dispatch timestamp queries, or why there is none. */
  gpuTiming: 'timestamp-query' | 'unavailable' | 'off';
  /** Op kinds (DispatchSpec.name), sorted by GPU time (else host time). */
  byOp: ProfileRow[];
  /** Scope paths (exclusive: a parent's row holds only its own dispatches). */
  byScope: ProfileRow[];
  /** Wall time from the start of the profile to the report (GPU work awaited). */
  wallMs: number;
}

function rowsOf(m: Map<string, Acc>, gpu: boolean, total: Acc, empty: string): ProfileRow[] {
  const denom = gpu ? total.gpuNs / 1e6 : total.hostMs;
  const rows = [...m].map(([name, a]): ProfileRow => {
    const gpuMs = gpu ? a.gpuNs / 1e6 : null;
    return { name: name || empty, dispatches: a.dispatches, compiles: a.compiles, hostMs: a.hostMs, gpuMs, share: denom > 0 ? (gpuMs ?? a.hostMs) / denom : 0 };
  });
  return rows.sort((a, b) => (b.gpuMs ?? b.hostMs) - (a.gpuMs ?? a.hostMs) || b.hostMs - a.hostMs);
}

function reportOf(c: Collector): ProfileReport {
  const s = c.statsDelta();
  const hasStamps = [...c.start.keys()].some((rt) => rt.features.has('timestamp-query'));
  const gpu = c.wantsGpu && (c.timed > 0 || (hasStamps && c.total.dispatches === 0));
  return {
    dispatches: s.dispatches,
    submits: s.submits,
    pipelinesCompiled: s.pipelinesCompiled,
    readbacks: s.readbacks,
    bindGroupsReused: s.bindGroupsReused,
    hostMs: c.total.hostMs,
    compileMs: c.compileMs,
    gpuMs: gpu ? c.total.gpuNs / 1e6 : null,
    gpuTiming: gpu ? 'timestamp-query' : c.wantsGpu ? 'unavailable' : 'off',
    byOp: rowsOf(c.ops, gpu, c.total, '(unnamed)'),
    byScope: rowsOf(c.scopes, gpu, c.total, '(none)'),
    wallMs: performance.now() - c.t0,
  };
}

export interface ProfileOptions {
  /** GPU time from timestamp queries (default true; one compute pass per dispatch while profiling). */
  gpuTime?: boolean;
}

/**
 * Runs `fn` (sync or async) with profiling on, then submits and awaits the GPU work and returns
 * `fn`'s result with the report. Profiling is off again afterwards, also when `fn` throws.
 */
export async function profile<T>(fn: () => T | Promise<T>, opts: ProfileOptions = {}): Promise<{ result: T; report: ProfileReport }> {
  const c = new Collector(opts.gpuTime ?? true);
  sessions.push(c);
  attachAll();
  let result: T;
  let failed = false;
  try {
    result = await fn();
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    sessions.splice(sessions.indexOf(c), 1);
    c.end = new Map([...(c.end ?? []), ...[...runtimes].map((rt): [WebGPURuntime, Stats] => [rt, { ...rt.stats }])]);
    try {
      await drainAll();
    } catch (e) {
      // fn's own error is the one to see
      if (!failed) throw e;
    } finally {
      detachIdle();
    }
  }
  return { result, report: reportOf(c) };
}

function continuousCollector(): Collector {
  if (!continuous) throw new Error('continuous profiling is off: set FOLIAR_PROFILE=1 before init()');
  return continuous;
}

/** The report accumulated since the first runtime or the last `resetProfile()` (FOLIAR_PROFILE=1). */
export async function profileReport(): Promise<ProfileReport> {
  const c = continuousCollector();
  await drainAll();
  return reportOf(c);
}

/** Starts the continuous report afresh (FOLIAR_PROFILE=1). */
export function resetProfile(): void {
  const old = continuousCollector();
  continuous = new Collector(true);
  sessions[sessions.indexOf(old)] = continuous;
}

// ---------------------------------------------------------------- formatting

const ms = (x: number | null): string => (x === null ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function table(title: string, rows: ProfileRow[], top: number): string[] {
  const shown = rows.slice(0, top);
  const out = [
    `### ${title}`,
    '',
    '| name | dispatches | compiles | GPU ms | host ms | share |',
    '| --- | --- | --- | --- | --- | --- |',
    ...shown.map((r) => `| ${r.name.replace(/\|/g, '\\|')} | ${r.dispatches} | ${r.compiles} | ${ms(r.gpuMs)} | ${ms(r.hostMs)} | ${(r.share * 100).toFixed(1)}% |`),
  ];
  if (rows.length > shown.length) {
    const rest = rows.slice(top);
    const sum = (f: (r: ProfileRow) => number) => rest.reduce((a, r) => a + f(r), 0);
    out.push(`| … ${rest.length} more | ${sum((r) => r.dispatches)} | ${sum((r) => r.compiles)} | ${rest[0]!.gpuMs === null ? '–' : ms(sum((r) => r.gpuMs!))} | ${ms(sum((r) => r.hostMs))} | ${(sum((r) => r.share) * 100).toFixed(1)}% |`);
  }
  return [...out, ''];
}

/** A summary line and one markdown table per grouping (op kind, scope), `top` rows each (default all). */
export function formatProfile(report: ProfileReport, opts: { top?: number } = {}): string {
  const top = opts.top ?? Infinity;
  const r = report;
  const gpu =
    r.gpuMs !== null
      ? `GPU ${ms(r.gpuMs)} ms (timestamp queries, one compute pass per dispatch)`
      : r.gpuTiming === 'off'
        ? 'GPU time not measured (gpuTime: false)'
        : "GPU time unavailable (the adapter has no 'timestamp-query')";
  const lines = [
    `${r.dispatches} dispatches, ${r.submits} submits, ${r.pipelinesCompiled} pipelines compiled, ${r.readbacks} readbacks, ${r.bindGroupsReused} bind groups reused; ` +
      `${gpu}; host ${ms(r.hostMs)} ms in dispatch() (${ms(r.compileMs)} ms of it compiling); wall ${ms(r.wallMs)} ms`,
    '',
    ...table('by op', r.byOp, top),
    ...table('by scope', r.byScope, top),
  ];
  return lines.join('\n');
}
