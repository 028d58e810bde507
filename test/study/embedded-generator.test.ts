import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, existsSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { createTinyPipeline, saveModel, StableDiffusionPipeline } from '@foliar/diffusion';
import { studyProfile } from '../../examples/study/profiles.js';
import { exportGenerator, readEmbeddedGenerator, type GeneratorManifest } from '../../examples/study/embedded-generator.js';
import type { StageResult } from '../../examples/study/stages.js';
import type { TrainedStage } from '../../examples/study/generator.js';
import { setup, teardown } from '../helpers.js';

/**
 * The embedded default generator (issue 11): the pretraining stages' models exported in f16 with a
 * manifest, and read back as the two stages' results only by a profile that allows it and whose image
 * size and latent layout it fits.
 */
const test = suite('study embedded generator');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-embedded-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

const P = { ...studyProfile('smoke'), embeddedGenerator: true };

async function stages(): Promise<{ vae: StageResult<TrainedStage>; base: StageResult<TrainedStage> }> {
  // stand-ins for the trained stages: a tiny pipeline with the profile's latent layout
  const pipe = createTinyPipeline({ seed: 3, vae: { block_out_channels: P.vae.blockOutChannels, latent_channels: P.vae.latentChannels, norm_num_groups: 8, down_block_types: P.vae.blockOutChannels.map(() => 'DownEncoderBlock2D'), up_block_types: P.vae.blockOutChannels.map(() => 'UpDecoderBlock2D') }, unet: { in_channels: P.vae.latentChannels, out_channels: P.vae.latentChannels } });
  const baseDir = join(dir, 'stage-base');
  const vaeDir = join(dir, 'stage-vae');
  await pipe.save(baseDir);
  await saveModel(pipe.vae, vaeDir, 'vae');
  pipe.dispose();
  const st = (key: string, model: string): StageResult<TrainedStage> => ({ key, dir: model, value: { model, steps: 6, finalLoss: 0.5, peakBytes: 1, latentStd: 0.9 }, seconds: 12.3, cached: false });
  return { vae: st('vaekey', vaeDir), base: st('basekey', baseDir) };
}

test('exported in f16 with a manifest, read back as the pretraining stages, loads as a pipeline', async () => {
  const s = await stages();
  const out = join(dir, 'models', 'procedural-generator');
  await exportGenerator({ ...s, poolKey: { seed: 1 }, profile: P, command: 'npm run pretrain-generator -- --profile smoke', adapter: 'test adapter', dir: out });
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as GeneratorManifest;
  assert.is(m.madeBy.command, 'npm run pretrain-generator -- --profile smoke');
  assert.is(m.imageSize, P.imageSize);
  assert.is(m.vaeKey, 'vaekey');
  // every float tensor is stored as F16
  for (const f of ['vae/diffusion_pytorch_model.safetensors', 'base/unet/diffusion_pytorch_model.safetensors']) {
    const sf = await ft.SafetensorsFile.open(join(out, f));
    const dtypes = new Set(sf.keys().map((k) => sf.entry(k)!.dtype));
    sf.close();
    assert.equal([...dtypes], ['F16'], f);
  }
  const r = readEmbeddedGenerator(P, out);
  if (!('manifest' in r)) return assert.unreachable(r.why);
  assert.ok(r.vae.cached && r.base.cached);
  assert.is(r.base.value.model, join(out, 'base'));
  assert.is.not(r.vae.key, r.base.key);
  const pipe = await StableDiffusionPipeline.fromPretrained(r.base.value.model);
  assert.is(pipe.unet.config.in_channels, P.vae.latentChannels);
  pipe.dispose();
  // exporting again replaces the folder whole (no partial or old folder left beside it)
  await exportGenerator({ ...s, poolKey: { seed: 1 }, profile: P, command: 'again', adapter: 'test adapter', dir: out });
  assert.equal(readdirSync(join(dir, 'models')), ['procedural-generator']);
  const r2 = readEmbeddedGenerator(P, out);
  assert.ok('manifest' in r2 && r2.base.key !== r.base.key, 'a replaced generator changes the stage keys');
});

test('not used by a profile that pretrains, nor when absent, nor when made for another size; a broken manifest is an error', async () => {
  const out = join(dir, 'models', 'procedural-generator');
  const noFlag = readEmbeddedGenerator({ ...P, embeddedGenerator: false }, out);
  assert.ok('why' in noFlag && /pretrains its own/.test(noFlag.why));
  const absent = readEmbeddedGenerator(P, join(dir, 'nowhere'));
  assert.ok('why' in absent && /no embedded generator/.test(absent.why));
  const other = readEmbeddedGenerator({ ...P, imageSize: P.imageSize * 2 }, out);
  assert.ok('why' in other && /was made for/.test(other.why));
  const broken = join(dir, 'broken');
  rmSync(broken, { recursive: true, force: true });
  (await import('node:fs')).mkdirSync(broken);
  writeFileSync(join(broken, 'manifest.json'), '{ not json');
  assert.throws(() => readEmbeddedGenerator(P, broken), /not valid JSON/);
  assert.ok(existsSync(join(out, 'manifest.json')));
});

test.run();
