import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { suite } from '../harness.js';
import { repoRoot } from '../helpers.js';
import { TestRedis, TestWorker, tempDir } from './cluster.js';

/**
 * The generator's job kinds: one seed's gate classifier, a DreamBooth run, the gates and the drift
 * (fixtures/seed-study.ts, toy sizes) on 2 workers give the in-process run's results: every stage's
 * result.json (less its timings) and every image and weight file it wrote, byte for byte. Both runs
 * use the same store path (the in-process one is moved aside before the queued one), because results
 * hold absolute paths and the stand-in base model's path enters the stage keys.
 *
 * The CPU backend on purpose: results are compared on one backend either way, and a fresh WebGPU
 * process compiles its pipelines for minutes on lavapipe (measured: 213 s for the gate classifier's
 * 6 steps), which each worker would pay again; at 16 px the whole chain takes about a minute on CPU.
 */
const test = suite('study queue: generator jobs');
const dir = tempDir('foliar-queue-seed-');
let redis: TestRedis | null = null;
const workers: TestWorker[] = [];

test.after(async () => {
  for (const w of workers) await w.kill();
  await redis?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

interface SeedStudyResult {
  seconds: number;
  stages: Record<string, string>;
  error: string | null;
  status: number | null;
  output: string;
}

function seedStudy(args: string[]): Promise<SeedStudyResult> {
  const proc = spawn(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', 'test/queue/fixtures/seed-study.ts', '--backend', 'cpu', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => {
    proc.once('exit', (status) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      let parsed: Omit<SeedStudyResult, 'status' | 'output'> = { seconds: NaN, stages: {}, error: `no result line (exit ${status})` };
      try { parsed = JSON.parse(line) as typeof parsed; } catch { /* keeps the message above */ }
      resolve({ ...parsed, status, output: `${out}\n${err}`.slice(-6000) });
    });
  });
}

/** A result.json without what measures the run rather than computes it (wall times, the process's memory peak). */
function resultOf(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'), (k, v: unknown) => (k === 'seconds' || k === 'peakBytes' ? undefined : v));
}

function filesUnder(root: string): string[] {
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

test('gate classifier, DreamBooth, gates and drift on workers = in process, byte for byte', async () => {
  redis = await TestRedis.start();
  const store = join(dir, 'store');
  const ref = await seedStudy(['--store', store]);
  assert.is(ref.status, 0, `in-process run failed:\n${ref.error}\n${ref.output}`);
  assert.equal(Object.keys(ref.stages).sort(), ['dreambooth_no_prior', 'drift', 'gate-classifier', 'gates']);
  const refStore = join(dir, 'in-process');
  renameSync(store, refStore);

  for (const name of ['a', 'b']) workers.push(new TestWorker(redis.url, store, 'cpu', dir, name));
  const q = await seedStudy(['--store', store, '--queue', redis.url]);
  assert.is(q.status, 0, `queued run failed:\n${q.error}\n${q.output}\n${workers.map((w) => w.output()).join('\n')}`);
  assert.equal(q.stages, ref.stages, 'the same stage keys');
  const ran = workers.map((w) => (w.output().match(/: done in /g) ?? []).length);
  assert.is(ran.reduce((a, b) => a + b, 0), 4, `each of the 4 jobs ran once, on a worker (per worker: ${ran.join(', ')})`);

  for (const [name, stageDir] of Object.entries(ref.stages)) {
    assert.equal(resultOf(join(store, stageDir, 'result.json')), resultOf(join(refStore, stageDir, 'result.json')), `${name}: result.json`);
    const files = filesUnder(join(refStore, stageDir));
    assert.equal(filesUnder(join(store, stageDir)), files, `${name}: the same files`);
    for (const f of files.filter((f) => !VOLATILE.test(f))) {
      assert.ok(readFileSync(join(store, stageDir, f)).equals(readFileSync(join(refStore, stageDir, f))), `${name}: ${f} identical`);
    }
  }
});

test.run();
