import * as assert from 'uvu/assert';
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, armStudy, assertSameStages, jobsDone, runFailure, seedStudy, testBackend, tempDir, until } from './cluster.js';

/**
 * Redis restarted (empty: no persistence) while a job runs: the workers reconnect, the study's side
 * enqueues again what Redis forgot, the running job is not started twice, and the study completes
 * with the in-process results. Two runs: classifier arms (their metrics), and one seed's generator
 * chain (fixtures/seed-study.ts, 16 px, CPU backend) restarted while DreamBooth trains and the gates
 * and drift wait for it (not yet in Redis), compared file by file.
 */
const test = suite('study queue: Redis restarted mid-run');
const dir = tempDir('foliar-queue-restart-');
const redises: TestRedis[] = [];
const workers: TestWorker[] = [];

test.after(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  for (const r of redises) await r.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('workers reconnect and the study completes with the same results', async () => {
  const redis = await TestRedis.start();
  redises.push(redis);
  const backend = await testBackend();
  const arms = 'baseline,oversample';
  const ref = await armStudy(['--store', join(dir, 'in-process'), '--backend', backend, '--seeds', '0', '--arms', arms]).done;
  assert.is(ref.status, 0, `in-process run failed:\n${ref.output}`);

  const store = join(dir, 'store');
  const w = new TestWorker(redis.url, store, backend, dir, 'a');
  workers.push(w);
  const run = armStudy(['--store', store, '--queue', redis.url, '--backend', backend, '--seeds', '0', '--arms', arms]);
  const logs = join(store, 'queue', 'logs');
  await until(() => existsSync(logs) && readdirSync(logs).length > 0, 10 * 60_000, 'the first job to start');
  await redis.restart();
  const r = await run.done;
  assert.is(r.status, 0, runFailure('queued run failed', r.output, [w], store));
  assert.equal(r.metrics, ref.metrics, 'same metrics as in process');
  assert.is((w.output().match(/: done in /g) ?? []).length, 2, `each job computed once:\n${w.output()}`);
});

test('generator jobs: Redis restarted while DreamBooth trains, the same files as in process', async () => {
  const redis = await TestRedis.start();
  redises.push(redis);
  const store = join(dir, 'seed-store');
  // 26 DreamBooth steps: long enough to restart Redis in the middle of them
  const steps = ['--db-steps', '26'];
  const ref = await seedStudy(['--store', store, ...steps]).done;
  assert.is(ref.status, 0, `in-process run failed:\n${ref.error}\n${ref.output}`);
  const refStore = join(dir, 'seed-in-process');
  renameSync(store, refStore);

  const ws = ['seed-a', 'seed-b'].map((name) => new TestWorker(redis.url, store, 'cpu', dir, name));
  workers.push(...ws);
  const run = seedStudy(['--store', store, '--queue', redis.url, ...steps]);
  const dbDir = join(store, ref.stages['dreambooth_no_prior']!);
  // DreamBooth trains (its train.jsonl has a step), the gates and drift wait for it in the study process
  await until(() => existsSync(join(dbDir, 'train.jsonl')), 10 * 60_000, 'DreamBooth to train on a worker');
  assert.not.ok(existsSync(join(dbDir, 'result.json')), 'DreamBooth not done when Redis goes');
  assert.not.ok(existsSync(join(store, 'seed-0', 'gates')), 'the gates not started when Redis goes');
  await redis.restart();
  const r = await run.done;
  const outputs = () => ws.map((w) => w.output().slice(-3000)).join('\n');
  assert.is(r.status, 0, runFailure('queued run failed', `${r.output}\n${r.error}`, ws, store));
  assert.equal(r.stages, ref.stages, 'the same stage keys');
  assert.ok(ws.some((w) => /worker: connected to Redis again/.test(w.output())), `a worker reconnected:\n${outputs()}`);
  const total: Record<string, number> = {};
  for (const w of ws) for (const [k, n] of Object.entries(jobsDone(w.output()))) total[k] = (total[k] ?? 0) + n;
  assert.equal(total, { 'gate-classifier': 1, dreambooth_no_prior: 1, gates: 1, drift: 1 }, `each job computed once:\n${outputs()}`);
  assertSameStages(store, refStore, ref.stages);
});

test.run();
