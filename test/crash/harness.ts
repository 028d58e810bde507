/**
 * Crash-test harness: runs a trainer's CLI as a child process, SIGKILLs it at seeded random points,
 * resumes it until it finishes, and compares the run folder with an uninterrupted run's.
 *
 * Two kinds of kill, both seeded:
 *   op    the child kills itself at the n-th file operation under the run folder whose path contains a
 *         substring (test/crash/kill-hook.ts: before / after / half-way through a write), so kills
 *         land inside checkpoint writes, between a temp file and its rename, inside log appends;
 *   time  the parent SIGKILLs the child's process group after a random delay (start-up, data
 *         preparation, training steps, evaluation).
 * The children run on the CPU backend (deterministic, and faster than WebGPU for models this small).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../helpers.js';

export const HOOK = join(repoRoot, 'test', 'crash', 'kill-hook.ts');

/** CRASH_CASES=<n> runs n kill schedules per configuration instead of the CI default. */
export function caseCount(ciDefault: number): number {
  const n = Number(process.env.FOLIAR_CRASH_CASES ?? ciDefault);
  return Number.isInteger(n) && n > 0 ? n : ciDefault;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 4 KB of stdout + stderr. */
  output: string;
  ms: number;
  /** How it was killed: the hook's line, `timer at N ms`, or null when it exited by itself. */
  killed: string | null;
}

export interface ChildOptions {
  /** The run folder: only file operations under it are counted by the hook. */
  root: string;
  /** FOLIAR_CRASH_AT for the hook. */
  crashAt?: string;
  /** SIGKILL the child's process group after this many ms. */
  killAfterMs?: number;
  /** FOLIAR_CRASH_TRACE: the hook lists every counted file operation here. */
  trace?: string;
  timeoutMs?: number;
}

/** Runs `node --import tsx --import kill-hook <script> …args` on the CPU backend. */
export function runChild(script: string, args: string[], o: ChildOptions): Promise<ChildResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, FOLIAR_BACKEND: 'cpu', FOLIAR_CRASH_ROOT: o.root };
  delete env.FOLIAR_CRASH_AT;
  delete env.FOLIAR_CRASH_TRACE;
  delete env.FOLIAR_DEBUG;
  if (o.crashAt) env.FOLIAR_CRASH_AT = o.crashAt;
  if (o.trace) env.FOLIAR_CRASH_TRACE = o.trace;
  const t0 = performance.now();
  return new Promise((resolveP, reject) => {
    // its own process group: a timer kill takes tsx's esbuild service with it
    const child = spawn(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', '--import', HOOK, script, ...args], {
      cwd: repoRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString()).slice(-4096);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    let killed: string | null = null;
    let timedOut = false;
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = o.killAfterMs !== undefined ? setTimeout(() => {
      killed = `timer at ${o.killAfterMs} ms`;
      killGroup();
    }, o.killAfterMs) : null;
    const limit = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, o.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      clearTimeout(limit);
      killGroup(); // whatever the child left running (the esbuild service after a self-kill)
      if (timedOut) return reject(new Error(`${script} ${args.join(' ')}: no exit after ${o.timeoutMs ?? 120_000} ms (hang?)\n${output}`));
      const hook = /crash-hook: SIGKILL at [^\n]*/.exec(output);
      if (signal === 'SIGKILL' && !killed) killed = hook ? hook[0].slice('crash-hook: SIGKILL at '.length) : 'SIGKILL from elsewhere';
      resolveP({ code, signal, output, ms: performance.now() - t0, killed });
    });
  });
}

/** Counted operations per filter substring in a trace written by the hook. */
export function traceCounts(trace: string, filters: string[]): Map<string, number> {
  const lines = readFileSync(trace, 'utf8').trim().split('\n');
  return new Map(filters.map((f) => [f, lines.filter((l) => l.split(' ').slice(2).some((p) => p.includes(f))).length]));
}

