/**
 * Crash test of `foliar-classify train` (issue 14, item 6; on @foliar/nn's training loop since issue
 * 13): the real CLI as a child process (CPU backend, tiny model, 16 px procedural leaves) is
 * SIGKILLed at seeded random points — inside checkpoint writes, between a temp folder and its rename,
 * half-way through a log line, at random moments — and continued with `--resume` (or started again
 * when it died before its checkpoint folder existed) until it finishes. Then, against an
 * uninterrupted run of the same config:
 *   1. the final weights, every kept checkpoint folder (model and optimizer tensors bit for bit,
 *      state.json), the model file, the test predictions, the report and the charts are
 *      bit-identical, and train.jsonl's step, epoch and test records equal (timing and memory fields
 *      aside; `resume` records are the only extra lines);
 *   2. checkpoints/best/ exists and holds the best epoch's weights (the report scores that epoch);
 *   3. no temp file or partial folder (`*.tmp-<pid>-*`, `*.partial-<pid>`) remains;
 *   4. the log has each step once, in order.
 * CI: 2 configs x FOLIAR_CRASH_CASES (default 1) seeded schedules of up to 5 kills, plus 5 directed
 * sequences (7 runs, about 20 children, 1-1.5 min on two cores); FOLIAR_CRASH_CASES=<n> for a soak.
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../packages/classifier/src/train/checkpoint.js';
import { repoRoot, prng } from '../helpers.js';
import {
  runChild, traceCounts, crashAndResume, killAt, diffRunDirs, strayPaths, stripKeys, jsonl, firstDifference, caseCount, TIMING_KEYS, type CrashRunResult,
} from './harness.js';

const cli = join(repoRoot, 'packages', 'classifier', 'src', 'cli.ts');
const tmp = mkdtempSync(join(tmpdir(), 'foliar-crash-cls-'));
test.after(() => {
  if (!process.env.FOLIAR_CRASH_KEEP) rmSync(tmp, { recursive: true, force: true });
});

const common = ['--synthetic', '--arch', 'tiny', '--image-size', '16', '--counts', 'healthy=8,multiple_diseases=6,rust=8,scab=8', '--batch-size', '6', '--backend', 'cpu', '--no-progress'];
const CONFIGS: { name: string; flags: string[] }[] = [
  // checkpoints mid-epoch too, one kept (pruning after every checkpoint), augmentation, best by mean AUC
  { name: 'sgd-every2-keep1', flags: ['--epochs', '4', '--lr', '0.2', '--seed', '0', '--checkpoint-every', '2', '--keep-last', '1'] },
  // checkpoints at epoch ends only, AdamW, balanced sampling, class weights, best by validation loss
  { name: 'adamw-epochends', flags: ['--epochs', '3', '--optimizer', 'adamw', '--lr', '0.01', '--balanced-sampling', '--class-weights', 'effective', '--label-smoothing', '0.1', '--monitor', 'val_loss', '--seed', '4', '--keep-last', '2'] },
];
const OP_FILTERS = ['', 'checkpoints/', 'state.json', 'checkpoints/best', 'train.jsonl', 'model.safetensors', 'report'];
const CASES = caseCount(1);
const KILLS = 5;

const logRecord = (r: Record<string, unknown>) => (r.type === 'resume' ? null : stripKeys(r));
const stateOf = (s: unknown) => stripKeys(s, TIMING_KEYS);

/** Compares the files whose bytes legitimately differ (timings, resume records) by their content. */
async function compareFile(rel: string, a: string, b: string): Promise<string | null> {
  if (rel === 'train.jsonl') {
    const x = jsonl(a, logRecord), y = jsonl(b, logRecord);
    if (y.bad) return `${y.bad} line(s) that do not parse`;
    return firstDifference(x.records, y.records);
  }
  if (rel === 'report.json') return firstDifference(stripKeys(JSON.parse(readFileSync(a, 'utf8'))), stripKeys(JSON.parse(readFileSync(b, 'utf8'))));
  if (rel === 'report.md') {
    // the history table's last four columns are img/s, seconds, live buffers and peak MiB
    const norm = (p: string) => readFileSync(p, 'utf8').split('\n').map((l) => (/^\| \d/.test(l) && l.split('|').length === 14 ? l.split('|').slice(0, 9).join('|') : l)).join('\n');
    return norm(a) === norm(b) ? '' : 'differs beyond the timing columns';
  }
  // the checkpoint's training state, timings aside (the tensors, *.safetensors, compare byte for byte)
  if (/^checkpoints\/.*\/state\.json$/.test(rel)) return firstDifference(stateOf(JSON.parse(readFileSync(a, 'utf8'))), stateOf(JSON.parse(readFileSync(b, 'utf8'))));
  return null;
}

