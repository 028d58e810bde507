/**
 * What the queue tests run: a private redis-server on a free loopback port (no persistence, its own
 * temp folder), study workers as child processes, and parts of the study in process or through the
 * queue: the smoke study's arms (fixtures/arm-study.ts), one seed's generator jobs at toy size
 * (fixtures/seed-study.ts), and the whole study, examples/study.ts, at 16 px (fixtures/study-16px.ts).
 *
 * Without redis-server the tests skip here and fail where FOLIAR_REQUIRE_REDIS=1 (CI: setup.sh
 * installs Debian's redis-server).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as assert from 'uvu/assert';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { skip } from '../harness.js';
import { setup, teardown, repoRoot } from '../helpers.js';

const NODE_ARGS = ['--conditions=foliar-source', '--import', 'tsx'];

/** The redis-server binary, or a skip (a failure under FOLIAR_REQUIRE_REDIS=1). */
export function redisServerBinary(): string {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.status === 0) return 'redis-server';
  const why = 'redis-server is not installed (Debian: apt-get install redis-server; scripts/setup.sh does it)';
  const req = process.env['FOLIAR_REQUIRE_REDIS'];
  if (req && req !== '0') throw new Error(`${why}, and FOLIAR_REQUIRE_REDIS is set: the queue tests must run here, not skip`);
  skip(why, 'tool');
}

