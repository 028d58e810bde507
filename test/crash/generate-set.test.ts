/**
 * Crash test of `foliar-diffuse generate-set` (re-running continues an interrupted set): the CLI as a
 * child process (CPU backend, the tests' tiny pipeline saved as a folder, 16 px) is SIGKILLed between an image and its
 * seeds.jsonl line, half-way through an image and through a seeds.jsonl line, and at seeded random
 * points, then run again until it finishes. The folder must equal an uninterrupted run's byte for byte
 * (every image, seeds.jsonl with one line per image, preview.png) with no temp file left.
 * CI: 3 directed sequences + FOLIAR_CRASH_CASES (default 1) seeded schedules of up to 3 kills (about 30 s).
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { repoRoot, prng } from '../helpers.js';
import { tinyPipeline } from '../diffusion/fixtures.js';
import { runChild, traceCounts, crashAndResume, killAt, diffRunDirs, strayPaths, jsonl, caseCount } from './harness.js';

const cli = join(repoRoot, 'packages', 'diffusion', 'src', 'cli', 'main.ts');
const tmp = mkdtempSync(join(tmpdir(), 'foliar-crash-set-'));
test.after(() => {
  if (!process.env.FOLIAR_CRASH_KEEP) rmSync(tmp, { recursive: true, force: true });
});

const model = join(tmp, 'model');
test.before(async () => {
  // the tests' tiny pipeline (the CLI's own `tiny` is several times slower), as a diffusers folder
  await ft.init({ backend: 'cpu' });
  const pipe = tinyPipeline();
  await pipe.save(model);
  pipe.dispose();
});

const COUNT = 5;
const args = (out: string) => ['--backend', 'cpu', 'generate-set', '--model', model, '--prompt', 'a photo of a sks leaf', '--count', String(COUNT),
  '--height', '16', '--width', '16', '--steps', '2', '--batch-size', '2', '--seed', '7', '--out', out];
const run = (root: string) => ({ script: cli, root, start: args(root), resume: args(root) });

const DIRECTED: { name: string; specs: string[] }[] = [
  // image 1's line is in seeds.jsonl, the image itself is not yet renamed into place
  { name: 'between a seeds.jsonl line and its image', specs: ['1:before:=img-0001-seed8.png'] },
  { name: 'an image half-written, then a torn seeds.jsonl line', specs: ['1:torn:img-0002', '2:torn:seeds.jsonl'] },
  { name: 'after the last image, before the preview', specs: ['1:before:preview.png'] },
];

async function check(ref: string, root: string, tag: string): Promise<void> {
  assert.equal(strayPaths(root), [], `${tag}: stray temporary files`);
  const diffs = await diffRunDirs(ref, root);
  assert.equal(diffs, [], `${tag}: differs from the uninterrupted run:\n${diffs.join('\n')}`);
  const seeds = jsonl(join(root, 'seeds.jsonl'));
  assert.is(seeds.bad, 0, `${tag}: torn seeds.jsonl lines`);
  assert.is(seeds.records.length, COUNT, `${tag}: one seeds.jsonl line per image`);
}

test(`generate-set: ${DIRECTED.length} directed kill sequences and ${caseCount(1)} random schedules end byte-identical to an uninterrupted run`, async () => {
  const ref = join(tmp, 'ref');
  const trace = join(tmp, 'ref.trace');
  const r0 = await runChild(cli, args(ref), { root: ref, trace });
  assert.is(r0.code, 0, r0.output);
  assert.is(readdirSync(ref).filter((f) => f.endsWith('.png')).length, COUNT + 1, 'images and preview');
  let kills = 0;
  for (const [i, d] of DIRECTED.entries()) {
    const root = join(tmp, `directed${i}`);
    const res = await killAt({ ...run(root), specs: d.specs });
    kills += res.kills.length;
    console.log(`  directed: ${d.name}: ${res.kills.join('; ')} (${(res.ms / 1000).toFixed(1)} s)`);
    await check(ref, root, `directed: ${d.name}`);
  }
  const reference = { ms: r0.ms, ops: traceCounts(trace, ['', 'seeds.jsonl', '.png']) };
  for (let c = 0; c < caseCount(1); c++) {
    const root = join(tmp, `case${c}`);
    const res = await crashAndResume({
      ...run(root), rng: prng(500 + c), kills: 3, reference,
      progress: () => (existsSync(root) ? readdirSync(root).filter((f) => /^img-.*\.png$/.test(f)).length / COUNT : 0),
    });
    kills += res.kills.length;
    console.log(`  case ${c}: ${res.kills.length} kill(s): ${res.kills.join('; ')} (${(res.ms / 1000).toFixed(1)} s)`);
    await check(ref, root, `case ${c} (kills: ${res.kills.join('; ') || 'none'})`);
  }
  console.log(`  generate-set crash test: ${DIRECTED.length + caseCount(1)} runs, ${kills} kills; 0 differences, 0 stray files`);
});

test.run();
