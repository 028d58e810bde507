/**
 * The generator's optional decoder fine-tune (profile `vaeDecoder`), run through the study's own
 * pretraining stages at smoke size: the generator it returns decodes with a new decoder over the VAE
 * stage's encoder (bit for bit, so the base model's latents still hold) and the base stage's UNet and
 * text encoder; a second run takes every stage from the cache.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadVAE, StableDiffusionPipeline, type AutoencoderKL } from '@foliar/diffusion';
import type { Module } from '@foliar/nn';
import { studyProfile } from '../../examples/study/profiles.js';
import { StageRunner } from '../../examples/study/stages.js';
import { loadStudyData, studySplits } from '../../examples/study/data.js';
import { pretrainGenerator, type PretrainOptions } from '../../examples/study/pretrain.js';
import { setup, teardown } from '../helpers.js';

const test = suite('study decoder fine-tune stage');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-decoder-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

async function tensors(m: Module, prefix = ''): Promise<Map<string, number[]>> {
  return new Map(await Promise.all([...m.namedParameters()].filter(([k]) => k.startsWith(prefix)).map(async ([k, t]) => [k, Array.from(await t.dataF32())] as const)));
}
const same = (a: Map<string, number[]>, b: Map<string, number[]>) => a.size === b.size && [...a].every(([k, v]) => v.every((x, i) => x === b.get(k)![i]));

test('the generator decodes with the fine-tuned decoder over the same encoder, UNet and text encoder; cached on rerun', async () => {
  const smoke = studyProfile('smoke');
  // two steps per stage: the test is about which weights go where, not what they learn
  const P = { ...smoke, vae: { ...smoke.vae, steps: 2 }, base: { ...smoke.base, steps: 2 }, vaeDecoder: { steps: 2, batch: 2, lr: 1e-3 } };
  const data = await loadStudyData(P, null);
  const common = data.set.classNames.filter((c) => c !== 'multiple_diseases');
  const prompt = (c: string) => `a photo of a ${c.replace(/_/g, ' ')} leaf`;
  const runner = new StageRunner(join(dir, 'run'));
  const o: PretrainOptions = { runner, profile: P, data, splits: studySplits(P, data.set), photographs: false, common, classPrompt: 'a photo of a leaf', promptOf: prompt };
  const pre = await pretrainGenerator(o);
  const vaeDir = join(runner.runDir, 'vae');
  assert.ok(pre.vae.dir.includes('vae-decoder') && pre.base.dir.includes('generator'), `${pre.vae.dir} / ${pre.base.dir}`);
  const trainedVae = await loadVAE(join(vaeDir, readdirSync(vaeDir).find((d) => /^[0-9a-f]+$/.test(d))!, 'final'));
  const tunedVae = await loadVAE(pre.vae.value.model);
  const gen = await StableDiffusionPipeline.fromPretrained(pre.base.value.model);
  const enc = (v: AutoencoderKL) => Promise.all([tensors(v, 'encoder.'), tensors(v, 'quant_conv.')]);
  const [[e0, q0], [e1, q1], [e2, q2]] = [await enc(trainedVae), await enc(tunedVae), await enc(gen.vae)];
  assert.ok(same(e0, e1) && same(q0, q1), 'the fine-tune keeps the encoder');
  assert.ok(same(e0, e2) && same(q0, q2), "the generator's encoder is the VAE stage's");
  assert.not.ok(same(await tensors(trainedVae, 'decoder.'), await tensors(gen.vae, 'decoder.')), 'the generator decodes with the new decoder');
  assert.ok(same(await tensors(tunedVae, 'decoder.'), await tensors(gen.vae, 'decoder.')));
  assert.is(gen.vae.config.scaling_factor, trainedVae.config.scaling_factor, 'the same latents, the same scaling factor');
  assert.is(pre.base.value.steps, P.base.steps, "the generator reports the base model's steps");
  for (const m of [trainedVae, tunedVae]) m.dispose();
  gen.dispose();
  const again = await pretrainGenerator(o);
  assert.ok(again.vae.cached && again.base.cached, 'every stage cached');
  assert.is(again.base.value.model, pre.base.value.model);
});

test("the fine-tune's own perceptual layers make its own stage over the same VAE and pool classifier; a bad layer is refused", async () => {
  const smoke0 = studyProfile('smoke');
  const smoke = { ...smoke0, base: { ...smoke0.base, steps: 2 } };
  const vae = { ...smoke.vae, steps: 2, perceptualWeight: 1, perceptualClassifier: { epochs: 1, maxStepsPerEpoch: 2 } };
  const decoder = { steps: 2, batch: 2, lr: 1e-3 };
  const data = await loadStudyData(smoke, null);
  const common = data.set.classNames.filter((c) => c !== 'multiple_diseases');
  const prompt = (c: string) => `a photo of a ${c.replace(/_/g, ' ')} leaf`;
  const runner = new StageRunner(join(dir, 'perceptual'));
  const opts = (vaeDecoder: typeof smoke.vaeDecoder): PretrainOptions => {
    const P = { ...smoke, vae, vaeDecoder };
    return { runner, profile: P, data, splits: studySplits(P, data.set), photographs: false, common, classPrompt: 'a photo of a leaf', promptOf: prompt };
  };
  const plain = await pretrainGenerator(opts(decoder));
  const deeper = await pretrainGenerator(opts({ ...decoder, perceptualLayers: ['stem', 'layer1', 'layer2'] }));
  assert.is.not(deeper.vae.dir, plain.vae.dir, 'its own decoder stage');
  const [a, b] = [await loadVAE(plain.vae.value.model), await loadVAE(deeper.vae.value.model)];
  assert.ok(same(await tensors(a, 'encoder.'), await tensors(b, 'encoder.')), 'over the same VAE stage');
  assert.not.ok(same(await tensors(a, 'decoder.'), await tensors(b, 'decoder.')), 'another loss, another decoder');
  a.dispose();
  b.dispose();
  const stages = readdirSync(runner.runDir);
  assert.equal(readdirSync(join(runner.runDir, 'pool-classifier')).filter((d) => /^[0-9a-f]+$/.test(d)).length, 1, `one pool classifier (${stages.join(', ')})`);
  assert.equal(readdirSync(join(runner.runDir, 'vae')).filter((d) => /^[0-9a-f]+$/.test(d)).length, 1, 'one VAE');
  const refused = await pretrainGenerator(opts({ ...decoder, perceptualLayers: ['layer9' as 'layer1'] })).then(() => null, (e: Error) => e);
  assert.ok(refused && /perceptualLayers/.test(refused.message), String(refused));
});

test.run();
