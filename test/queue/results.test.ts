import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, armStudy, runFailure, testBackend, tempDir } from './cluster.js';

/**
 * The smoke study's arm part (baseline, oversample, class_weight on seed 0, the tiny classifier)
 * through the queue with 3 local workers gives the in-process run's metrics; running it again on the
 * same store finds every result there and no worker runs anything again.
 */
const test = suite('study queue: results');
const dir = tempDir('foliar-queue-results-');
let redis: TestRedis | null = null;
const workers: TestWorker[] = [];

test.after(async () => {
  for (const w of workers) await w.kill();
  await redis?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('3 workers give the in-process metrics, and a finished job is never redone', async () => {
  redis = await TestRedis.start();
  const backend = await testBackend();
  const ref = await armStudy(['--store', join(dir, 'in-process'), '--backend', backend, '--seeds', '0']).done;
  assert.is(ref.status, 0, `in-process run failed:\n${ref.output}`);
  assert.is(Object.keys(ref.metrics).length, 3);

  const store = join(dir, 'store');
  for (const name of ['a', 'b', 'c']) workers.push(new TestWorker(redis.url, store, backend, dir, name, [], 'default'));
  const q = await armStudy(['--store', store, '--queue', redis.url, '--backend', backend, '--seeds', '0']).done;
  assert.is(q.status, 0, runFailure('queued run failed', q.output, workers, store));
  assert.equal(q.metrics, ref.metrics, 'queued metrics = in-process metrics');
  const ran = workers.map((w) => (w.output().match(/: done in /g) ?? []).length);
  assert.is(ran.reduce((a, b) => a + b, 0), 3, `each job ran once (per worker: ${ran.join(', ')})`);

  const again = await armStudy(['--store', store, '--queue', redis.url, '--backend', backend, '--seeds', '0']).done;
  assert.is(again.status, 0, again.output);
  assert.equal(again.metrics, ref.metrics);
  const ranAgain = workers.map((w) => (w.output().match(/: done in /g) ?? []).length);
  assert.equal(ranAgain, ran, 'nothing ran a second time');
  // every job's log names the worker that ran it
  const logs = readdirSync(join(store, 'queue', 'logs'));
  assert.is(logs.length, 3);
  for (const f of logs) assert.match(readFileSync(join(store, 'queue', 'logs', f), 'utf8'), /attempt 1 on .* pid \d+/);
});

test.run();
