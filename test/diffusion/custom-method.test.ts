/**
 * The README's from-scratch method (examples/methods/cross-attention-kv.ts): it trains exactly the
 * cross-attention K/V projections under trainDreamBooth, and its saved weights reload into a fresh
 * pipeline with the same UNet output.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { trainDreamBooth, type StableDiffusionPipeline } from '@foliar/diffusion';
import { CrossAttentionKV } from '../../examples/methods/cross-attention-kv.js';
import { setup, teardown, assertExact, randnArray, repoRoot } from '../helpers.js';
import { tinyPipeline, leafImages } from './fixtures.js';

const test = suite('custom method: cross-attention K/V');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-kv-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

async function snapshot(pipe: StableDiffusionPipeline): Promise<Map<string, Float32Array>> {
  return new Map(await Promise.all([...pipe.unet.stateDict()].map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
}

async function unetOut(pipe: StableDiffusionPipeline): Promise<Float32Array> {
  const x = ft.tensor(randnArray(4 * 8 * 8, 3), { shape: [1, 4, 8, 8], backend: pipe.backend });
  const ctx = pipe.encodeText(['a leaf']);
  const y = ft.noGrad(() => pipe.unet.forward(x, 300, ctx));
  const d = (await y.data()) as Float32Array;
  for (const t of [x, ctx, y]) t.dispose();
  return d;
}

test('the example is well under 100 lines', () => {
  const lines = readFileSync(join(repoRoot, 'examples', 'methods', 'cross-attention-kv.ts'), 'utf8').split('\n').length;
  assert.ok(lines < 80, `${lines} lines`);
});

test('only attn2.to_k / attn2.to_v weights train; save → load into a fresh pipeline', async () => {
  const pipe = tinyPipeline();
  const before = await snapshot(pipe);
  const method = new CrossAttentionKV();
  await trainDreamBooth(pipe, { instanceImages: leafImages(2, 16, 'rust'), instancePrompt: 'a photo of a sks leaf', resolution: 16, method, learningRate: 1e-3, maxTrainSteps: 3, outputDir: join(dir, 'run'), quiet: true });
  const trained = [...method.stateDict().keys()];
  // the tiny UNet has 4 transformer blocks, each with one cross-attention
  assert.is(trained.length, 8);
  assert.ok(trained.every((k) => /attn2\.to_[kv]\.weight$/.test(k)));
  const after = await snapshot(pipe);
  for (const [k, v] of before) {
    const moved = v.some((x, i) => x !== after.get(k)![i]);
    assert.is(moved, trained.includes(k), `${k} ${moved ? 'changed' : 'unchanged'}`);
  }
  const adapted = await unetOut(pipe);
  const fresh = tinyPipeline();
  const m2 = new CrossAttentionKV();
  m2.attach(fresh);
  await m2.load(fresh, join(dir, 'run', 'final'));
  assertExact(await unetOut(fresh), adapted, 'reloaded UNet output');
  pipe.dispose();
  fresh.dispose();
});

test.run();