export type KillPlan = { kind: 'time'; ms: number } | { kind: 'op'; spec: string };

export interface CrashRunOptions {
  script: string;
  root: string;
  rng: () => number;
  /** Kills to attempt (the run may finish before all of them happen). */
  kills: number;
  /** Arguments of the first invocation. */
  start: string[];
  /** Arguments that continue the run; `canResume` false: start again with `start`. */
  resume: string[];
  canResume?: () => boolean;
  /** Fraction of the training already checkpointed (0..1): later kills aim at what is left. */
  progress: () => number;
  /** The uninterrupted run: its duration and its operation counts per filter. */
  reference: { ms: number; ops: Map<string, number> };
  /** Share of op kills (the rest are timer kills); default 0.65. */
  opShare?: number;
}

export interface CrashRunResult {
  /** Where each kill landed. */
  kills: string[];
  children: number;
  ms: number;
}

/** Picks a seeded kill for a child that starts with `done` of the work checkpointed. */
export function planKill(o: CrashRunOptions, done: number): KillPlan {
  const r = o.rng;
  const left = Math.max(0.15, 1 - done);
  // start-up (imports, data) is about 40% of a run this small, and every continuation repeats it
  if (r() >= (o.opShare ?? 0.65)) return { kind: 'time', ms: Math.round(r() * o.reference.ms * (0.4 + 0.55 * left)) };
  const filters = [...o.reference.ops.entries()].filter(([, n]) => n > 0);
  const [filter, n] = filters[Math.floor(r() * filters.length)]!;
  const at = 1 + Math.floor(r() * Math.max(1, n * left));
  const mode = (['before', 'after', 'torn'] as const)[Math.floor(r() * 3)]!;
  return { kind: 'op', spec: `${at}:${mode}:${filter}` };
}

/**
 * Runs the training, killing it `kills` times at seeded points and continuing it after each, then
 * lets it finish. Throws when a continuation fails (exit code ≠ 0 without a kill) or hangs.
 */
export async function crashAndResume(o: CrashRunOptions): Promise<CrashRunResult> {
  const t0 = performance.now();
  const kills: string[] = [];
  let children = 0;
  let started = false;
  const args = () => (!started ? o.start : o.canResume && !o.canResume() ? o.start : o.resume);
  for (let i = 0; i <= o.kills; i++) {
    const last = i === o.kills;
    const plan = last ? null : planKill(o, o.progress());
    const a = args();
    const r = await runChild(o.script, a, {
      root: o.root,
      ...(plan?.kind === 'op' ? { crashAt: plan.spec } : {}),
      ...(plan?.kind === 'time' ? { killAfterMs: plan.ms } : {}),
    });
    children++;
    started = true;
    if (r.killed) {
      kills.push(r.killed);
      continue;
    }
    if (r.code !== 0) {
      throw new Error(`child ${children} (${a.join(' ')}) failed with exit code ${r.code ?? r.signal} after ${kills.length} kill(s) [${kills.join('; ')}]:\n${r.output}`);
    }
    return { kills, children, ms: performance.now() - t0 };
  }
  throw new Error('unreachable');
}

/**
 * A directed scenario: the run is killed at each of `specs` (FOLIAR_CRASH_AT values, counted from the
 * start of each continuation) in turn, then finishes. Every point must be reached: one that is not
 * (the child finishes first) throws, so a scenario cannot pass by testing nothing.
 */
