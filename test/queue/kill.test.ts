import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, armStudy, testBackend, tempDir, until } from './cluster.js';

/**
 * `kill -9` of the worker in the middle of a job: once the job's lock expires, BullMQ gives it to
 * the other worker, which takes over the stage's lock and resumes from the dead worker's checkpoint;
 * the study completes with the in-process metrics.
 */
const test = suite('study queue: a worker killed mid-job');
const dir = tempDir('foliar-queue-kill-');
let redis: TestRedis | null = null;
const workers: TestWorker[] = [];

test.after(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await redis?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('the job is retried by another worker and the results are the same', async () => {
  redis = await TestRedis.start();
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
  assert.is(r.status, 0, `queued run failed:\n${r.output}\n${a.output()}\n${b.output()}`);
  assert.equal(r.metrics, ref.metrics, 'same metrics as in process');
  assert.match(b.output(), /arm-baseline \[seed 0\] \([0-9a-f]{12}\): done in /, 'worker b finished the job');
  const logs = readdirSync(join(store, 'queue', 'logs'));
  const text = readFileSync(join(store, 'queue', 'logs', logs[0]!), 'utf8');
  assert.is((text.match(/attempt \d+ on /g) ?? []).length, 2, `two starts in the job's log:\n${text}`);
  assert.match(text, /its worker is gone, taking over/);
});

test.run();
