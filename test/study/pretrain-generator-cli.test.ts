/**
 * `npm run pretrain-generator` refuses a --gates-seed that is not one of the profile's seeds before it
 * trains or loads anything, naming the seeds it has.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (...args: string[]) =>
  spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', 'examples/pretrain-generator.ts', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });

test('a --gates-seed outside the profile is refused with the profile seeds', () => {
  for (const bad of ['7', '1x', '2.5']) {
    const r = run('--profile', 'quick', '--out', '/nonexistent/never-written', '--gates', '--gates-seed', bad);
    assert.is(r.status, 1, `--gates-seed ${bad}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, `--gates-seed ${bad}: not a seed of the quick profile (0, 1, 2)`);
    assert.not.match(r.stdout, /generator pretraining/, 'refused before anything starts');
  }
});

test.run();
