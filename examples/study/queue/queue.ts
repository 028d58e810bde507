/**
 * The study's jobs on BullMQ (Redis): workers that run them, and the study's side that enqueues them
 * and waits. BullMQ gives the queue's hard parts — per-job locks renewed while a job runs, stalled
 * jobs (a worker killed mid-job) moved back to the queue once the lock expires, bounded retries with
 * backoff, reconnection after Redis restarts — so none of it is home-made here.
 *
 * The store (a directory every worker sees at the same path) is the source of truth: a job is done
 * when its stage's result.json exists. Redis only holds what is still to do; if Redis loses it (a
 * restart without persistence), the study's side enqueues the missing jobs again, and a job that a
 * worker still runs elsewhere is waited for through the stage's lock file, never run twice at once.
 */
import { Queue, Worker, UnrecoverableError, type Job, type ConnectionOptions } from 'bullmq';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { Worker as Thread } from 'node:worker_threads';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { BackendName } from '@foliar/tensor';
import { locateJob, jobLabel, parseJob, runJob, type StudyJob } from './jobs.js';

export const QUEUE_NAME = 'foliar-study';

/** Timings of the fault handling (milliseconds); the defaults suit jobs of minutes. */
export interface FaultOptions {
  /** A job's lock: a worker that stops renewing it (killed, hung) loses the job after this long. */
  lockMs: number;
  /** How often workers look for jobs whose lock expired and put them back in the queue. */
  stalledMs: number;
  /** A job that stalls more often than this fails (a job that kills its worker every time). */
  maxStalled: number;
  /** Tries of a job that throws, then it fails and the study stops. */
  attempts: number;
  /** First retry delay; doubles each try. */
  backoffMs: number;
}

export const FAULT_DEFAULTS: FaultOptions = { lockMs: 60_000, stalledMs: 30_000, maxStalled: 3, attempts: 3, backoffMs: 5_000 };

/** ioredis options from redis://[user:password@]host:port[/db]; retried forever so a restart is survived. */
export function redisConnection(url: string): ConnectionOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:') throw new Error(`--redis/--queue: expected redis://host:port, got "${url}"`);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    // workers' blocking reads must wait through a Redis restart instead of failing (BullMQ requires null)
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(250 * times, 2_000),
  };
}

/** A redis:// address fit for a log: its password (if any) replaced by ***. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/** Where a job's log lives in the store (every attempt appends: worker, host, error stack). */
export function jobLogPath(store: string, key: string): string {
  return join(store, 'queue', 'logs', `${key}.log`);
}

// ---------------------------------------------------------------- the stage lock (store side)

/**
 * An exclusive lock on one stage folder across machines: a file created with O_EXCL whose mtime the
 * holder refreshes; one not refreshed for `staleMs` belongs to a dead worker and is taken over.
 * BullMQ already gives a job to one worker at a time; this covers a job Redis forgot (restart) and
 * enqueued again while its first worker still runs it.
 */
