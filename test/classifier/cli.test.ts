/**
 * foliar-classify end to end as a subprocess (CPU backend, tiny model, 16x16 synthetic leaves):
 * config file + flag precedence, the run directory's files, `eval` reproducing the training
 * report, `predict` CSVs, and clear errors for bad input (one line, exit code 1, values refused up
 * front, FOLIAR_BACKEND honoured; also `npm run experiment`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { renderLeaf, LEAF_CLASSES } from '../../packages/classifier/src/data/synthetic/index.js';
import { repoRoot } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const cli = join(repoRoot, 'packages', 'classifier', 'src', 'cli.ts');

function run(args: string[], env: Record<string, string> = {}, script = cli): { code: number; stdout: string; stderr: string } {
  const base: NodeJS.ProcessEnv = { ...process.env, FOLIAR_BACKEND: 'cpu' };
  delete base.FOLIAR_DEBUG;
  const r = spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', script, ...args], {
    cwd: repoRoot, encoding: 'utf8', env: { ...base, ...env }, timeout: 180_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
/** An error is reported as one line (`<prog>: …`), exit code 1, no stack trace. */
function oneLineError(r: { code: number; stderr: string }, pattern: RegExp, prog = 'foliar-classify'): void {
  assert.is(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `one line on stderr:\n${r.stderr}`);
  assert.ok(lines[0]!.startsWith(`${prog}: `), lines[0]);
  assert.match(lines[0]!, pattern);
}

const runDir = join(tmp, 'run');
const small = ['--synthetic', '--arch', 'tiny', '--image-size', '16', '--counts', 'healthy=8,multiple_diseases=6,rust=8,scab=8', '--batch-size', '6', '--backend', 'cpu', '--no-progress'];

test('train: flags override the config file; the run directory holds checkpoints, log, model and report', () => {
  const cfg = join(tmp, 'cfg.json');
  writeFileSync(cfg, JSON.stringify({ epochs: 3, lr: 0.02, seed: 5, valFraction: 0.25, testFraction: 0.25 }));
  const r = run(['train', ...small, '--config', cfg, '--epochs', '1', '--out', runDir]);
  assert.is(r.code, 0, r.stderr);
  const saved = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.is(saved.epochs, 1, 'flag wins over file');
  assert.is(saved.lr, 0.02, 'file wins over default');
  assert.is(saved.seed, 5);
  assert.is(saved.data, null);
  for (const f of ['report.json', 'report.md', 'confusion.png', 'per-class.png', 'loss.png', 'accuracy.png', 'model.safetensors', 'train.jsonl', 'checkpoints/best/state.json', 'checkpoints/best/trained.safetensors']) {
    assert.ok(existsSync(join(runDir, f)), `${f} exists`);
  }
  assert.match(r.stderr, /accuracy\(recall\)/, 'per-class table printed');
  // the training loop's step lines (no type) and the classifier's records
  const log = readFileSync(join(runDir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type?: string; step?: number; loss?: number });
  assert.ok(log.some((l) => l.type === undefined && typeof l.loss === 'number') && log.some((l) => l.type === 'epoch') && log.some((l) => l.type === 'test'));
});

