import * as assert from 'uvu/assert';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, armStudy, testBackend, tempDir, until } from './cluster.js';

/**
 * Redis restarted (empty: no persistence) while a job runs: the workers reconnect, the study's side
 * enqueues again what Redis forgot, the running job is not started twice, and the study completes
 * with the in-process metrics.
 */
const test = suite('study queue: Redis restarted mid-run');
const dir = tempDir('foliar-queue-restart-');
let redis: TestRedis | null = null;
const workers: TestWorker[] = [];

test.after(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await redis?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('workers reconnect and the study completes with the same results', async () => {
  redis = await TestRedis.start();
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
  assert.is(r.status, 0, `queued run failed:\n${r.output}\n${w.output()}`);
  assert.equal(r.metrics, ref.metrics, 'same metrics as in process');
  assert.is((w.output().match(/: done in /g) ?? []).length, 2, `each job computed once:\n${w.output()}`);
});

test.run();
