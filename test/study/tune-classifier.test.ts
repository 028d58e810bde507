/**
 * `npm run tune-classifier` chooses the arms' classifier on validation images only: bad candidates,
 * arms and seeds are refused before anything trains; a smoke-profile run scores every candidate on the
 * validation split, writes no test predictions, and chooses by its stated rule.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (...args: string[]) =>
  spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', 'examples/tune-classifier.ts', ...args], { cwd: root, encoding: 'utf8', timeout: 600_000 });

test('bad candidates, arms and seeds are refused before anything trains', () => {
  const cases: [string[], string][] = [
    [['--candidates', '[{"epochs": 0}]'], '--candidates[0].epochs: invalid value 0'],
    [['--candidates', '[{"momentum": 0.9}]'], '--candidates[0]: unknown setting "momentum"'],
    [['--candidates', '{}'], '--candidates: expected a non-empty JSON list'],
    [['--candidates', '[{'], '--candidates: not JSON'],
    [['--arms', 'baseline,dreambooth'], '--arms: unknown arm "dreambooth"'],
    [['--seed', '7'], '--seed 7: not a seed of the quick profile (0, 1, 2)'],
  ];
  for (const [args, message] of cases) {
    const r = run('--profile', 'quick', '--out', '/nonexistent/never-written', ...args);
    assert.is(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.ok(r.stderr.includes(message), `${args.join(' ')}: expected "${message}" in ${r.stderr}`);
  }
});

/** Every file under `dir`, recursively. */
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

test('a smoke run scores each candidate on validation, reads no test image, and chooses by its rule', () => {
  const out = mkdtempSync(join(tmpdir(), 'foliar-tune-classifier-'));
  try {
    const r = run('--profile', 'smoke', '--out', out, '--seed', '0', '--arms', 'baseline,oversample', '--candidates', '[{}, {"epochs": 1}]');
    assert.is(r.status, 0, r.stderr.slice(-2000));
    const result = JSON.parse(readFileSync(join(out, 'tune-classifier', 'seed-0.json'), 'utf8')) as {
      runs: { settings: { epochs: number }; arm: string; steps: number; metrics: { overall: { balanced_accuracy: number } } }[];
      chosen: { epochs: number }; validationImages: number;
    };
    assert.is(result.runs.length, 4, 'two candidates × two arms');
    assert.equal(result.runs.map((x) => x.arm), ['baseline', 'oversample', 'baseline', 'oversample']);
    for (const x of result.runs) assert.ok(x.metrics.overall.balanced_accuracy >= 0 && x.metrics.overall.balanced_accuracy <= 1);
    // the rule: highest mean balanced accuracy over the arms; within 0.02 of it, the fewest steps
    const score = (i: number) => (result.runs[2 * i]!.metrics.overall.balanced_accuracy + result.runs[2 * i + 1]!.metrics.overall.balanced_accuracy) / 2;
    const top = Math.max(score(0), score(1));
    const eligible = [0, 1].filter((i) => score(i) >= top - 0.02).sort((a, b) => result.runs[2 * a]!.steps - result.runs[2 * b]!.steps);
    assert.is(result.chosen.epochs, result.runs[2 * eligible[0]!]!.settings.epochs);
    assert.ok(existsSync(join(out, 'tune-classifier', 'seed-0.md')));
    // no run evaluated the test split: the trainer writes test-predictions.csv when it does
    assert.is(files(out).filter((p) => p.endsWith('test-predictions.csv')).length, 0);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