function steps(dir: string): number {
  const d = join(dir, 'checkpoints');
  if (!existsSync(d)) return 0;
  return Math.max(0, ...readdirSync(d).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m) => m).map((m) => Number(m![1])));
}

let totalCases = 0, totalKills = 0, totalChildren = 0, randomCases = 0, randomKills = 0;
const where = new Map<string, number>();

interface Reference { dir: string; totalSteps: number; epochs: number; best: number; ms: number; ops: Map<string, number> }
const refs = new Map<string, Reference>();

/** The uninterrupted run of a config (once), with the hook counting its file operations. */
async function reference(cfg: (typeof CONFIGS)[number]): Promise<Reference> {
  const have = refs.get(cfg.name);
  if (have) return have;
  const dir = join(tmp, `${cfg.name}-ref`);
  const trace = join(tmp, `${cfg.name}.trace`);
  const r0 = await runChild(cli, ['train', ...common, ...cfg.flags, '--out', dir], { root: dir, trace });
  assert.is(r0.code, 0, r0.output);
  const log = jsonl(join(dir, 'train.jsonl')).records as { type?: string; step?: number }[];
  const ref: Reference = {
    dir, ms: r0.ms, ops: traceCounts(trace, OP_FILTERS),
    // the loop's step lines have no type
    totalSteps: Math.max(...log.filter((r) => r.type === undefined).map((r) => r.step!)),
    epochs: log.filter((r) => r.type === 'epoch').length,
    best: (await loadCheckpoint(join(dir, 'checkpoints', 'best'))).state.epoch,
  };
  console.log(`  ${cfg.name}: uninterrupted ${ref.totalSteps} steps, ${ref.epochs} epochs, best epoch ${ref.best}, ${(r0.ms / 1000).toFixed(1)} s`);
  refs.set(cfg.name, ref);
  return ref;
}

const runArgs = (cfg: (typeof CONFIGS)[number], root: string) => ({
  script: cli, root,
  start: ['train', ...common, ...cfg.flags, '--out', root],
  resume: ['train', '--resume', root, '--backend', 'cpu', '--no-progress'],
  // a run killed before it made checkpoints/ has nothing to resume: it is started again
  canResume: () => existsSync(join(root, 'checkpoints')),
});