/** The backend the tests' workers and reference runs share: WebGPU where there is one (CI: lavapipe). */
export async function testBackend(): Promise<'webgpu' | 'cpu'> {
  const be = await setup();
  teardown();
  return be.hasGpu ? 'webgpu' : 'cpu';
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/**
 * A redis-server of its own; restart() stops it and starts a fresh one (empty: no persistence) on the
 * same port. Each has its own password: a worker or study left from an earlier test retries its dead
 * server's port forever, and must not take this test's jobs if the port is handed out again.
 */
export class TestRedis {
  private proc: ChildProcess | null = null;
  private readonly password = randomBytes(12).toString('hex');
  private constructor(readonly port: number, readonly dir: string) {}

  get url(): string {
    return `redis://:${this.password}@127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedis> {
    const bin = redisServerBinary();
    const r = new TestRedis(await freePort(), mkdtempSync(join(tmpdir(), 'foliar-redis-')));
    await r.launch(bin);
    return r;
  }

  private async launch(bin = 'redis-server'): Promise<void> {
    const log = createWriteStream(join(this.dir, 'redis.log'), { flags: 'a' });
    this.proc = spawn(bin, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--requirepass', this.password], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout?.pipe(log);
    this.proc.stderr?.pipe(log);
    for (let i = 0; i < 200; i++) {
      if (await portOpen(this.port)) return;
      if (this.proc.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`redis-server did not start on 127.0.0.1:${this.port}: ${readFileSync(join(this.dir, 'redis.log'), 'utf8').slice(-2000)}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await sleep(1_000);
    await this.launch();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A study worker process; its output goes to `<logDir>/worker-<name>.log`. */
export class TestWorker {
  readonly proc: ChildProcess;
  readonly logFile: string;
  /**
   * `locks: 'short'` (the default) gives a killed worker's job back in seconds, not minutes: for the
   * tests that kill workers. `'default'` keeps the worker's own lock times, for tests that kill none:
   * a CPU worker on two loaded cores may keep its event loop busy past a 15 s lock, and a false
   * stall only adds a second worker waiting on the stage lock.
   */
  constructor(redis: string, store: string, backend: string, logDir: string, readonly name: string, extra: string[] = [], locks: 'short' | 'default' = 'short') {
    this.logFile = join(logDir, `worker-${name}.log`);
    const log = createWriteStream(this.logFile);
    const lockArgs = locks === 'short' ? ['--lock-ms', '15000', '--stalled-ms', '2000'] : [];
    this.proc = spawn(process.execPath, [...NODE_ARGS, 'examples/study/queue/worker.ts', '--redis', redis, '--store', store, '--backend', backend, ...lockArgs, ...extra], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env },
    });
    this.proc.stdout?.pipe(log);
    this.proc.stderr?.pipe(log);
  }

  output(): string {
    try { return readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill(signal);
    await exited;
  }
}

export interface ArmStudyResult {
  seconds: number;
  metrics: Record<string, unknown>;
  error: string | null;
  status: number | null;
  output: string;
}

/** Runs fixtures/arm-study.ts (in process, or with --queue through the workers) to the end. */
export function armStudy(args: string[]): { done: Promise<ArmStudyResult>; proc: ChildProcess } {
  const proc = spawn(process.execPath, [...NODE_ARGS, 'test/queue/fixtures/arm-study.ts', '--arch', 'tiny', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<ArmStudyResult>((resolve) => {
    proc.once('exit', (status) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      let parsed: Omit<ArmStudyResult, 'status' | 'output'> = { seconds: NaN, metrics: {}, error: `no result line (exit ${status})` };
      try { parsed = JSON.parse(line) as typeof parsed; } catch { /* keeps the message above */ }
      resolve({ ...parsed, status, output: `${out}\n${err}`.slice(-6000) });
    });
  });
  return { done, proc };
}

/** Waits until `check` holds, polling; throws with `what` after `ms`. */
export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(200);
  }
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface SeedStudyResult {
  seconds: number;
  /** Each stage's folder, relative to the store. */
  stages: Record<string, string>;
  error: string | null;
  status: number | null;
  output: string;
}

/** Runs fixtures/seed-study.ts (one seed's gate classifier, DreamBooth, gates and drift at 16 px, CPU backend) to the end. */
export function seedStudy(args: string[]): { done: Promise<SeedStudyResult>; proc: ChildProcess } {
  const proc = spawn(process.execPath, [...NODE_ARGS, 'test/queue/fixtures/seed-study.ts', '--backend', 'cpu', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<SeedStudyResult>((resolve) => {
    proc.once('exit', (status) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      let parsed: Omit<SeedStudyResult, 'status' | 'output'> = { seconds: NaN, stages: {}, error: `no result line (exit ${status})` };
      try { parsed = JSON.parse(line) as typeof parsed; } catch { /* keeps the message above */ }
      resolve({ ...parsed, status, output: `${out}\n${err}`.slice(-6000) });
    });
  });
  return { done, proc };
}

export interface StudyRunResult {
  seconds: number;
  status: number | null;
  /** Everything the study printed (stdout and stderr), also in `logFile`. */
  output: string;
  logFile: string;
}

/** Runs examples/study.ts with the smoke profile shrunk to 16 px (fixtures/study-16px.ts); its output goes to `logFile`. */
export function study16(args: string[], logFile: string): { done: Promise<StudyRunResult>; proc: ChildProcess } {
  const t0 = performance.now();
  const log = createWriteStream(logFile);
  const proc = spawn(process.execPath, [...NODE_ARGS, 'test/queue/fixtures/study-16px.ts', '--profile', 'smoke', '--backend', 'cpu', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  const done = new Promise<StudyRunResult>((resolve) => {
    proc.once('exit', (status) => {
      log.end(() => resolve({ seconds: (performance.now() - t0) / 1000, status, output: readFileSync(logFile, 'utf8'), logFile }));
    });
  });
  return { done, proc };
}

/** A result.json without what measures the run rather than computes it (wall times, the process's memory peak). */
export function resultOf(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'), (k, v: unknown) => (k === 'seconds' || k === 'peakBytes' ? undefined : v));
}

export function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

// training logs and checkpoint state carry wall-clock times; result.json is compared without its timings
const VOLATILE = /(^|\/)(train\.jsonl|state\.json|loss\.png|result\.json)$/;

/**
 * What a classifier run's report.json holds that measures the process rather than the model: per-epoch
 * wall seconds and images per second, the training's seconds, and the process's live buffers, live
 * tensors and memory peak (a worker process holds other things than the study's).
 */
const RUN_REPORT_VOLATILE = new Set(['seconds', 'imagesPerSecond', 'trainingSeconds', 'peakBytes', 'liveBuffers', 'liveTensors']);

/** A classifier run's report.md less the same figures: the history table's last four columns (img/s, s, live buffers, peak MiB). */
function runReportMd(text: string): string {
  const lines = text.split('\n');
  const head = lines.findIndex((l) => l.endsWith('| img/s | s | live buffers | peak MiB |'));
  if (head < 0) return text;
  for (let i = head; i < lines.length && lines[i]!.startsWith('|'); i++) lines[i] = lines[i]!.split('|').slice(0, -5).join('|');
  return lines.join('\n');
}

/**
 * Asserts that each stage folder (relative to both stores) holds the same files in `store` as in
 * `refStore`, byte for byte, except what carries wall times or the process's memory, each named:
 * result.json is compared less its `seconds` and `peakBytes`; a classifier run's report.json less
 * RUN_REPORT_VOLATILE's keys and its report.md less those columns; train.jsonl, checkpoints'
 * state.json and loss.png (a plot of train.jsonl) are only required to exist.
 */
export function assertSameStages(store: string, refStore: string, stages: Record<string, string>): void {
  for (const [name, stageDir] of Object.entries(stages)) {
    assert.equal(resultOf(join(store, stageDir, 'result.json')), resultOf(join(refStore, stageDir, 'result.json')), `${name}: result.json`);
    const files = filesUnder(join(refStore, stageDir));
    assert.equal(filesUnder(join(store, stageDir)), files, `${name}: the same files`);
    for (const f of files.filter((f) => !VOLATILE.test(f))) {
      const [a, b] = [join(store, stageDir, f), join(refStore, stageDir, f)];
      if (/(^|\/)run\/report\.json$/.test(f)) {
        const read = (file: string) => JSON.parse(readFileSync(file, 'utf8'), (k, v: unknown) => (RUN_REPORT_VOLATILE.has(k) ? undefined : v)) as unknown;
        assert.equal(read(a), read(b), `${name}: ${f} less ${[...RUN_REPORT_VOLATILE].join(', ')}`);
      } else if (/(^|\/)run\/report\.md$/.test(f)) {
        assert.is(runReportMd(readFileSync(a, 'utf8')), runReportMd(readFileSync(b, 'utf8')), `${name}: ${f} less its history's img/s, s, live buffers, peak MiB`);
      } else {
        assert.ok(readFileSync(a).equals(readFileSync(b)), `${name}: ${f} identical`);
      }
    }
  }
}

/** How many jobs a worker's output says it computed (`<label> (<key>): done in …`), per stage name. */
export function jobsDone(output: string): Record<string, number> {
  const n: Record<string, number> = {};
  for (const m of output.matchAll(/(\S+)(?: \[seed \d+\])? \([0-9a-f]{12}\): done in /g)) n[m[1]!] = (n[m[1]!] ?? 0) + 1;
  return n;
}

/** The queue's log of the job whose stage folder (under `store`) is `stageDir`: `<store>/queue/logs/<key>.log`, the folder's name being the key. */
export function jobLogOf(store: string, stageDir: string): string {
  return readFileSync(join(store, 'queue', 'logs', `${basename(stageDir)}.log`), 'utf8');
}

/**
 * A failed queued run's assertion message, ordered for a log that keeps only its last lines (the test
 * runner prints a failing file's last 60): each worker's tail, then every job log that records more
 * than one attempt, a takeover or a failure, and the run's own tail last, where its error is.
 */
export function runFailure(what: string, runOutput: string, workers: TestWorker[], store: string): string {
  const tail = (s: string, lines: number) => s.trimEnd().split('\n').slice(-lines).join('\n');
  // the run's own error comes first: CI keeps only the head of a long failure message (uvu repeats the
  // message in its stack, and the report of a failing file is cut), and a study stopped by a failed
  // job or an exception says why in these lines, not in its last ones
  const errors = errorLines(runOutput, 10);
  const parts = [`--- ${what}: ${errors.length ? 'its error lines' : 'no error line in its output'}${errors.length ? `\n${errors.join('\n')}` : ''}`];
  parts.push(...workers.map((w) => `--- worker ${w.name} (exit ${w.proc.exitCode ?? w.proc.signalCode ?? 'running'}):\n${tail(w.output(), 6)}`));
  const logs = join(store, 'queue', 'logs');
  let names: string[] = [];
  try { names = readdirSync(logs).sort(); } catch { /* no job ran */ }
  for (const name of names) {
    const text = readFileSync(join(logs, name), 'utf8');
    if (/attempt [2-9]|taking over|waiting for it|failed|meanwhile/.test(text)) parts.push(`--- job log ${name}:\n${tail(text, 6)}`);
  }
  parts.push(`--- ${what}, its last lines:\n${tail(runOutput, 20)}`);
  return parts.join('\n');
}

/**
 * The lines of a run's output that say what went wrong (an exception, a stopped study, a failed job),
 * at most `max`, in order; progress lines are left out and a stack keeps its first 3 frames.
 */
export function errorLines(output: string, max: number): string[] {
  const out: string[] = [];
  let frames = 0;
  for (const line of output.split('\n')) {
    if (out.length >= max) break;
    if (/^\s+at /.test(line)) {
      if (out.length && frames++ < 3) out.push(line);
      continue;
    }
    frames = 0;
    if (/\b\d+\/\d+\b.*(it|img|stages)\/s/.test(line)) continue;
    if (/error|stopped|failed|unhandled|exception|refused|killed|signal|cannot|could not/i.test(line)) out.push(line);
  }
  return out;
}
