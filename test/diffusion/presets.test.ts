import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readdirSync, readFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import {
  AutoencoderKL, CLIPTextModel, CLIPTokenizer, StableDiffusionPipeline, createRandomPipeline, createTinyPipeline, parseSize, weightFileNames, weightFiles,
  resolveUNetConfig, resolveVAEConfig, resolveCLIPTextConfig, SD15_UNET_CONFIG, SD15_VAE_CONFIG, SD15_TEXT_ENCODER_CONFIG, SD15_SCHEDULER_CONFIG, SD15_TOKENIZER, SD15_PARAMETERS,
  UNET_REQUIRED, VAE_REQUIRED, CLIP_TEXT_REQUIRED,
} from '@foliar/diffusion';
import { setup, teardown, shared, skip } from '../helpers.js';

/**
 * `foliar-diffuse create-random` (issue 16, item 1): SD 1.5's published configs, diffusers' file naming
 * for variants and shards, and a random pipeline folder that loads back value for value through
 * every path a real checkpoint takes (f16 files, variant names, sharded indexes).
 */
const test = suite('random pipelines (create-random)');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-presets-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

/** f32 -> f16 (round to nearest even) -> f32, written out here so the test does not use the code it checks. */
function f16(x: number): number {
  return fromHalf(toHalfBits(x));
}
function toHalfBits(x: number): number {
  const b = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}
function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

