import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, armStudy, jobsDone, resultOf, seedStudy, testBackend, tempDir } from './cluster.js';

/**
 * A poisoned job is tried a bounded number of times with backoff, then the study stops with an error
 * that names the job, its reason and its log, where every attempt is written. Two kinds: a classifier
 * arm whose training data folder does not exist, and a DreamBooth run (fixtures/seed-study.ts --poison)
 * whose base model folder does not exist; there the gate classifier done before it stays in the store,
 * and the gates and drift that read the DreamBooth run are never run.
 */
const test = suite('study queue: poisoned job');
const dir = tempDir('foliar-queue-poison-');
const redises: TestRedis[] = [];
const workers: TestWorker[] = [];

test.after(async () => {
  for (const w of workers) await w.kill();
  for (const r of redises) await r.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('bounded retries, then a clear error naming the job and its log', async () => {
  const redis = await TestRedis.start();
  redises.push(redis);
  const backend = await testBackend();
  const store = join(dir, 'store');
  const worker = new TestWorker(redis.url, store, backend, dir, 'a');
  workers.push(worker);
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

/** The times of a job log's lines that match `re` (each line starts with an ISO time). */
const timesOf = (log: string, re: RegExp) => log.split('\n').filter((l) => re.test(l)).map((l) => Date.parse(l.split(' ')[0]!));

test('a poisoned DreamBooth job: 3 attempts with backoff, then the study stops, what was done is kept', async () => {
  const redis = await TestRedis.start();
  redises.push(redis);
  const store = join(dir, 'seed-store');
  const worker = new TestWorker(redis.url, store, 'cpu', dir, 'seed-a');
  workers.push(worker);
  const backoffMs = 1_000;
  const r = await seedStudy(['--store', store, '--queue', redis.url, '--poison', '--attempts', '3', '--backoff-ms', String(backoffMs)]).done;
  assert.is(r.status, 1, `the study should stop with an error:\n${r.output}`);
  const msg = r.error ?? '';
  assert.match(msg, /job dreambooth_no_prior \[seed 0\] \([0-9a-f]{12}\) failed after 3 attempts: /);
  assert.match(msg, /\/nonexistent\/poisoned-job\/base-model/, `the reason is the job's own error:\n${msg}`);
  const log = (msg.match(/log: (\S+)/) ?? [])[1] ?? '';
  assert.ok(existsSync(log), `log file ${log}`);
  const text = readFileSync(log, 'utf8');
  assert.is((text.match(/dreambooth_no_prior \[seed 0\]: attempt \d+ on /g) ?? []).length, 3, text);
  assert.is((text.match(/failed: /g) ?? []).length, 3, text);
  // exponential backoff: the 2nd attempt starts ≥ 1 × backoff after the 1st failed, the 3rd ≥ 2 × after the 2nd
  const starts = timesOf(text, / attempt \d+ on /), fails = timesOf(text, / failed: /);
  assert.ok(starts[1]! - fails[0]! >= 0.9 * backoffMs, `backoff before attempt 2: ${starts[1]! - fails[0]!} ms`);
  assert.ok(starts[2]! - fails[1]! >= 0.9 * 2 * backoffMs, `backoff before attempt 3: ${starts[2]! - fails[1]!} ms`);
  // what was done before the failure is kept: the gate classifier's stage, complete
  const done = jobsDone(worker.output());
  assert.equal(done, { 'gate-classifier': 1 }, `only the gate classifier completed:\n${worker.output().slice(-3000)}`);
  const inst = readdirSync(join(store, 'seed-0', 'gate-classifier'));
  assert.is(inst.length, 1);
  const instResult = join(store, 'seed-0', 'gate-classifier', inst[0]!, 'result.json');
  assert.ok(existsSync(instResult), 'the gate classifier\'s result is in the store');
  const checkpoint = (resultOf(instResult) as { value: { checkpoint: string } }).value.checkpoint;
  assert.ok(existsSync(checkpoint), `its checkpoint ${checkpoint}`);
  // the jobs that read the DreamBooth run never ran
  assert.not.ok(existsSync(join(store, 'seed-0', 'gates')), 'gates never started');
  assert.not.ok(existsSync(join(store, 'seed-0', 'drift')), 'drift never started');
});

test.run();