function record(tag: string, res: CrashRunResult, random = false): void {
  totalCases++;
  totalKills += res.kills.length;
  if (random) {
    randomCases++;
    randomKills += res.kills.length;
  }
  totalChildren += res.children;
  for (const k of res.kills) {
    const w = k.startsWith('timer') ? 'timer' : /\(([\w.]+) /.exec(k)?.[1] ?? k;
    where.set(w, (where.get(w) ?? 0) + 1);
  }
  console.log(`  ${tag}: ${res.kills.length} kill(s), ${res.children} processes, ${(res.ms / 1000).toFixed(1)} s`);
  for (const k of res.kills) console.log(`    killed at ${k}`);
}

/** The four checks of a finished run against the uninterrupted one. */
async function checkRun(ref: Reference, root: string, tag: string): Promise<void> {
  // 3. nothing a killed writer left behind
  assert.equal(strayPaths(root), [], `${tag}: stray temporary files`);
  // 1. every file equal to the uninterrupted run's (weights and log bit for bit)
  const diffs = await diffRunDirs(ref.dir, root, compareFile);
  assert.equal(diffs, [], `${tag}: differs from the uninterrupted run:\n${diffs.join('\n')}`);
  // 2. the best weights: present, of the best epoch, the ones the report scored
  const best = await loadCheckpoint(join(root, 'checkpoints', 'best'));
  assert.is(best.state.epoch, ref.best, `${tag}: checkpoints/best/ holds epoch ${best.state.epoch}, the best is ${ref.best}`);
  assert.is((JSON.parse(readFileSync(join(root, 'report.json'), 'utf8')) as { epoch: number }).epoch, ref.best, `${tag}: the report scores the best epoch`);
  // 4. each step once, in order (resume records aside, the log reads as one uninterrupted run)
  const log = jsonl(join(root, 'train.jsonl'));
  assert.is(log.bad, 0, `${tag}: torn log lines left`);
  const recs = log.records as { type?: string; step?: number; epoch?: number }[];
  assert.equal(recs.filter((r) => r.type === undefined).map((r) => r.step), Array.from({ length: ref.totalSteps }, (_, i) => i + 1), `${tag}: step records`);
  assert.equal(recs.filter((r) => r.type === 'epoch').map((r) => r.epoch), Array.from({ length: ref.epochs }, (_, i) => i + 1), `${tag}: epoch records`);
  assert.is(recs.filter((r) => r.type === 'start').length, 1, `${tag}: one start record`);
  assert.is(recs.filter((r) => r.type === 'test').length, 1, `${tag}: one test record`);
}

for (const [ci, cfg] of CONFIGS.entries()) {
  test(`classifier: ${cfg.name}: ${CASES} runs killed up to ${KILLS} times each at seeded random points end bit-identical to an uninterrupted run`, async () => {
    const ref = await reference(cfg);
    for (let c = 0; c < CASES; c++) {
      const root = join(tmp, `${cfg.name}-case${c}`);
      const res = await crashAndResume({
        ...runArgs(cfg, root), rng: prng(1000 * (ci + 1) + c), kills: KILLS, reference: ref,
        progress: () => steps(root) / ref.totalSteps,
      });
      const tag = `${cfg.name} case ${c}`;
      record(tag, res, true);
      await checkRun(ref, root, `${tag} (kills: ${res.kills.join('; ') || 'none'})`);
      rmSync(root, { recursive: true, force: true });
    }
  });
}

/** Kill points random schedules reach rarely, each a sequence of FOLIAR_CRASH_AT values (see kill-hook.ts). */
const DIRECTED: { name: string; specs: string[] }[] = [
  // killed before checkpoints/ exists: nothing to resume, the run starts again in the same folder
  { name: 'before the checkpoint folder exists', specs: ['1:before:=checkpoints'] },
  // the best weights are in place (op 1 on that path: removing a leftover at the start; op 2: renaming
  // the first best/ into place), the step checkpoint that records them is not (issue 14)
  { name: 'between checkpoints/best/ and the checkpoint recording it', specs: ['2:after:=checkpoints/best'] },
  // the 5th operation on a best/ being written is the first write of its trained.safetensors
  { name: 'a torn log line, then a torn write inside checkpoints/best/', specs: ['5:torn:train.jsonl', '5:torn:checkpoints/best.partial'] },
  // keep-last 1: the new checkpoint is written, the old one not yet pruned (op 2 on checkpoint-2: renamed aside to be deleted)
  { name: 'before pruning', specs: ['2:before:=checkpoints/checkpoint-2'] },
  // training finished: killed while the report is written, then again before the model file's rename
  { name: 'inside the final report, then before the model file is renamed', specs: ['1:after:test-predictions.csv', '1:before:=model.safetensors'] },
];

test(`classifier: ${DIRECTED.length} directed kill sequences (checkpoint writes, pruning, report) end bit-identical`, async () => {
  const cfg = CONFIGS[0]!;
  const ref = await reference(cfg);
  for (const [i, d] of DIRECTED.entries()) {
    const root = join(tmp, `${cfg.name}-directed${i}`);
    const res = await killAt({ ...runArgs(cfg, root), specs: d.specs });
    record(`${cfg.name} directed: ${d.name}`, res);
    await checkRun(ref, root, `${cfg.name} directed: ${d.name}`);
    rmSync(root, { recursive: true, force: true });
  }
});

test('classifier crash test: summary', () => {
  console.log(`  classifier crash test: ${totalCases} runs, ${totalKills} kills (${[...where].map(([k, n]) => `${k} ${n}`).join(', ')}), ${totalChildren} processes; 0 differences, 0 stray files, 0 repeated steps`);
  assert.ok(randomKills >= randomCases * 2, `too few kills landed (${randomKills} in ${randomCases} seeded runs): the schedule aims past the runs' ends`);
});

test.run();