test("SD 1.5's configs are the published ones and pass the config validators", () => {
  const unet = resolveUNetConfig(JSON.parse(JSON.stringify(SD15_UNET_CONFIG)), 'sd15 unet', UNET_REQUIRED);
  assert.equal(unet.block_out_channels, [320, 640, 1280, 1280]);
  assert.is(unet.cross_attention_dim, 768);
  assert.is(unet.attention_head_dim, 8);
  assert.is(unet.sample_size, 64);
  assert.equal(unet.down_block_types, ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']);
  const vae = resolveVAEConfig(JSON.parse(JSON.stringify(SD15_VAE_CONFIG)), 'sd15 vae', VAE_REQUIRED);
  assert.equal(vae.block_out_channels, [128, 256, 512, 512]);
  assert.is(vae.sample_size, 512);
  assert.is(vae.scaling_factor, 0.18215);
  const te = resolveCLIPTextConfig(JSON.parse(JSON.stringify(SD15_TEXT_ENCODER_CONFIG)), 'sd15 text encoder', CLIP_TEXT_REQUIRED);
  assert.equal([te.vocab_size, te.hidden_size, te.intermediate_size, te.num_hidden_layers, te.num_attention_heads, te.max_position_embeddings], [49408, 768, 3072, 12, 12, 77]);
  assert.is(te.hidden_act, 'quick_gelu');
  assert.equal({ ...SD15_SCHEDULER_CONFIG }, { _class_name: 'PNDMScheduler', _diffusers_version: '0.6.0', beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085, clip_sample: false, num_train_timesteps: 1000, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, trained_betas: null });
});

test("SD 1.5's text encoder and VAE built from the preset have the real checkpoint's parameter counts", async () => {
  const prev = ft.getBackend();
  ft.setBackend(ft.cpuBackend()); // 0.8 GB of f32 weights: the CPU backend, as create-random builds them
  try {
    for (const [name, build, want] of [
      ['text_encoder', () => new CLIPTextModel(JSON.parse(JSON.stringify(SD15_TEXT_ENCODER_CONFIG)) as Record<string, unknown>), SD15_PARAMETERS.text_encoder],
      ['vae', () => new AutoencoderKL(JSON.parse(JSON.stringify(SD15_VAE_CONFIG)) as Record<string, unknown>), SD15_PARAMETERS.vae],
    ] as const) {
      const m = build();
      const n = m.parameters().reduce((a, p) => a + p.size, 0);
      m.dispose();
      assert.is(n, want, `${name} parameters`);
    }
  } finally {
    ft.setBackend(prev);
  }
});

test("weight file names follow diffusers (variants, shards, index)", () => {
  assert.equal(weightFileNames('diffusion_pytorch_model', 1), { files: ['diffusion_pytorch_model.safetensors'], index: null });
  assert.equal(weightFileNames('diffusion_pytorch_model', 1, 'fp16'), { files: ['diffusion_pytorch_model.fp16.safetensors'], index: null });
  assert.equal(weightFileNames('diffusion_pytorch_model', 2), { files: ['diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors'], index: 'diffusion_pytorch_model.safetensors.index.json' });
  assert.equal(weightFileNames('model', 2, 'fp16'), { files: ['model.fp16-00001-of-00002.safetensors', 'model.fp16-00002-of-00002.safetensors'], index: 'model.safetensors.index.fp16.json' });
  assert.is(parseSize('10GB'), 10e9);
  assert.is(parseSize('2GiB'), 2 ** 31);
  assert.is(parseSize('500kb'), 500e3);
  assert.is(parseSize(1234), 1234);
  for (const bad of ['', 'ten GB', '-5MB', '0']) assert.throws(() => parseSize(bad), /size/, bad);
});

test('a tiny random pipeline in f16, fp16 variant, sharded: every tensor loads back as its f16 rounding', async () => {
  const out = join(dir, 'tiny-f16');
  const r = await createRandomPipeline(out, { preset: 'tiny', dtype: 'f16', variant: 'fp16', maxShardSize: 150_000, seed: 5 });
  // the index lists every tensor once, its total_size is the data's bytes, and the shards hold at most the limit (or one tensor)
  for (const name of ['unet', 'vae'] as const) {
    const c = r.components[name];
    assert.ok(c.files.length > 1 && c.index, `${name} is sharded`);
    const index = JSON.parse(readFileSync(join(out, c.index!), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    assert.is(index.metadata.total_size, c.bytes);
    assert.equal([...new Set(Object.values(index.weight_map))].sort(), c.files.map((f) => f.split('/').pop()!).sort());
    for (const f of c.files) assert.ok(readFileSync(join(out, f)).length < 150_000 + 65_536, `${f} near the shard limit`);
  }
  // the same weights made where create-random makes them (the CPU backend: its randn and WebGPU's may differ in the last bit)
  const prev = ft.getBackend();
  ft.setBackend(ft.cpuBackend());
  const ref = createTinyPipeline({ seed: 5 });
  ft.setBackend(prev);
  for (const variant of ['fp16', undefined]) {
    // without a variant the folder's only variant is found
    const pipe = await StableDiffusionPipeline.fromPretrained(out, { variant });
    for (const [part, a, b] of [['unet', ref.unet, pipe.unet], ['vae', ref.vae, pipe.vae], ['text_encoder', ref.textEncoder, pipe.textEncoder]] as const) {
      const sa = a.stateDict();
      const sb = b.stateDict();
      assert.equal([...sb.keys()].sort(), [...sa.keys()].sort(), `${part} keys`);
      for (const [k, t] of sa) {
        const want = await t.dataF32();
        const got = await sb.get(k)!.dataF32();
        for (let i = 0; i < want.length; i++) {
          if (Object.is(got[i], f16(want[i]!))) continue;
          assert.unreachable(`${part} ${k}[${i}]: got ${got[i]}, want f16(${want[i]}) = ${f16(want[i]!)}`);
        }
      }
    }
    pipe.dispose();
  }
  ref.dispose();
});

test('weight variants: the plain files by default, the variant when asked, a clear error when it is missing or ambiguous', async () => {
  const src = join(dir, 'tiny-f32');
  await createRandomPipeline(src, { preset: 'tiny', seed: 1 });
  const vaeDir = join(src, 'vae');
  copyFileSync(join(vaeDir, 'diffusion_pytorch_model.safetensors'), join(vaeDir, 'diffusion_pytorch_model.fp16.safetensors'));
  assert.equal((await weightFiles(vaeDir)).map((f) => f.split('/').pop()), ['diffusion_pytorch_model.safetensors']);
  assert.equal((await weightFiles(vaeDir, 'fp16')).map((f) => f.split('/').pop()), ['diffusion_pytorch_model.fp16.safetensors']);
  try {
    await weightFiles(vaeDir, 'bf16');
    assert.unreachable('bf16 is not there');
  } catch (e) {
    assert.match((e as Error).message, /no weights of variant 'bf16'/);
  }
  const two = join(dir, 'two-variants');
  mkdirSync(two);
  for (const v of ['fp16', 'bf16']) copyFileSync(join(vaeDir, 'diffusion_pytorch_model.safetensors'), join(two, `diffusion_pytorch_model.${v}.safetensors`));
  try {
    await weightFiles(two);
    assert.unreachable('two variants and no plain weights');
  } catch (e) {
    assert.match((e as Error).message, /several variants \((bf16, fp16|fp16, bf16)\)/);
  }
  assert.equal(readdirSync(two).length, 2);
});

test("the sd15 tokenizer folder: openai's 48,894 merges, 49,408 tokens, <|endoftext|> pads, 77 positions", async () => {
  const merges = shared('golden/clip_tokenizer/bpe_simple_vocab_16e6.txt.gz', 'sd15 tokenizer');
  if (!merges) skip('../shared/golden/clip_tokenizer not found', 'shared');
  const tok = await CLIPTokenizer.fromMergesGz(merges, SD15_TOKENIZER);
  await tok.save(join(dir, 'sd15-tokenizer'));
  const back = await CLIPTokenizer.fromFolder(join(dir, 'sd15-tokenizer'));
  assert.is(back.vocabSize, 49408);
  assert.is(back.modelMaxLength, 77);
  const ids = back.call(['a photo of a <diseaes-leaf> leaf'], { padding: 'max_length', maxLength: 77, truncation: true }).inputIds[0]!;
  assert.equal(ids, tok.call(['a photo of a <diseaes-leaf> leaf'], { padding: 'max_length', maxLength: 77, truncation: true }).inputIds[0]);
  assert.is(ids[0], 49406);
  assert.is(ids[76], 49407, 'padded with <|endoftext|>');
});

test('bad requests fail before anything is written', async () => {
  for (const [o, re] of [
    [{ preset: 'sd21' }, /unknown preset/],
    [{ preset: 'sd15' }, /merges/],
    [{ preset: 'tiny', dtype: 'f8' }, /dtype/],
    [{ preset: 'sd15', merges: join(dir, 'nope.gz') }, /cannot read gzip merges/],
  ] as const) {
    const target = join(dir, `bad-${Math.random().toString(36).slice(2)}`);
    try {
      await createRandomPipeline(target, o as Parameters<typeof createRandomPipeline>[1]);
      assert.unreachable(`${JSON.stringify(o)} accepted`);
    } catch (e) {
      assert.match((e as Error).message, re);
    }
    assert.not.ok(readdirSync(dir).includes(target.split('/').pop()!), 'nothing written');
  }
});

test.run();
