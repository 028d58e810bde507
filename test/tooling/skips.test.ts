/**
 * Honest counts: scripts/test.mjs counts runtime skips (test/harness.ts) as skipped, not passed; a
 * skip of a required kind fails; tests dropped by a throwing `before` hook count as failed; the last
 * line stays `N passed, N failed, N skipped` (CI reads it).
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';

function runner(filter: string, env: Record<string, string> = {}): { status: number | null; out: string; last: string } {
  const clean = { ...process.env };
  for (const k of ['FOLIAR_REQUIRE_WEBGPU', 'FOLIAR_REQUIRE_SHARED', 'FOLIAR_REQUIRE_BROWSER']) delete clean[k];
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts/test.mjs'), '--dir', 'test/tooling/fixtures', filter], {
    cwd: repoRoot, env: { ...clean, ...env }, encoding: 'utf8', timeout: 120_000,
  });
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  const lines = out.trim().split('\n');
  return { status: r.status, out, last: lines[lines.length - 1]!.trim() };
}

test('runtime skips are counted as skipped, once per test, with their reasons printed', () => {
  const r = runner('skips.test');
  assert.is(r.last, '1 passed, 0 failed, 4 skipped', r.out);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /SKIP "skips": nothing to run here/);
  assert.match(r.out, /SKIP "skips a WebGPU part and goes on": no WebGPU in this fixture/);
  assert.match(r.out, /SKIP "a part then the rest: counted once": first part/);
});

test('FOLIAR_REQUIRE_WEBGPU=1 turns a WebGPU skip into a failure', () => {
  const r = runner('skips.test', { FOLIAR_REQUIRE_WEBGPU: '1' });
  assert.is(r.last, '1 passed, 1 failed, 3 skipped', r.out);
  assert.is(r.status, 1);
  assert.match(r.out, /no WebGPU in this fixture, and FOLIAR_REQUIRE_WEBGPU is set/);
});

test('tests dropped by a throwing before hook count as failed (uvu itself exits 0)', () => {
  const r = runner('hook.test');
  assert.is(r.last, '0 passed, 2 failed, 0 skipped', r.out);
  assert.is(r.status, 1);
  assert.match(r.out, /2 of 2 tests did not run/);
});

test('a test registered after .run() fails its file by name (uvu alone drops it without a word)', () => {
  const r = runner('late.test');
  assert.is(r.status, 1, r.out);
  assert.match(r.last, /^\d+ passed, [1-9]\d* failed/, r.out);
  assert.match(r.out, /test "registered too late" is registered after its suite's \.run\(\)/);
});

test('a failing file still counts its passes and skips', () => {
  const r = runner('fails.test');
  assert.is(r.last, '1 passed, 1 failed, 1 skipped', r.out);
  assert.is(r.status, 1);
});

test.run();
