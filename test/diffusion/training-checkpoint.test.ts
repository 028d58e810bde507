/**
 * loadTrainingCheckpoint: a training checkpoint's weights ('trained' or the EMA average) put into a
 * fresh pipeline for sampling equal what the run itself held at that step; a method that trains other
 * tensors, a folder that is not a checkpoint and a run without EMA are refused with their reason.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FullFineTune, trainDreamBooth, loadTrainingCheckpoint, type DreamBoothConfig, type StableDiffusionPipeline } from '@foliar/diffusion';
import type { Tensor } from '@foliar/tensor';
import { setup, teardown } from '../helpers.js';
import { tinyPipeline, leafImages } from './fixtures.js';

const test = suite('training-checkpoint');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-ckw-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

const run = (out: string, over: Partial<DreamBoothConfig> = {}): DreamBoothConfig => ({
  instanceImages: leafImages(2, 16, 'multiple_diseases'), instancePrompt: 'a photo of a sks leaf', resolution: 16, outputDir: join(dir, out), quiet: true,
  method: new FullFineTune({ trainTextEncoder: true }), maxTrainSteps: 4, learningRate: 5e-3, checkpointingSteps: 2, emaDecay: 0.9, seed: 3, ...over,
});

/** Every UNet and text-encoder tensor of a pipeline, read back. */
async function weights(pipe: StableDiffusionPipeline): Promise<Map<string, Float32Array>> {
  const named: [string, Tensor][] = [
    ...[...pipe.unet.stateDict()].map(([k, t]): [string, Tensor] => [`unet.${k}`, t]),
    ...[...pipe.textEncoder.stateDict()].map(([k, t]): [string, Tensor] => [`text.${k}`, t]),
  ];
  return new Map(await Promise.all(named.map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
}
function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let m = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}

test("a checkpoint's EMA and trained weights in a fresh pipeline equal the run's own at that step", async () => {
  // the same run twice: once ending on the average (finalWeights 'ema'), once on the last weights
  const pa = tinyPipeline(), pb = tinyPipeline();
  await trainDreamBooth(pa, run('ema', { finalWeights: 'ema' }));
  await trainDreamBooth(pb, run('last'));
  const [ema, last] = [await weights(pa), await weights(pb)];
  assert.ok(maxDiff(ema, last) > 1e-4, 'the average differs from the last weights (else the test could not tell them apart)');
  const ck = join(dir, 'ema', 'checkpoints', 'checkpoint-4');
  for (const [which, want] of [['ema', ema], ['trained', last]] as const) {
    const fresh = tinyPipeline({ seed: 9 });
    assert.ok(maxDiff(await weights(fresh), want) > 1e-3, 'a fresh pipeline starts elsewhere');
    await loadTrainingCheckpoint(fresh, new FullFineTune({ trainTextEncoder: true }), ck, { weights: which });
    assert.ok(maxDiff(await weights(fresh), want) < 1e-6, `${which}: ${maxDiff(await weights(fresh), want)}`);
    assert.not.ok(fresh.unet.parameters().some((p) => p.requiresGrad), 'frozen again for sampling');
    fresh.dispose();
  }
  // an earlier checkpoint is an earlier state, not the end's
  const early = tinyPipeline();
  await loadTrainingCheckpoint(early, new FullFineTune({ trainTextEncoder: true }), join(dir, 'ema', 'checkpoints', 'checkpoint-2'), { weights: 'ema' });
  assert.ok(maxDiff(await weights(early), ema) > 1e-5, 'checkpoint-2 holds step 2');
  for (const p of [pa, pb, early]) p.dispose();
});

test('refused with the reason: another method, not a checkpoint, no EMA kept', async () => {
  const ck = join(dir, 'ema', 'checkpoints', 'checkpoint-4');
  const refusal = async (method: FullFineTune, at: string): Promise<string> => {
    const pipe = tinyPipeline();
    try {
      await loadTrainingCheckpoint(pipe, method, at, { weights: 'ema' });
      return '';
    } catch (e) {
      return (e as Error).message;
    } finally {
      pipe.dispose();
    }
  };
  // UNet only: the EMA file holds the text encoder's tensors too
  assert.match(await refusal(new FullFineTune(), ck), /ema\.safetensors holds \d+ tensors, the model trains \d+/);
  assert.match(await refusal(new FullFineTune(), dir), /is not a checkpoint/);
  const plain = tinyPipeline();
  await trainDreamBooth(plain, run('plain', { emaDecay: null, maxTrainSteps: 2 }));
  plain.dispose();
  assert.match(await refusal(new FullFineTune({ trainTextEncoder: true }), join(dir, 'plain', 'checkpoints', 'checkpoint-2')), /has no ema\.safetensors/);
});

test.run();
