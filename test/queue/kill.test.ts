import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, armStudy, assertSameStages, jobsDone, jobLogOf, runFailure, seedStudy, testBackend, tempDir, until } from './cluster.js';

/**
 * `kill -9` of the worker in the middle of a job: once the job's lock expires, BullMQ gives it to
 * the other worker, which takes over the stage's lock and resumes from the dead worker's checkpoint;
 * the study completes with the in-process results. Two kinds: a classifier arm (its metrics), and a
 * DreamBooth run of one seed's generator chain (fixtures/seed-study.ts, 16 px, CPU backend) killed
 * after its step-25 checkpoint, whose stage and the gates and drift that read it are compared file by file.
 */
const test = suite('study queue: a worker killed mid-job');
const dir = tempDir('foliar-queue-kill-');
let redis: TestRedis | null = null;
const redises: TestRedis[] = [];
const workers: TestWorker[] = [];

test.after(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  for (const r of redises) await r.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('the job is retried by another worker and the results are the same', async () => {
  redis = await TestRedis.start();
  redises.push(redis);
  const backend = await testBackend();
  const ref = await armStudy(['--store', join(dir, 'in-process'), '--backend', backend, '--seeds', '0', '--arms', 'baseline']).done;
  assert.is(ref.status, 0, `in-process run failed:\n${ref.output}`);

  const store = join(dir, 'store');
  const a = new TestWorker(redis.url, store, backend, dir, 'a');
  workers.push(a);
  const run = armStudy(['--store', store, '--queue', redis.url, '--backend', backend, '--seeds', '0', '--arms', 'baseline']);
  // mid-job: after the first epoch's checkpoint, before the result
  const stageDir = () => {
    const d = join(store, 'seed-0', 'arm-baseline');
    return existsSync(d) ? join(d, readdirSync(d)[0] ?? '') : '';
  };
  await until(() => stageDir() !== '' && existsSync(join(stageDir(), 'run', 'checkpoints')), 10 * 60_000, 'worker a to checkpoint the job');
  assert.not.ok(existsSync(join(stageDir(), 'result.json')), 'killed before the job finished');
  await a.kill('SIGKILL');
  const b = new TestWorker(redis.url, store, backend, dir, 'b');
  workers.push(b);
  const r = await run.done;
  assert.is(r.status, 0, runFailure('queued run failed', r.output, [a, b], store));
  assert.equal(r.metrics, ref.metrics, 'same metrics as in process');
  assert.match(b.output(), /arm-baseline \[seed 0\] \([0-9a-f]{12}\): done in /, 'worker b finished the job');
  const logs = readdirSync(join(store, 'queue', 'logs'));
  const text = readFileSync(join(store, 'queue', 'logs', logs[0]!), 'utf8');
  assert.is((text.match(/attempt \d+ on /g) ?? []).length, 2, `two starts in the job's log:\n${text}`);
  assert.match(text, /its worker is gone, taking over/);
});

test('a DreamBooth job killed after a checkpoint is resumed by another worker: every file as in process', async () => {
  const redis = await TestRedis.start();
  redises.push(redis);
  const store = join(dir, 'seed-store');
  // 26 steps: a checkpoint at step 25 (every max(25, steps / 4) steps), then one more step and the final save
  const steps = ['--db-steps', '26'];
  const ref = await seedStudy(['--store', store, ...steps]).done;
  assert.is(ref.status, 0, `in-process run failed:\n${ref.error}\n${ref.output}`);
  const refStore = join(dir, 'seed-in-process');
  renameSync(store, refStore);

  const a = new TestWorker(redis.url, store, 'cpu', dir, 'seed-a');
  workers.push(a);
  const run = seedStudy(['--store', store, '--queue', redis.url, ...steps]);
  const dbDir = join(store, ref.stages['dreambooth_no_prior']!);
  await until(() => existsSync(join(dbDir, 'checkpoints', 'checkpoint-25')), 10 * 60_000, 'worker a to write DreamBooth\'s step-25 checkpoint');
  await a.kill('SIGKILL');
  assert.not.ok(existsSync(join(dbDir, 'result.json')), 'killed before the job finished');
  assert.not.ok(existsSync(join(dbDir, 'checkpoints', 'checkpoint-26')), 'killed before the last step');
  assert.match(a.output(), /dreambooth_no_prior \[seed 0\] \([0-9a-f]{12}\): started, attempt 1/, 'worker a had the DreamBooth job');
  const b = new TestWorker(redis.url, store, 'cpu', dir, 'seed-b');
  workers.push(b);
  const r = await run.done;
  assert.is(r.status, 0, runFailure('queued run failed', `${r.output}\n${r.error}`, [a, b], store));
  assert.equal(r.stages, ref.stages, 'the same stage keys');
  assert.match(b.output(), /resumed from \S*checkpoint-25 at step 25/, 'worker b resumed from the dead worker\'s checkpoint');
  assert.equal(jobsDone(b.output())['dreambooth_no_prior'], 1, 'worker b finished the DreamBooth job');
  assert.not.ok(jobsDone(a.output())['dreambooth_no_prior'], 'worker a never finished it');
  const text = jobLogOf(store, dbDir);
  assert.is((text.match(/attempt \d+ on /g) ?? []).length, 2, `two starts in the job's log:\n${text}`);
  assert.match(text, /its worker is gone, taking over/);
  // the resumed DreamBooth run's weights, grids and final checkpoint, and the gates and drift computed from it
  assertSameStages(store, refStore, ref.stages);
});

test.run();
