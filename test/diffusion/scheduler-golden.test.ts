/**
 * PNDM, EulerDiscrete and DPMSolverMultistep against diffusers: the golden runner over
 * test/fixtures/golden-schedulers (made by scripts/golden/make_scheduler_fixtures.py with the diffusers
 * commit ../shared/golden was made with), on both backends. Each case checks the timesteps, sigmas,
 * init_noise_sigma, scale_model_input and every step's prev_sample / pred_original_sample within the
 * fixture format's tolerance (1e-4 of the reference's scale).
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, skipPart } from '../helpers.js';

const dir = join(repoRoot, 'test/fixtures/golden-schedulers');
const cases = (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { cases: { name: string; op: string }[] }).cases;

function golden(backend: 'cpu' | 'webgpu') {
  const r = spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', join(repoRoot, 'scripts/golden.ts'), dir, '--backend', backend], {
    cwd: repoRoot, encoding: 'utf8', timeout: 300_000, env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  const m = out.match(/golden: (\d+) passed, (\d+) failed, (\d+) skipped/);
  assert.ok(m, `no summary from the golden runner (exit ${r.status}):\n${out.slice(-3000)}`);
  return { status: r.status, out, passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) };
}

test('the fixtures cover the three schedulers', () => {
  const ops = new Set(cases.map((c) => c.op));
  assert.equal([...ops].sort(), ['DPMSolverMultistepScheduler.step', 'EulerDiscreteScheduler.step', 'PNDMScheduler.step']);
});

for (const backend of ['cpu', 'webgpu'] as const) {
  test(`golden scheduler cases pass on ${backend}`, () => {
    const r = golden(backend);
    if (backend === 'webgpu' && r.skipped === cases.length && /device cases are skipped/.test(r.out)) {
      skipPart(`no WebGPU for the golden runner: ${r.out.match(/on nothing \((.*)\)/)?.[1] ?? 'no adapter'}`, 'webgpu');
      return;
    }
    assert.is(r.failed, 0, r.out);
    assert.is(r.skipped, 0, r.out);
    assert.is(r.passed, cases.length, r.out);
    assert.is(r.status, 0);
  });
}

test.run();
