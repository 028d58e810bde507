/**
 * Gradient checkpointing inside the UNet's blocks: the same loss and the same gradients for every
 * parameter as the plain graph (also with LoRA dropout, whose masks must be replayed in the
 * recomputation), less peak memory, and the flag is restored after a training run.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { LoRA, trainDreamBooth, type StableDiffusionPipeline } from '@foliar/diffusion';
import { setup, teardown } from '../helpers.js';
import { tinyPipeline, leafImages } from './fixtures.js';

const test = suite('unet gradient checkpointing');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-gc-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

/** One training-shaped forward + backward of the UNet; returns the loss, every gradient and the peak bytes. */
async function step(pipe: StableDiffusionPipeline, params: ft.Tensor[], latentSize: number, seed: number): Promise<{ loss: number; grads: Float32Array[]; peak: number }> {
  for (const p of params) p.grad = null;
  const gen = new ft.Generator(seed);
  const x = ft.randn([2, 4, latentSize, latentSize], { generator: gen });
  const ctx = ft.randn([2, 5, pipe.unet.config.cross_attention_dim], { generator: gen });
  const target = ft.randn([2, 4, latentSize, latentSize], { generator: gen });
  ft.manualSeed(seed); // dropout draws from the default generator
  ft.resetPeakMemory();
  const base = ft.memory().liveBytes;
  const loss = ft.tidy(() => pipe.unet.forward(x, [10, 700], ctx).sub(target).square().mean());
  loss.backward();
  const peak = ft.memory().peakBytes - base;
  const out = { loss: (await loss.dataF32())[0]!, grads: await Promise.all(params.map((p) => p.grad ? p.grad.dataF32() : Promise.resolve(new Float32Array(0)))), peak };
  for (const t of [loss, x, ctx, target]) t.dispose();
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
  return out;
}

function assertSameGrads(a: Float32Array[], b: Float32Array[], what: string): void {
  assert.is(a.length, b.length);
  let nonzero = 0;
  a.forEach((ga, i) => {
    const gb = b[i]!;
    assert.is(gb.length, ga.length, `${what}: gradient ${i} missing under checkpointing`);
    let scale = 0;
    for (const v of ga) scale = Math.max(scale, Math.abs(v));
    if (scale > 0) nonzero++;
    for (let j = 0; j < ga.length; j++) {
      const d = Math.abs(ga[j]! - gb[j]!);
      if (d > 1e-5 * scale + 1e-7) assert.unreachable(`${what}: parameter ${i} element ${j}: ${ga[j]} vs ${gb[j]} (scale ${scale})`);
    }
  });
  assert.ok(nonzero > a.length / 2, `${what}: most gradients should be nonzero (${nonzero}/${a.length})`);
}

test('full UNet: same loss and gradients for every parameter, lower peak memory', async () => {
  const pipe = tinyPipeline({ unet: { block_out_channels: [16, 32], norm_num_groups: 8, layers_per_block: 2 } });
  const params = pipe.unet.parameters();
  for (const p of params) p.requiresGrad_(true);
  const plain = await step(pipe, params, 24, 3);
  pipe.unet.enableGradientCheckpointing();
  assert.ok(pipe.unet.isGradientCheckpointing);
  const ck = await step(pipe, params, 24, 3);
  assert.ok(Math.abs(plain.loss - ck.loss) <= 1e-6 * Math.abs(plain.loss), `loss ${plain.loss} vs ${ck.loss}`);
  assertSameGrads(plain.grads, ck.grads, 'full');
  assert.ok(ck.peak < plain.peak, `checkpointing should lower peak memory: ${ck.peak} vs ${plain.peak} bytes`);
  // inference is unaffected by the flag
  const x = ft.randn([1, 4, 8, 8]), c = ft.randn([1, 5, 16]);
  const a = await ft.noGrad(() => pipe.unet.forward(x, 5, c)).dataF32();
  pipe.unet.enableGradientCheckpointing(false);
  const b = await ft.noGrad(() => pipe.unet.forward(x, 5, c)).dataF32();
  assert.equal(Array.from(a), Array.from(b));
  pipe.dispose();
});