async function lockStage(store: string, key: string, resultFile: string, staleMs: number, log: (m: string) => void): Promise<(() => void) | null> {
  const file = join(store, 'queue', 'locks', `${key}.lock`);
  mkdirSync(dirname(file), { recursive: true });
  let waited = false;
  for (;;) {
    if (existsSync(resultFile)) return null;
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${hostname()} ${process.pid} ${new Date().toISOString()}\n`);
      closeSync(fd);
      const stop = heartbeat(file, Math.max(200, staleMs / 4), Math.max(10 * staleMs, 300_000));
      return () => {
        stop();
        try { unlinkSync(file); } catch { /* already gone */ }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let age = 0;
    try { age = Date.now() - statSync(file).mtimeMs; } catch { continue; }
    if (age > staleMs) {
      log(`stage lock ${file} not refreshed for ${(age / 1000).toFixed(0)} s (${readText(file)}): its worker is gone, taking over`);
      try { unlinkSync(file); } catch { /* another worker took it first */ }
      continue;
    }
    if (!waited) log(`stage is being computed by ${readText(file)}: waiting for it`);
    waited = true;
    await sleep(Math.min(1_000, staleMs / 4));
  }
}

/**
 * Keeps `file`'s mtime fresh from a worker thread, so a main thread busy for longer than the stale
 * time (pipeline compilation and recording a training step are synchronous) does not lose the stage
 * to a second worker: measured under load, a 10 s lock refreshed from the main thread was taken over
 * and the stage computed twice. A dead process takes its thread with it, so its lock still goes stale;
 * a main thread silent for `hungMs` (hung, not just busy) stops the refresh too.
 */
function heartbeat(file: string, everyMs: number, hungMs: number): () => void {
  const thread = new Thread(
    `const { parentPort, workerData: w } = require('node:worker_threads');
     const { utimesSync } = require('node:fs');
     let heard = Date.now();
     parentPort.on('message', () => { heard = Date.now(); });
     setInterval(() => {
       if (Date.now() - heard > w.hungMs) return;
       const now = new Date();
       try { utimesSync(w.file, now, now); } catch { /* taken over: the result is the same */ }
     }, w.everyMs);`,
    { eval: true, workerData: { file, everyMs, hungMs } },
  );
  thread.unref();
  const ping = setInterval(() => thread.postMessage(0), everyMs);
  ping.unref();
  return () => {
    clearInterval(ping);
    void thread.terminate();
  };
}

function readText(file: string): string {
  try { return readFileSync(file, 'utf8').trim(); } catch { return '?'; }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- workers

export interface WorkerOptions extends Pick<FaultOptions, 'lockMs' | 'stalledMs' | 'maxStalled'> {
  redis: string;
  store: string;
  concurrency: number;
  backend: BackendName;
  log?: (msg: string) => void;
}

/** Starts a BullMQ worker on the study's queue; close() lets running jobs finish first. */
export function startWorker(o: WorkerOptions): { worker: Worker; close: () => Promise<void> } {
  const store = resolve(o.store);
  const say = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const processor = async (job: Job): Promise<{ key: string; seconds: number; cached: boolean }> => {
    const data: StudyJob = parseJob(job.data);
    const { key, dir } = locateJob(data, store);
    // the id is the content hash: a payload that does not hash to it is corrupt, retrying cannot help
    if (key !== job.id) throw new UnrecoverableError(`job ${job.id}: its payload hashes to ${key}`);
    if (resolve(data.store) !== store) throw new Error(`job ${key}: the study's store is ${data.store}, this worker's --store is ${store} (mount the store at the same path on every machine)`);
    if (data.backend !== o.backend) throw new Error(`job ${key}: the study runs on ${data.backend}, this worker on ${o.backend} (results would differ)`);
    const resultFile = join(dir, 'result.json');
    if (existsSync(resultFile)) return { key, seconds: 0, cached: true };
    const logFile = jobLogPath(store, key);
    mkdirSync(dirname(logFile), { recursive: true });
    const log = (m: string) => appendFileSync(logFile, `${new Date().toISOString()} ${m}\n`);
    log(`${jobLabel(data)}: attempt ${job.attemptsMade + 1} on ${hostname()} pid ${process.pid}`);
    say(`${jobLabel(data)} (${key}): started, attempt ${job.attemptsMade + 1}`);
    // twice the job lock: a worker whose event loop was busy past its BullMQ lock (a false stall) still
    // holds the stage, while a dead one's is free soon after BullMQ hands the job on
    const unlock = await lockStage(store, key, resultFile, 2 * o.lockMs, log);
    if (!unlock) {
      log('done meanwhile by another worker');
      return { key, seconds: 0, cached: true };
    }
    try {
      const r = await runJob(data, { store, log });
      log(`done in ${r.seconds.toFixed(1)} s`);
      say(`${jobLabel(data)} (${key}): done in ${r.seconds.toFixed(1)} s`);
      return { key, seconds: r.seconds, cached: r.cached };
    } catch (e) {
      log(`failed: ${(e as Error).stack ?? String(e)}`);
      say(`${jobLabel(data)} (${key}): failed: ${(e as Error).message} (log: ${logFile})`);
      throw e;
    } finally {
      unlock();
    }
  };
  const worker = new Worker(QUEUE_NAME, processor, {
    connection: redisConnection(o.redis),
    concurrency: o.concurrency,
    lockDuration: o.lockMs,
    stalledInterval: o.stalledMs,
    maxStalledCount: o.maxStalled,
  });
  // without a listener an 'error' event (Redis gone) would throw; ioredis reconnects by itself
  let lastError = '';
  worker.on('error', (e) => {
    if (e.message !== lastError) say(`worker: ${e.message} (retrying)`);
    lastError = e.message;
  });
  worker.on('ready', () => {
    if (lastError) say('worker: connected to Redis again');
    lastError = '';
  });
  return { worker, close: () => worker.close() };
}

// ---------------------------------------------------------------- the study's side

export interface QueueClientOptions extends Pick<FaultOptions, 'attempts' | 'backoffMs'> {
  /** How often the store and Redis are read for the state of the jobs waited for. */
  pollMs: number;
  /** Called with a one-line summary whenever the jobs' state changes (for the progress display). */
  onChange?: (summary: string) => void;
}

interface Pending {
  job: StudyJob;
  key: string;
  resultFile: string;
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
  state: string;
}

/** Thrown when a job failed for good: names the job, its error and its log. */
export class JobFailed extends Error {
  constructor(readonly key: string, readonly label: string, readonly attempts: number, readonly reason: string, readonly logFile: string) {
    super(`job ${label} (${key}) failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${reason}\n  log: ${logFile}`);
  }
}

/** The study's side: enqueues jobs (id = stage key) and settles one promise per job. */
export class StudyQueue {
  private readonly pending = new Map<string, Pending>();
  private readonly queue: Queue;
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private done = 0;
  private lastSummary = '';
  readonly store: string;
  private readonly o: QueueClientOptions;

  constructor(readonly redis: string, store: string, o: Partial<QueueClientOptions> = {}) {
    this.store = resolve(store);
    this.o = { attempts: FAULT_DEFAULTS.attempts, backoffMs: FAULT_DEFAULTS.backoffMs, pollMs: 1_000, ...o };
    this.queue = new Queue(QUEUE_NAME, { connection: redisConnection(redis) });
    this.queue.on('error', () => { /* Redis restarting: commands wait for the reconnect */ });
  }

  /**
   * Enqueues a job unless its result is in the store; the promise settles when it is done or failed.
   * `after`: the jobs whose results it reads (their promises): it is registered at once, so the study
   * can wait for it, but enqueued only when they are done (a worker never waits on an input), and it
   * fails with the first of them that fails.
   */
  submit(job: StudyJob, after: readonly Promise<void>[] = []): Promise<void> {
    const { key, dir } = locateJob(job, this.store);
    const known = this.pending.get(key);
    if (known) return known.promise;
    let resolveP!: () => void, rejectP!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => { resolveP = res; rejectP = rej; });
    // a job nobody awaits yet must not crash the process as an unhandled rejection
    promise.catch(() => {});
    const p: Pending = { job, key, resultFile: join(dir, 'result.json'), promise, resolve: resolveP, reject: rejectP, state: 'submitted' };
    this.pending.set(key, p);
    if (existsSync(p.resultFile)) this.settle(p);
    else if (after.length) {
      p.state = 'blocked';
      void Promise.all(after).then(
        () => {
          if (p.state !== 'blocked') return;
          p.state = 'submitted';
          return this.enqueue(p, true);
        },
        (e: Error) => this.fail(p, `an input failed: ${e.message.split('\n')[0]}`),
      ).catch((e: Error) => this.fail(p, e.message));
    } else void this.enqueue(p, true).catch((e: Error) => this.fail(p, e.message));
    this.timer ??= setInterval(() => void this.poll(), this.o.pollMs);
    this.report();
    return promise;
  }

  /** For StageRunner.offload: the job of this stage key, if one was submitted. */
  wait(key: string): Promise<void> | undefined {
    return this.pending.get(key)?.promise;
  }

  /** Jobs submitted, done, running, waiting, failed. */
  summary(): string {
    const n = (s: string) => [...this.pending.values()].filter((p) => p.state === s).length;
    const running = n('active'), failed = n('failed'), blocked = n('blocked');
    return `${this.done}/${this.pending.size} done${running ? `, ${running} running` : ''}${blocked ? `, ${blocked} awaiting inputs` : ''}${failed ? `, ${failed} failed` : ''}`;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.queue.close();
  }

  private async enqueue(p: Pending, first: boolean): Promise<void> {
    const existing = await this.queue.getJob(p.key);
    if (existing) {
      // failed in an earlier run of the study: running the study again is asking for another try
      if (first && (await existing.getState()) === 'failed') await existing.retry('failed');
      return;
    }
    await this.queue.add(p.job.kind, p.job, {
      jobId: p.key,
      attempts: this.o.attempts,
      backoff: { type: 'exponential', delay: this.o.backoffMs },
      // the store keeps results; a completed job is dropped so the same id can be enqueued again later
      removeOnComplete: true,
      removeOnFail: false,
    });
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const p of this.pending.values()) {
        // a blocked job waits for its inputs and is not in Redis yet
        if (p.state === 'done' || p.state === 'failed' || p.state === 'blocked') continue;
        if (existsSync(p.resultFile)) {
          this.settle(p);
          continue;
        }
        const job = await this.queue.getJob(p.key);
        if (!job) {
          // Redis lost it (restarted without persistence) or it completed between the two reads: enqueue
          // again; a worker that finds the result or a live stage lock does not run it twice
          await this.enqueue(p, false);
          p.state = 'waiting';
          continue;
        }
        const state = await job.getState();
        if (state === 'failed') {
          if (existsSync(p.resultFile)) this.settle(p);
          else this.fail(p, job.failedReason ?? 'unknown error', job.attemptsMade);
        } else p.state = state;
      }
    } catch {
      // Redis unreachable (restarting): the next poll tries again
    } finally {
      this.polling = false;
      this.report();
    }
  }

  private settle(p: Pending): void {
    p.state = 'done';
    this.done++;
    p.resolve();
  }

  private fail(p: Pending, reason: string, attempts = 0): void {
    p.state = 'failed';
    p.reject(new JobFailed(p.key, jobLabel(p.job), attempts, reason, jobLogPath(this.store, p.key)));
  }

  private report(): void {
    const s = this.summary();
    if (s !== this.lastSummary) this.o.onChange?.(s);
    this.lastSummary = s;
  }
}
