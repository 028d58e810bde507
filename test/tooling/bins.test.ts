/**
 * The commands where users look for them: after `npm ci` in a clone, `npx foliar-diffuse` and
 * `npx foliar-classify` run from the repository root (npm links a workspace's bins at the root only
 * when the bin file exists at install time, so they point at committed launchers, not into dist/).
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';

const BINS = [
  { name: 'foliar-diffuse', pkg: 'packages/diffusion', usage: /Usage: foliar-diffuse \[options\] \[command\]/, command: /generate \[options\]/ },
  { name: 'foliar-classify', pkg: 'packages/classifier', usage: /Usage: foliar-classify \[options\] \[command\]/, command: /train/ },
];

function npx(args: string[]) {
  const r = spawnSync('npx', ['--no-install', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? ''), stdout: r.stdout ?? '' };
}

for (const b of BINS) {
  test(`npx ${b.name} --help works from the repository root`, () => {
    const r = npx([b.name, '--help']);
    assert.is(r.status, 0, r.out);
    assert.match(r.stdout, b.usage);
    assert.match(r.stdout, b.command);
  });

  test(`${b.name}: the bin is a committed, executable file, the same in package.json and package-lock.json`, () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, b.pkg, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { bin?: Record<string, string> }> };
    const file = pkg.bin[b.name]!;
    assert.not.match(file, /(^|\/)dist\//, 'a bin inside dist/ is not linked by `npm ci` (it runs before the build)');
    assert.is(lock.packages[b.pkg]!.bin?.[b.name], file.replace(/^\.\//, ''), 'npm ci links what the lockfile says');
    accessSync(join(repoRoot, b.pkg, file), constants.X_OK);
    assert.ok(pkg.files.includes(file.replace(/^\.\//, '').split('/')[0]!), 'the bin folder is published');
  });
}

test('the exit status of the command comes through the launcher', () => {
  const r = npx(['foliar-diffuse', 'no-such-command']);
  assert.is.not(r.status, 0, r.out);
  assert.match(r.out, /no-such-command/);
});

test.run();
