import * as assert from 'uvu/assert';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from '../harness.js';
import { TestRedis, TestWorker, assertSameStages, jobsDone, runFailure, study16, tempDir } from './cluster.js';

/**
 * The whole study, examples/study.ts, in process and with `--queue` on 2 local workers: every job kind
 * (classifier arms, gate classifiers, DreamBooth with and without prior preservation, gates, synthetic
 * image sets, drift) on both seeds of the smoke profile, shrunk to 16 px on the CPU backend
 * (fixtures/study-16px.ts lists what it shrinks and why). The queued run's report.json equals the
 * in-process one except `created` (the clock) and `timings` (wall seconds, and `cached`, which says
 * where a stage ran); every queued stage's result.json equals the in-process one less its wall times,
 * and its files are byte-identical; each job ran exactly once, on a worker, none in the study process.
 * Both runs use the same store path (the in-process store is moved aside first): stage keys hold
 * absolute paths of their inputs.
 */
const test = suite('study queue: the whole smoke study on 2 workers');
const dir = tempDir('foliar-queue-study-');
let redis: TestRedis | null = null;
const workers: TestWorker[] = [];

test.after(async () => {
  for (const w of workers) await w.kill();
  await redis?.dispose();
  // FOLIAR_QUEUE_KEEP=1 keeps both stores and every log for a look after a failure
  if (process.env['FOLIAR_QUEUE_KEEP'] === '1') console.log(`  kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
});

/** The stages that are jobs on a queue (examples/study.ts: QUEUED_STAGES), by kind. */
const KIND_OF: [RegExp, string][] = [
  [/^arm-/, 'arm'], [/^synthetic-/, 'synthetic'], [/^gate-classifier$/, 'gate-classifier'],
  [/^dreambooth(_no_prior)?$/, 'dreambooth'], [/^gates$/, 'gates'], [/^drift$/, 'drift'],
];
const kindOf = (stage: string) => KIND_OF.find(([re]) => re.test(stage))?.[1] ?? null;

interface Report {
  created: string;
  timings: { stage: string; seed: number | null; seconds: number; cached: boolean }[];
  [k: string]: unknown;
}
const readReport = (store: string) => JSON.parse(readFileSync(join(store, 'report.json'), 'utf8')) as Report;
/** report.json less what measures the run rather than computes it: named, nothing else is dropped. */
const VOLATILE_REPORT_FIELDS = ['created', 'timings'] as const;
const comparable = (r: Report) => Object.fromEntries(Object.entries(r).filter(([k]) => !(VOLATILE_REPORT_FIELDS as readonly string[]).includes(k)));

test('every job kind on 2 workers: report.json and every stage = in process, each job once', async () => {
  redis = await TestRedis.start();
  const store = join(dir, 'store');
  const ref = await study16(['--out', store], join(dir, 'in-process.log')).done;
  assert.is(ref.status, 0, runFailure('in-process run failed', ref.output, [], store));
  const refReport = readReport(store);
  const refStore = join(dir, 'in-process');
  renameSync(store, refStore);

  // what must run as jobs: the in-process run's stages of the queued kinds
  const jobs = refReport.timings.filter((t) => kindOf(t.stage));
  const kinds = [...new Set(jobs.map((t) => kindOf(t.stage)))].sort();
  assert.equal(kinds, ['arm', 'dreambooth', 'drift', 'gate-classifier', 'gates', 'synthetic'], 'the in-process run has every job kind');
  assert.ok(jobs.length >= 28, `2 seeds × (7 arms less an empty filtered arm, gate classifier, 2 DreamBooth, gates, drift, 3 image sets): ${jobs.length}`);

  // no worker is killed here: the workers' own lock times, not the kill tests' short ones. Two workers
  // (with the study process pretraining beside them) already oversubscribe a 2-core CI machine; a
  // third only added contention (and memory) to a run that once failed on CI for reasons not recorded
  for (const name of ['a', 'b']) workers.push(new TestWorker(redis.url, store, 'cpu', dir, name, [], 'default'));
  const q = await study16(['--queue', redis.url, '--store', store], join(dir, 'queued.log')).done;
  assert.is(q.status, 0, runFailure('queued run failed', q.output, workers, store));
  const qReport = readReport(store);
  console.log(`  in process ${ref.seconds.toFixed(0)} s, queued on ${workers.length} workers ${q.seconds.toFixed(0)} s, ${jobs.length} jobs`);

  assert.equal(comparable(qReport), comparable(refReport), `report.json less ${VOLATILE_REPORT_FIELDS.join(', ')}`);
  // the same stages, in the same order; the queued ones computed by a worker, none reused from a cache
  assert.equal(qReport.timings.map((t) => [t.stage, t.seed]), refReport.timings.map((t) => [t.stage, t.seed]));
  for (const t of qReport.timings) assert.not.ok(t.cached, `${t.stage} [seed ${t.seed}]: computed in this run`);
  assert.is((q.output.match(/: done by a worker \(/g) ?? []).length, jobs.length, 'the study process took every job\'s result from a worker');
  for (const t of jobs) assert.not.match(q.output, new RegExp(`== ${t.stage} \\[seed ${t.seed}\\]`), `${t.stage} [seed ${t.seed}] did not run in the study process`);

  // each job exactly once, on some worker
  const per = workers.map((w) => jobsDone(w.output()));
  const total: Record<string, number> = {};
  for (const p of per) for (const [stage, n] of Object.entries(p)) total[stage] = (total[stage] ?? 0) + n;
  const expected: Record<string, number> = {};
  for (const t of jobs) expected[t.stage] = (expected[t.stage] ?? 0) + 1;
  assert.equal(total, expected, `jobs done per stage name (per worker: ${per.map((p) => Object.values(p).reduce((a, b) => a + b, 0)).join(', ')})`);

  // every queued stage's folder: result.json less wall times, every file byte for byte
  const stageDirs: Record<string, string> = {};
  for (const line of ref.output.matchAll(/== (\S+) \[seed (\d+)\] \((\S+)\)/g)) {
    if (kindOf(line[1]!)) stageDirs[`${line[1]} [seed ${line[2]}]`] = line[3]!.slice(store.length + 1);
  }
  assert.is(Object.keys(stageDirs).length, jobs.length, 'every job\'s stage folder named in the in-process log');
  assertSameStages(store, refStore, stageDirs);
});

test.run();