export async function killAt(o: Pick<CrashRunOptions, 'script' | 'root' | 'start' | 'resume' | 'canResume'> & { specs: string[] }): Promise<CrashRunResult> {
  const t0 = performance.now();
  const kills: string[] = [];
  let children = 0;
  for (let i = 0; i <= o.specs.length; i++) {
    const spec = o.specs[i];
    const a = i === 0 || (o.canResume && !o.canResume()) ? o.start : o.resume;
    const r = await runChild(o.script, a, { root: o.root, ...(spec ? { crashAt: spec } : {}) });
    children++;
    if (r.killed) {
      kills.push(r.killed);
      continue;
    }
    if (r.code !== 0) throw new Error(`child ${children} (${a.join(' ')}) failed with exit code ${r.code ?? r.signal} after kill(s) [${kills.join('; ')}]:\n${r.output}`);
    if (spec) throw new Error(`kill point ${spec} was never reached (the run finished; kills so far: ${kills.join('; ') || 'none'})`);
    return { kills, children, ms: performance.now() - t0 };
  }
  throw new Error('unreachable');
}

// ------------------------------------------------------------ comparing run folders

/** Files under `dir`, relative, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Temp files and partial folders of atomic writes (`*.tmp-<pid>-*`, `*.partial-<pid>`). */
export function strayPaths(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (/\.tmp-\d+-|\.partial-\d+/.test(name)) out.push(relative(dir, p));
      if (statSync(p).isDirectory()) walk(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Fields that measure time or memory, not the computation: left out of comparisons. */
export const TIMING_KEYS = new Set(['time', 'seconds', 'imagesPerSecond', 'liveBuffers', 'liveTensors', 'peakBytes', 'trainingSeconds', 'elapsedSeconds', 'live_buffers', 'peak_bytes']);

export function stripKeys(v: unknown, keys: Set<string> = TIMING_KEYS): unknown {
  if (Array.isArray(v)) return v.map((x) => stripKeys(x, keys));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k]) => !keys.has(k)).map(([k, x]) => [k, stripKeys(x, keys)]));
  }
  return v;
}

/** JSONL records (the lines that parse), each passed through `map` (null drops it). */
export function jsonl(path: string, map: (r: Record<string, unknown>) => unknown = (r) => r): { records: unknown[]; bad: number } {
  const records: unknown[] = [];
  let bad = 0;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const m = map(JSON.parse(line) as Record<string, unknown>);
      if (m !== null) records.push(m);
    } catch {
      bad++;
    }
  }
  return { records, bad };
}

/**
 * Compares two run folders: the same files (none missing, none extra) and, per file, `compare`'s
 * verdict (default: the same bytes). Returns the differences as messages.
 */
export async function diffRunDirs(
  ref: string, got: string,
  compare: (rel: string, a: string, b: string) => Promise<string | null> | string | null = () => null,
): Promise<string[]> {
  const a = listFiles(ref), b = listFiles(got);
  const diffs: string[] = [];
  const missing = a.filter((f) => !b.includes(f)), extra = b.filter((f) => !a.includes(f));
  if (missing.length) diffs.push(`missing after the crashes: ${missing.join(', ')}`);
  if (extra.length) diffs.push(`not in the uninterrupted run: ${extra.join(', ')}`);
  for (const f of a.filter((x) => b.includes(x))) {
    const pa = join(ref, f), pb = join(got, f);
    const custom = await compare(f, pa, pb);
    if (custom === null) {
      if (!readFileSync(pa).equals(readFileSync(pb))) diffs.push(`${f}: bytes differ`);
    } else if (custom !== '') diffs.push(`${f}: ${custom}`);
  }
  return diffs;
}

/** '' when equal, else the first difference of two JSON-like values, with its path. */
export function firstDifference(a: unknown, b: unknown, path = ''): string {
  if (Object.is(a, b)) return '';
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') {
    return `${path || '(root)'}: ${JSON.stringify(a)?.slice(0, 200)} (uninterrupted) vs ${JSON.stringify(b)?.slice(0, 200)} (crashed)`;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return `${path}: array vs object`;
  const ka = Object.keys(a as object), kb = Object.keys(b as object);
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return `${path || '(root)'}: keys [${ka.join(', ')}] vs [${kb.join(', ')}]`;
  for (const k of ka) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}${Array.isArray(a) ? `[${k}]` : `.${k}`}`);
    if (d) return d;
  }
  return '';
}
