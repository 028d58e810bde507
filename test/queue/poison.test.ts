import * as assert from 'uvu/assert';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, armStudy, testBackend, tempDir } from './cluster.js';

/**
 * A poisoned job (its training data folder does not exist, so every attempt throws) is tried a
 * bounded number of times with backoff, then the study stops with an error that names the job, its
 * reason and its log, where every attempt is written.
 */
const test = suite('study queue: poisoned job');
const dir = tempDir('foliar-queue-poison-');
let redis: TestRedis | null = null;
let worker: TestWorker | null = null;

test.after(async () => {
  await worker?.kill();
  await redis?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('bounded retries, then a clear error naming the job and its log', async () => {
  redis = await TestRedis.start();
  const backend = await testBackend();
  const store = join(dir, 'store');
  worker = new TestWorker(redis.url, store, backend, dir, 'a');
  const r = await armStudy(['--store', store, '--queue', redis.url, '--backend', backend, '--seeds', '0', '--arms', 'baseline', '--poison', '--attempts', '3', '--backoff-ms', '300']).done;
  assert.is(r.status, 1, `the study should stop with an error:\n${r.output}`);
  const msg = r.error ?? '';
  assert.match(msg, /job arm-baseline \[seed 0\] \([0-9a-f]{12}\) failed after 3 attempts: /);
  assert.match(msg, /poisoned-job/, 'the reason is the job\'s own error');
  const log = (msg.match(/log: (\S+)/) ?? [])[1] ?? '';
  assert.ok(existsSync(log), `log file ${log}`);
  const text = readFileSync(log, 'utf8');
  assert.is((text.match(/attempt \d+ on /g) ?? []).length, 3, text);
  assert.is((text.match(/failed: /g) ?? []).length, 3, text);
  assert.match(text, /attempt 3 on /);
});

test.run();