test('LoRA with dropout: the recomputation replays the dropout masks (same gradients)', async () => {
  const pipe = tinyPipeline();
  const lora = new LoRA({ rank: 2, dropout: 0.5 });
  const params = lora.attach(pipe);
  // B starts at zero (no gradient reaches A): give it values so both factors get gradients
  for (const p of params) ft.noGrad(() => ft.copy_(p, ft.randn([...p.shape]).mul(0.1)));
  pipe.unet.train();
  const plain = await step(pipe, params, 8, 5);
  pipe.unet.enableGradientCheckpointing();
  const ck = await step(pipe, params, 8, 5);
  assertSameGrads(plain.grads, ck.grads, 'lora');
  // and a different seed gives different masks, so the test above could fail
  const other = await step(pipe, params, 8, 6);
  assert.ok(other.grads.some((g, i) => g.some((v, j) => Math.abs(v - ck.grads[i]![j]!) > 1e-4)), 'another seed should change the gradients');
  lora.dispose();
  pipe.dispose();
});

test('text encoder: per-layer checkpointing gives the same gradients (text-encoder training)', async () => {
  const pipe = tinyPipeline();
  const params = pipe.textEncoder.parameters();
  for (const p of params) p.requiresGrad_(true);
  const ids = pipe.tokenize(['a photo of a sks leaf', 'cat']);
  const run = async () => {
    for (const p of params) p.grad = null;
    const w = ft.randn([2, ids[0]!.length, 16], { generator: new ft.Generator(9) });
    const loss = ft.tidy(() => {
      const o = pipe.textEncoder.forward(ids);
      return o.lastHiddenState.mul(w).sum().add(o.pooledOutput.square().sum());
    });
    loss.backward();
    const g = await Promise.all(params.map((p) => p.grad ? p.grad.dataF32() : Promise.resolve(new Float32Array(0))));
    for (const p of params) { p.grad?.dispose(); p.grad = null; }
    loss.dispose();
    w.dispose();
    return g;
  };
  const plain = await run();
  pipe.textEncoder.enableGradientCheckpointing();
  assertSameGrads(plain, await run(), 'text encoder');
  pipe.dispose();
});

test('trainDreamBooth({ gradientCheckpointing }) trains the same weights and restores the flag', async () => {
  const run = async (gc: boolean) => {
    const pipe = tinyPipeline();
    const lora = new LoRA({ rank: 2 });
    const r = await trainDreamBooth(pipe, {
      instanceImages: leafImages(2, 16, 'multiple_diseases'), instancePrompt: 'a photo of a sks leaf', resolution: 16,
      outputDir: join(dir, `db-${gc}`), quiet: true, method: lora, maxTrainSteps: 4, learningRate: 1e-2, seed: 2, gradientCheckpointing: gc,
    });
    assert.is(pipe.unet.isGradientCheckpointing, false);
    const w = await Promise.all([...lora.stateDict().values()].map((t) => t.dataF32()));
    lora.dispose();
    pipe.dispose();
    return { losses: r.losses, w };
  };
  const a = await run(false), b = await run(true);
  a.losses.forEach((l, i) => assert.ok(Math.abs(l - b.losses[i]!) <= 1e-5 * Math.abs(l), `step ${i}: loss ${l} vs ${b.losses[i]}`));
  a.w.forEach((wa, i) => wa.forEach((v, j) => {
    if (Math.abs(v - b.w[i]![j]!) > 1e-4 * Math.max(1, Math.abs(v))) assert.unreachable(`LoRA weight ${i}[${j}]: ${v} vs ${b.w[i]![j]}`);
  }));
});

test.run();