test('eval reproduces the training report on the same test split', () => {
  const r = run(['eval', '--model', runDir, '--backend', 'cpu', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  const a = JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')) as { confusion: { matrix: number[][] }; macro: { auc: number } };
  const b = JSON.parse(readFileSync(join(runDir, 'eval-test', 'report.json'), 'utf8')) as { confusion: { matrix: number[][] }; macro: { auc: number } };
  assert.equal(b.confusion.matrix, a.confusion.matrix);
  assert.ok(Math.abs(a.macro.auc - b.macro.auc) < 1e-6);
  assert.ok(existsSync(join(runDir, 'eval-test', 'confusion.png')));
});

test('predict writes one CSV row per image; eval --data scores a class-folder set', async () => {
  const folder = join(tmp, 'images');
  const files: string[] = [];
  for (const [c, label] of LEAF_CLASSES.entries()) {
    mkdirSync(join(folder, label), { recursive: true });
    for (let k = 0; k < 2; k++) {
      const img = renderLeaf({ label, seed: 100 + 10 * c + k, width: 24, height: 20 });
      const f = join(folder, label, `leaf${k}.png`);
      await sharp(img.data, { raw: { width: 24, height: 20, channels: 3 } }).png().toFile(f);
      files.push(f);
    }
  }
  const out = join(tmp, 'pred.csv');
  const r = run(['predict', '--model', join(runDir, 'model.safetensors'), '--backend', 'cpu', '--output', out, folder]);
  assert.is(r.code, 0, r.stderr);
  const [header, ...rows] = readFileSync(out, 'utf8').trim().split('\n');
  assert.is(header, `path,${LEAF_CLASSES.join(',')},predicted`);
  assert.is(rows.length, files.length);
  for (const row of rows) {
    const cells = row.split(',');
    const probs = cells.slice(1, 1 + LEAF_CLASSES.length).map(Number);
    assert.ok(Math.abs(probs.reduce((s, v) => s + v, 0) - 1) < 1e-4, `probabilities sum to 1: ${row}`);
    assert.is(cells.at(-1), LEAF_CLASSES[probs.indexOf(Math.max(...probs))]);
  }
  // a list of files to stdout
  const r2 = run(['predict', '--model', runDir, '--backend', 'cpu', files[0]!, files[3]!]);
  assert.is(r2.code, 0, r2.stderr);
  assert.is(r2.stdout.trim().split('\n').length, 3);
  assert.ok(r2.stdout.includes(files[3]!));

  const e = run(['eval', '--model', runDir, '--data', folder, '--backend', 'cpu', '--no-progress', '--out', join(tmp, 'eval-folder')]);
  assert.is(e.code, 0, e.stderr);
  const rep = JSON.parse(readFileSync(join(tmp, 'eval-folder', 'report.json'), 'utf8')) as { numSamples: number; perClass: { support: number }[] };
  assert.is(rep.numSamples, files.length);
  assert.equal(rep.perClass.map((c) => c.support), [2, 2, 2, 2]);
});

test('bad input fails with a message naming the problem', () => {
  let r = run(['train', '--epochs', 'two']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /--epochs/);
  r = run(['train', '--data', join(tmp, 'nowhere'), '--backend', 'cpu', '--out', join(tmp, 'x')]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /nowhere/);
  r = run(['train', ...small, '--batch-size', '1', '--out', join(tmp, 'y')]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /batchSize/);
  r = run(['train', ...small, '--data', tmp]);
  assert.match(r.stderr, /either --data <dir> or --synthetic/);
  r = run(['train', ...small, '--out', runDir]);
  assert.match(r.stderr, /already holds a training run/);
  r = run(['predict', '--model', join(tmp, 'missing'), 'a.png', '--backend', 'cpu']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /missing/);
  r = run(['--help']);
  assert.is(r.code, 0);
  for (const c of ['train', 'eval', 'predict']) assert.ok(r.stdout.includes(c), `help lists ${c}`);
});

test('errors are one line with exit code 1 (stack only with --verbose or FOLIAR_DEBUG=1); batch size 0 refused up front; FOLIAR_BACKEND honoured; npm run experiment too (--help, misuse)', () => {
  for (const bs of ['0', '-1']) oneLineError(run(['predict', '--model', runDir, '--batch-size', bs, tmp]), new RegExp(`--batch-size.*"${bs}" is not a positive integer`));
  oneLineError(run(['eval', '--model', runDir, '--batch-size', '0']), /--batch-size/);
  oneLineError(run(['train', '--bogus']), /unknown option '--bogus' \(see --help\)/);
  oneLineError(run(['train', '--backend', 'tpu']), /--backend must be webgpu, cpu or auto, got "tpu"/);
  oneLineError(run(['predict', '--model', runDir, tmp], { FOLIAR_BACKEND: 'tpu' }), /FOLIAR_BACKEND must be/);
  const missing = ['predict', '--model', join(tmp, 'missing'), 'a.png'];
  oneLineError(run(missing), /missing: no trained model here/);
  for (const r of [run([...missing, '--verbose']), run(missing, { FOLIAR_DEBUG: '1' })]) {
    assert.is(r.code, 1);
    assert.match(r.stderr, /\n\s+at /, 'a stack trace on request');
  }
  // FOLIAR_BACKEND=cpu (run() sets it) and no --backend: the CPU backend, recorded in the report
  const out = join(tmp, 'eval-env');
  const e = run(['eval', '--model', runDir, '--no-progress', '--out', out]);
  assert.is(e.code, 0, e.stderr);
  const rep = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { extra: { backend: string } };
  assert.match(rep.extra.backend, /^CPU/);
  // npm run experiment: the same rule; misuse points at --help, which prints the usage
  const experiment = join(repoRoot, 'examples', 'experiment.ts');
  oneLineError(run(['--data', join(tmp, 'nowhere'), '--out', join(tmp, 'exp')], {}, experiment), /^experiment: dataset folder .*nowhere does not exist$/, 'experiment');
  oneLineError(run(['--bogus'], {}, experiment), /^experiment: Unknown option '--bogus' \(see --help\)$/, 'experiment');
  oneLineError(run(['--data'], {}, experiment), /'--data <value>' argument missing \(see --help\)$/, 'experiment');
  oneLineError(run(['stray'], {}, experiment), /Unexpected argument 'stray'.*\(see --help\)$/, 'experiment');
  oneLineError(run(['--epochs', '2.5'], {}, experiment), /--epochs must be an integer, got "2\.5"/, 'experiment');
  const help = run(['--help'], {}, experiment);
  assert.is(help.code, 0, help.stderr);
  assert.match(help.stdout, /^usage: npm run experiment -- \[options\]/);
  for (const flag of ['--data', '--profile', '--resume', '--extra-train', '--backend', '--verbose']) assert.ok(help.stdout.includes(flag), `usage lists ${flag}`);
});

test.run();
