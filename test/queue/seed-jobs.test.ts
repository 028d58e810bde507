import * as assert from 'uvu/assert';
import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, assertSameStages, runFailure, seedStudy, tempDir } from './cluster.js';

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

test('gate classifier, DreamBooth, gates and drift on workers = in process, byte for byte', async () => {
  redis = await TestRedis.start();
  const store = join(dir, 'store');
  const ref = await seedStudy(['--store', store]).done;
  assert.is(ref.status, 0, `in-process run failed:\n${ref.error}\n${ref.output}`);
  assert.equal(Object.keys(ref.stages).sort(), ['dreambooth_no_prior', 'drift', 'gate-classifier', 'gates']);
  const refStore = join(dir, 'in-process');
  renameSync(store, refStore);

  for (const name of ['a', 'b']) workers.push(new TestWorker(redis.url, store, 'cpu', dir, name, [], 'default'));
  const q = await seedStudy(['--store', store, '--queue', redis.url]).done;
  assert.is(q.status, 0, runFailure('queued run failed', `${q.output}\n${q.error}`, workers, store));
  assert.equal(q.stages, ref.stages, 'the same stage keys');
  const ran = workers.map((w) => (w.output().match(/: done in /g) ?? []).length);
  assert.is(ran.reduce((a, b) => a + b, 0), 4, `each of the 4 jobs ran once, on a worker (per worker: ${ran.join(', ')})`);

  assertSameStages(store, refStore, ref.stages);
});

test.run();
