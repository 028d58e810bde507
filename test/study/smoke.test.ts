import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StudyReport } from '../../examples/study/report-types.js';
import { checkReportInBrowser } from './browser-check.js';

/**
 * `npm run study -- --profile smoke` end to end: every stage at toy size, then the protocol's
 * invariants read back from what it wrote (splits disjoint, DreamBooth's instances inside each
 * seed's training split, every arm on every seed, per-image predictions), the report in Chromium,
 * and a second run that reuses every stage from the cache.
 */
const test = suite('study smoke profile');
const out = mkdtempSync(join(tmpdir(), 'foliar-study-smoke-'));
const run = () =>
  spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', 'examples/study.ts', '--profile', 'smoke', '--out', out], {
    encoding: 'utf8',
    env: { ...process.env, FOLIAR_NO_PROGRESS: '1' },
    timeout: 40 * 60_000,
  });

test.after(() => rmSync(out, { recursive: true, force: true }));

const ARMS = ['baseline', 'oversample', 'class_weight', 'control', 'dreambooth', 'dreambooth_no_prior'];

test('runs every stage and writes a report that keeps the protocol', async () => {
  const r = run();
  assert.is(r.status, 0, `study failed:\n${r.stderr.slice(-4000)}`);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as StudyReport;
  const splits = JSON.parse(readFileSync(join(out, 'splits.json'), 'utf8')) as { seeds: { seed: number; train: string[]; val: string[]; test: string[] }[] };
  assert.equal(report.seeds, [0, 1]);
  assert.equal(splits.seeds.map((s) => s.seed), [0, 1]);
  for (const s of splits.seeds) {
    const train = new Set(s.train), val = new Set(s.val), tst = new Set(s.test);
    for (const id of s.val) assert.not.ok(train.has(id), `seed ${s.seed}: ${id} in train and val`);
    for (const id of s.test) assert.not.ok(train.has(id) || val.has(id), `seed ${s.seed}: ${id} in test and train/val`);
    const inst = report.instance_ids[String(s.seed)] ?? [];
    assert.ok(inst.length > 0, `seed ${s.seed}: no instance ids`);
    for (const id of inst) assert.ok(train.has(id), `seed ${s.seed}: DreamBooth instance ${id} is not in the training split`);
    assert.is(inst.length, report.data.splits[String(s.seed)]!.train[report.rare_class], 'instances = every rare-class training image');
  }
  const names = report.arms.map((a) => a.name);
  for (const a of ARMS) assert.ok(names.includes(a), `arm ${a} missing (have ${names.join(', ')})`);
  for (const arm of report.arms) {
    if (arm.name !== 'dreambooth_filtered') assert.equal(arm.seeds, [0, 1], `${arm.name} seeds`);
    for (const c of [...report.class_names]) {
      for (const m of ['recall', 'precision', 'f1', 'auc'] as const) {
        const st = arm.metrics[c]?.[m];
        assert.ok(st, `${arm.name}.${c}.${m}`);
        assert.is(st!.per_seed.length, arm.seeds.length);
      }
    }
    for (const m of ['balanced_accuracy', 'mean_auc'] as const) assert.ok(arm.metrics.overall?.[m], `${arm.name}.overall.${m}`);
    for (const [seed, file] of Object.entries(arm.predictions)) {
      const csv = readFileSync(join(out, file), 'utf8').trim().split('\n');
      const testIds = splits.seeds.find((s) => String(s.seed) === seed)!.test;
      assert.is(csv.length - 1, testIds.length, `${arm.name} seed ${seed}: one prediction per test image`);
    }
  }
  assert.ok(report.gates.some((g) => g.stage === 'base_model'), 'base-model gates');
  assert.ok(report.gates.some((g) => g.stage === 'dreambooth'), 'DreamBooth gates');
  assert.ok(report.gates.some((g) => g.stage === 'vae'), 'VAE gates');
  assert.ok(report.drift.some((d) => d.kind === 'probe') && report.drift.some((d) => d.kind === 'in_domain'), 'drift of both kinds');
  assert.ok(report.timings.length > 0 && report.timings.every((t) => !t.cached), 'first run computes every stage');
  // the generator's pretraining (VAE, base model) is one stage for all seeds, like one SD checkpoint
  for (const st of ['vae', 'base']) assert.equal(report.timings.filter((t) => t.stage === st).map((t) => t.seed), [null], `${st} runs once, for all seeds`);
  for (const img of report.images) assert.ok(existsSync(join(out, img.path)), `image ${img.path}`);
  const page = await checkReportInBrowser(join(out, 'report.html'));
  assert.equal(page.errors, [], 'report.html renders without errors');
  assert.ok(page.charts > 0 && page.images > 0, 'charts and images rendered');
});

test('a second run reuses every stage', () => {
  const r = run();
  assert.is(r.status, 0, `second run failed:\n${r.stderr.slice(-4000)}`);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as StudyReport;
  const fresh = report.timings.filter((t) => !t.cached).map((t) => `${t.stage}/${t.seed}`);
  assert.equal(fresh, [], 'stages recomputed');
});

test.run();
