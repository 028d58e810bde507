/**
 * The `foliar-study` command (bin/foliar-study.js, the root package's bin: `npx foliar-study` in a
 * clone): `run` (the default) is `npm run study`, `worker` is `npm run study-worker`; each forwards its
 * arguments and its child's exit code; an unknown command is refused with the list.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const study = (...args: string[]) => spawnSync(process.execPath, ['bin/foliar-study.js', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });

test('run and worker reach their scripts with the arguments; exit codes come back', () => {
  const run = study('run', '--help');
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /usage: npm run study -- \[--profile smoke\|quick\|gpu64\|full\]/);
  const dflt = study('--profile', 'smoke', '--help');
  assert.is(dflt.status, 0, dflt.stderr);
  assert.match(dflt.stdout, /usage: npm run study/, 'options without a command run the study');
  const worker = study('worker');
  assert.is(worker.status, 2, 'a worker without --redis and --store is refused');
  assert.match(worker.stdout, /--redis redis:\/\/host:port --store/);
  const bad = study('serve');
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /unknown command 'serve' \(commands: run, worker/);
});

test('the root package declares it, so npx finds it in a clone', async () => {
  const pkg = JSON.parse((await import('node:fs')).readFileSync(`${root}/package.json`, 'utf8')) as { bin?: Record<string, string> };
  assert.is(pkg.bin?.['foliar-study'], './bin/foliar-study.js');
});

test.run();
