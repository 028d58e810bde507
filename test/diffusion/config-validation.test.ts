/**
 * Diffusers configs and weight folders as untrusted input (issue 14, items 2 and 3): config.json of
 * the UNet, VAE, text encoder and scheduler are checked (types, ranges, required fields, lengths)
 * before any module is built, with one error naming the file and the field; every config foliar
 * writes and the golden ones still load. Integer tensors for float weights, a shard index without
 * weight_map or with shard names leading outside the folder, image paths leading outside a dataset
 * folder, and generated images holding NaN are refused with the name of what is wrong.
 */
import { test, skipPart } from '../harness.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import {
  CLIPTextModel, AutoencoderKL, UNet2DConditionModel, StableDiffusionPipeline, DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler,
  loadUNet, loadVAE, loadTextEncoder, weightFiles, resolveUNetConfig, resolveVAEConfig, resolveCLIPTextConfig, resolveSchedulerConfig,
  ModelConfigError, NonFiniteImageError, tensorToImages, schedulerFromConfig,
  UNET_REQUIRED, VAE_REQUIRED, CLIP_TEXT_REQUIRED, SCHEDULER_REQUIRED,
  readClassImagesFromCsv, readCaptionedCsv, readImageCsv, readCaptionedFolder,
} from '@foliar/diffusion';
import { runTrainLoop, type TrainLoopOptions } from '../../packages/diffusion/src/training/index.js';
import { repoRoot, shared } from '../helpers.js';
import { tinyPipeline } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-cfg-'));
let pipeDir = '';
test.before(async () => {
  await ft.init({ backend: 'cpu' });
  // a complete tiny pipeline as foliar writes it: every config below is a mutation of these
  pipeDir = join(tmp, 'pipe');
  const pipe = tinyPipeline();
  await pipe.save(pipeDir);
  pipe.dispose();
});
test.after(() => {
  ft.shutdown();
  rmSync(tmp, { recursive: true, force: true });
});

const readCfg = (part: string): Record<string, unknown> => JSON.parse(readFileSync(join(pipeDir, part, 'config.json'), 'utf8')) as Record<string, unknown>;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A copy of the pipeline's `part` folder whose config.json is `cfg` (raw text when a string). */
function variant(name: string, part: string, cfg: unknown, raw = false): string {
  const d = join(tmp, name, part);
  mkdirSync(d, { recursive: true });
  for (const f of readdirSync(join(pipeDir, part))) if (f !== 'config.json') writeFileSync(join(d, f), readFileSync(join(pipeDir, part, f)));
  writeFileSync(join(d, 'config.json'), raw ? (cfg as string) : JSON.stringify(cfg));
  return d;
}

async function rejects(p: Promise<unknown>, patterns: RegExp[], cls: new (...a: never[]) => Error = Error): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, cls, `${(e as Error).name}: ${(e as Error).message}`);
    const m = (e as Error).message;
    for (const pat of patterns) assert.match(m, pat);
    assert.not.match(m, /\n/, 'one line');
    return m;
  }
  assert.unreachable(`expected an error matching ${patterns.join(', ')}`);
  return '';
}

const loaders = { unet: loadUNet, vae: loadVAE, text_encoder: loadTextEncoder } as const;

test('config.json of {}, [1,2], null, a string or a number: one error naming the file, nothing built', async () => {
  const before = ft.memory().liveTensors;
  for (const [part, load] of Object.entries(loaders)) {
    const d = variant(`empty-${part}`, part, {});
    const required = { unet: UNET_REQUIRED, vae: VAE_REQUIRED, text_encoder: CLIP_TEXT_REQUIRED }[part as keyof typeof loaders];
    await rejects(load(d), [new RegExp(`^${esc(join(d, 'config.json'))}: missing required fields ${required.join(', ')}`)], ModelConfigError);
    for (const bad of ['[1,2]', 'null', '"unet"', '42', 'true']) {
      await rejects(load(variant(`bad-${part}`, part, bad, true)), [new RegExp(`${esc(join(part, 'config.json'))}: expected a JSON object of config fields, got ${esc(bad)}$`)], ModelConfigError);
    }
    await rejects(load(variant(`json-${part}`, part, '{"in_channels": 4,', true)), [/config\.json is not valid JSON/]);
  }
  assert.is(ft.memory().liveTensors, before, 'no module was built');
});

test('wrong types and ranges name the file, the field and the value (the UNet)', async () => {
  const base = readCfg('unet');
  const cases: [Record<string, unknown>, string][] = [
    [{ norm_eps: '1e-5' }, 'norm_eps must be a finite number > 0, got "1e-5"'],
    [{ norm_eps: 0 }, 'norm_eps must be a finite number > 0, got 0'],
    [{ norm_eps: -1e-5 }, 'norm_eps must be a finite number > 0, got -0.00001'],
    [{ in_channels: 0 }, 'in_channels must be a positive integer, got 0'],
    [{ in_channels: 2.5 }, 'in_channels must be a positive integer, got 2.5'],
    [{ out_channels: '4' }, 'out_channels must be a positive integer, got "4"'],
    [{ layers_per_block: -1 }, 'layers_per_block must be a positive integer, got -1'],
    [{ layers_per_block: [1, 1] }, 'layers_per_block must be a positive integer, got [1,1]'],
    [{ block_out_channels: [8, '16'] }, 'block_out_channels must be a non-empty array of positive integers, got [8,"16"] (element 1 is "16")'],
    [{ block_out_channels: [] }, 'block_out_channels must be a non-empty array of positive integers, got []'],
    [{ block_out_channels: 8 }, 'block_out_channels must be a non-empty array of positive integers, got 8'],
    [{ cross_attention_dim: null }, 'missing required field cross_attention_dim'],
    [{ norm_num_groups: 0 }, 'norm_num_groups must be a positive integer, got 0'],
    [{ norm_num_groups: 3 }, 'norm_num_groups 3 does not divide block_out_channels entry 8'],
    [{ down_block_types: ['DownBlock2D'] }, 'down_block_types has 1 entries and up_block_types 2 for 2 block_out_channels'],
    [{ up_block_types: ['UpBlock2D', 'UpBlock2D', 'UpBlock2D'] }, 'down_block_types has 2 entries and up_block_types 3 for 2 block_out_channels'],
    [{ down_block_types: ['DownBlock2D', 'SimpleCrossAttnDownBlock2D'] }, "down_block_types must be a non-empty array of 'DownBlock2D' / 'CrossAttnDownBlock2D', got"],
    [{ attention_head_dim: [4, 4, 4] }, 'attention_head_dim has 3 entries for 2 block_out_channels'],
    [{ attention_head_dim: '8' }, 'attention_head_dim must be a positive integer or a non-empty array of positive integers, got "8"'],
    [{ conv_in_kernel: 4 }, 'conv_in_kernel must be an odd positive integer, got 4'],
    [{ flip_sin_to_cos: 'true' }, 'flip_sin_to_cos must be true or false, got "true"'],
    [{ act_fn: 'gelu' }, 'act_fn must be one of "silu", got "gelu"'],
    [{ mid_block_type: 'UNetMidBlock2DSimpleCrossAttn' }, 'mid_block_type must be one of "UNetMidBlock2DCrossAttn" or null'],
    [{ center_input_sample: true }, 'center_input_sample = true is not supported (only false)'],
    [{ time_embedding_type: 'fourier' }, 'time_embedding_type = "fourier" is not supported (only "positional")'],
    [{ class_embed_type: 'timestep' }, 'class_embed_type = "timestep" is not supported (only null)'],
  ];
  for (const [patch, msg] of cases) {
    const d = variant('unet-bad', 'unet', { ...base, ...patch });
    await rejects(loadUNet(d), [new RegExp(`^${esc(join(d, 'config.json'))}: ${esc(msg)}`)], ModelConfigError);
  }
});

test('the VAE, the text encoder: scaling_factor "abc", negative eps, unsupported activations, heads, token ids', async () => {
  const vae = readCfg('vae');
  for (const [patch, msg] of [
    [{ scaling_factor: 'abc' }, 'scaling_factor must be a finite number > 0, got "abc"'],
    [{ scaling_factor: 0 }, 'scaling_factor must be a finite number > 0, got 0'],
    [{ scaling_factor: -0.18 }, 'scaling_factor must be a finite number > 0, got -0.18'],
    [{ shift_factor: 'x' }, 'shift_factor must be a finite number or null, got "x"'],
    [{ latent_channels: 0 }, 'latent_channels must be a positive integer, got 0'],
    [{ up_block_types: ['UpDecoderBlock2D'] }, 'down_block_types has 2 entries and up_block_types 1 for 2 block_out_channels'],
    [{ norm_num_groups: 5 }, 'norm_num_groups 5 does not divide'],
    [{ use_quant_conv: 1 }, 'use_quant_conv must be true or false, got 1'],
    [{ latents_mean: [0, 0, 0, 0] }, 'latents_mean = [0,0,0,0] is not supported (only null)'],
  ] as [Record<string, unknown>, string][]) {
    const d = variant('vae-bad', 'vae', { ...vae, ...patch });
    await rejects(loadVAE(d), [new RegExp(`^${esc(join(d, 'config.json'))}: ${esc(msg)}`)], ModelConfigError);
  }
  const te = readCfg('text_encoder');
  for (const [patch, msg] of [
    [{ hidden_act: 'relu' }, 'hidden_act must be one of "quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", got "relu"'],
    [{ layer_norm_eps: -1 }, 'layer_norm_eps must be a finite number > 0, got -1'],
    [{ layer_norm_eps: '1e-5' }, 'layer_norm_eps must be a finite number > 0, got "1e-5"'],
    [{ num_hidden_layers: 0 }, 'num_hidden_layers must be a positive integer, got 0'],
    [{ num_attention_heads: 3 }, 'hidden_size 16 is not divisible by 3 heads'],
    [{ eos_token_id: 100000 }, 'eos_token_id 100000 is outside the vocabulary'],
    [{ eos_token_id: -1 }, 'eos_token_id must be a non-negative integer, got -1'],
    [{ max_position_embeddings: '77' }, 'max_position_embeddings must be a positive integer, got "77"'],
  ] as [Record<string, unknown>, string][]) {
    const d = variant('te-bad', 'text_encoder', { ...te, ...patch });
    await rejects(loadTextEncoder(d), [new RegExp(`^${esc(join(d, 'config.json'))}: ${esc(msg)}`)], ModelConfigError);
  }
});

test('configs built in code are checked the same way (NaN and Infinity included), naming the model', () => {
  const throwsMsg = (fn: () => unknown, re: RegExp) => {
    try {
      fn();
    } catch (e) {
      assert.instance(e, ModelConfigError);
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable(String(re));
  };
  throwsMsg(() => new AutoencoderKL({ scaling_factor: Number.NaN }), /^vae config: scaling_factor must be a finite number > 0, got NaN$/);
  throwsMsg(() => new AutoencoderKL({ scaling_factor: Infinity }), /got Infinity/);
  throwsMsg(() => new UNet2DConditionModel({ norm_eps: Number.NaN }), /^unet config: norm_eps must be a finite number > 0, got NaN$/);
  throwsMsg(() => new CLIPTextModel({ layer_norm_eps: -1 }), /^text encoder config: layer_norm_eps/);
  throwsMsg(() => new DDIMScheduler({ beta_end: -1 }), /^DDIMScheduler config: beta_end must be a number in \(0, 1\), got -1$/);
  throwsMsg(() => new DDPMScheduler({ beta_start: 0.02, beta_end: 0.01 }), /beta_start \(0\.02\) must be below beta_end \(0\.01\)/);
  throwsMsg(() => new EulerDiscreteScheduler({ num_train_timesteps: 0 }), /num_train_timesteps must be a positive integer ≤ 1,000,000, got 0/);
  throwsMsg(() => new DPMSolverMultistepScheduler({ solver_order: 3 }), /solver_order must be one of 1, 2, got 3/);
  throwsMsg(() => schedulerFromConfig({ _class_name: 'DDIMScheduler', beta_end: Number.NaN }), /beta_end .* got NaN/);
  throwsMsg(() => new DDIMScheduler({ thresholding: true }), /thresholding = true is not supported/);
  throwsMsg(() => new DDIMScheduler({ trained_betas: [0.1, 0.2], num_train_timesteps: 3 }), /trained_betas has 2 entries for num_train_timesteps 3/);
  // the documented defaults still stand for code
  new DDIMScheduler({});
  new DDIMScheduler({ beta_schedule: 'squaredcos_cap_v2' });
  new DDIMScheduler({ trained_betas: [0.1, 0.2, 0.3], num_train_timesteps: 3 });
});

test('scheduler_config.json: beta_end -1, beta_start >= beta_end, missing schedule, wrong types: the pipeline refuses it naming file and field', async () => {
  const base = JSON.parse(readFileSync(join(pipeDir, 'scheduler', 'scheduler_config.json'), 'utf8')) as Record<string, unknown>;
  const copyPipe = (name: string, sched: unknown): string => {
    const d = join(tmp, name);
    for (const part of ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler']) {
      mkdirSync(join(d, part), { recursive: true });
      for (const f of readdirSync(join(pipeDir, part))) writeFileSync(join(d, part, f), readFileSync(join(pipeDir, part, f)));
    }
    writeFileSync(join(d, 'model_index.json'), readFileSync(join(pipeDir, 'model_index.json')));
    writeFileSync(join(d, 'scheduler', 'scheduler_config.json'), typeof sched === 'string' ? sched : JSON.stringify(sched));
    return d;
  };
  const file = (d: string) => esc(join(d, 'scheduler', 'scheduler_config.json'));
  for (const [patch, msg] of [
    [{ beta_end: -1 }, 'beta_end must be a number in (0, 1), got -1'],
    [{ beta_end: 'abc' }, 'beta_end must be a number in (0, 1), got "abc"'],
    [{ beta_start: 0.02, beta_end: 0.012 }, 'beta_start (0.02) must be below beta_end (0.012)'],
    [{ beta_schedule: 'cosine' }, 'beta_schedule must be one of "linear", "scaled_linear", "squaredcos_cap_v2", got "cosine"'],
    [{ num_train_timesteps: 1.5 }, 'num_train_timesteps must be a positive integer ≤ 1,000,000, got 1.5'],
    [{ prediction_type: 'noise' }, 'prediction_type must be one of "epsilon", "v_prediction", "sample", got "noise"'],
    [{ steps_offset: -1 }, 'steps_offset must be a non-negative integer, got -1'],
    [{ beta_schedule: undefined }, 'missing required field beta_schedule'],
  ] as [Record<string, unknown>, string][]) {
    const d = copyPipe('sched-bad', { ...base, ...patch });
    await rejects(StableDiffusionPipeline.fromPretrained(d), [new RegExp(`^${file(d)}: ${esc(msg)}`)], ModelConfigError);
  }
  const d = copyPipe('sched-empty', {});
  await rejects(StableDiffusionPipeline.fromPretrained(d), [new RegExp(`^${file(d)}: missing required fields num_train_timesteps, beta_start, beta_end, beta_schedule`)], ModelConfigError);
  const d2 = copyPipe('sched-array', '[1,2]');
  await rejects(StableDiffusionPipeline.fromPretrained(d2), [new RegExp(`^${file(d2)}: expected a JSON object`)], ModelConfigError);
  // model_index.json whose scheduler entry is not [library, class]
  const d3 = copyPipe('index-bad', base);
  writeFileSync(join(d3, 'model_index.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(pipeDir, 'model_index.json'), 'utf8')), scheduler: 'DDIMScheduler' }));
  await rejects(StableDiffusionPipeline.fromPretrained(d3), [/model_index\.json: "scheduler" must be \[library, class name\], got "DDIMScheduler"/]);
  // a bad UNet config stops the pipeline before any component is built
  const d4 = copyPipe('pipe-unet-bad', base);
  writeFileSync(join(d4, 'unet', 'config.json'), JSON.stringify({ ...readCfg('unet'), norm_eps: '1e-5' }));
  const before = ft.memory().liveTensors;
  await rejects(StableDiffusionPipeline.fromPretrained(d4), [/unet[/\\]config\.json: norm_eps must be a finite number > 0, got "1e-5"/], ModelConfigError);
  assert.is(ft.memory().liveTensors, before, 'no component was built');
});

test('every config foliar writes, and the golden diffusers/transformers configs, are accepted', async () => {
  const pipe = await StableDiffusionPipeline.fromPretrained(pipeDir);
  pipe.dispose();
  const g = shared('golden', 'golden configs');
  if (!g) {
    skipPart('../shared/golden not found: the golden configs are not checked', 'shared');
    return;
  }
  let n = 0;
  for (const sd of readdirSync(g).filter((f) => f.startsWith('tiny-sd'))) {
    const dir = join(g, sd);
    resolveUNetConfig(JSON.parse(readFileSync(join(dir, 'unet', 'config.json'), 'utf8')), 'golden unet', UNET_REQUIRED);
    resolveVAEConfig(JSON.parse(readFileSync(join(dir, 'vae', 'config.json'), 'utf8')), 'golden vae', VAE_REQUIRED);
    resolveCLIPTextConfig(JSON.parse(readFileSync(join(dir, 'text_encoder', 'config.json'), 'utf8')), 'golden te', CLIP_TEXT_REQUIRED);
    resolveSchedulerConfig(JSON.parse(readFileSync(join(dir, 'scheduler', 'scheduler_config.json'), 'utf8')), 'golden sched', SCHEDULER_REQUIRED);
    n++;
  }
  assert.ok(n >= 1, 'golden SD configs found');
  // SD1.5's published configs (the fields that matter), as diffusers/transformers write them
  resolveUNetConfig({ ...readCfg('unet'), block_out_channels: [320, 640, 1280, 1280], down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'], norm_num_groups: 32, cross_attention_dim: 768, attention_head_dim: 8, sample_size: 64 }, 'sd15', UNET_REQUIRED);
  resolveSchedulerConfig({ _class_name: 'PNDMScheduler', beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085, num_train_timesteps: 1000, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, trained_betas: null, clip_sample: false }, 'sd15', SCHEDULER_REQUIRED);
});

test('integer tensors for float weights are refused naming the tensor and the dtype', async () => {
  const d = variant('te-int', 'text_encoder', readCfg('text_encoder'));
  const te = await loadTextEncoder(d);
  const sd = new Map(te.stateDict());
  const key = 'text_model.final_layer_norm.weight';
  const w = sd.get(key)!;
  const entries: [string, ft.TensorToWrite][] = [];
  for (const [k, t] of sd) {
    const data = (await t.data()) as Float32Array;
    entries.push([k, k === key ? { dtype: 'I32', shape: [...w.shape], data: Int32Array.from(data, (x) => Math.round(x)) } : { dtype: 'F32', shape: [...t.shape], data }]);
  }
  te.dispose();
  await ft.writeSafetensors(join(d, 'model.safetensors'), entries);
  await rejects(loadTextEncoder(d), [new RegExp(`'${esc(key)}' is I32 in .*model\\.safetensors, but ${esc(key)} is float32`)]);
});

test('a sharded weights index: no weight_map, a bad one, shard names with ../ or absolute paths are refused naming the index', async () => {
  const d = join(tmp, 'sharded');
  mkdirSync(d, { recursive: true });
  writeFileSync(join(tmp, 'outside.safetensors'), readFileSync(join(pipeDir, 'unet', 'diffusion_pytorch_model.safetensors')));
  const idx = join(d, 'diffusion_pytorch_model.safetensors.index.json');
  const cases: [unknown, RegExp][] = [
    [{ metadata: {} }, /"weight_map" must be an object \{tensor name: shard file\}, got nothing/],
    [{ weight_map: null }, /"weight_map" must be an object .*got null/],
    [{ weight_map: ['a.safetensors'] }, /"weight_map" must be an object .*got \["a\.safetensors"\]/],
    [{ weight_map: { 'conv_in.weight': 7 } }, /weight_map\["conv_in\.weight"\] must be a file name, got 7/],
    [{ weight_map: {} }, /weight_map lists no tensors/],
    [{ weight_map: { 'conv_in.weight': '../outside.safetensors' } }, /shard: path "\.\.\/outside\.safetensors" leads outside/],
    [{ weight_map: { 'conv_in.weight': 'ok.safetensors', 'conv_in.bias': 'sub/../../outside.safetensors' } }, /leads outside/],
    [{ weight_map: { 'conv_in.weight': join(tmp, 'outside.safetensors') } }, /shard: absolute path .* refused/],
    [[1, 2], /"weight_map" must be an object/],
  ];
  for (const [j, re] of cases) {
    writeFileSync(idx, JSON.stringify(j));
    await rejects(weightFiles(d), [new RegExp(`^${esc(idx)}`), re]);
  }
  writeFileSync(idx, JSON.stringify({ weight_map: { a: 'part-1.safetensors', b: 'sub/part-2.safetensors', c: 'part-1.safetensors' } }));
  assert.equal(await weightFiles(d), [join(d, 'part-1.safetensors'), join(d, 'sub', 'part-2.safetensors')]);
});

test('image paths from CSV and metadata.jsonl files stay inside their folder (DreamBooth --instance-csv, text-to-image, VAE data)', async () => {
  const d = join(tmp, 'pp');
  mkdirSync(join(d, 'images'), { recursive: true });
  writeFileSync(join(d, 'images', 'A.jpg'), 'x');
  writeFileSync(join(tmp, 'secret.jpg'), 'x');
  const csv = join(d, 'train.csv');
  writeFileSync(csv, 'image_id,healthy,multiple_diseases\nA,0,1\n../../secret,0,1\n');
  await rejects(readClassImagesFromCsv(csv, 'multiple_diseases'), [new RegExp(`^${esc(csv)} row 3: image_id: path "\\.\\./\\.\\./secret\\.jpg" leads outside ${esc(join(d, 'images'))}`)]);
  await rejects(readCaptionedCsv(csv, { imageColumn: 'image_id', imageDir: 'images', imageExt: '.jpg', captionTemplate: '{label}' }), [/row 3: image_id: path .* leads outside/]);
  writeFileSync(csv, `file_name,text\nimages/A.jpg,a leaf\n${join(tmp, 'secret.jpg')},x\n`);
  await rejects(readImageCsv(csv), [/row 3: file_name: absolute path .* refused/]);
  await rejects(readCaptionedCsv(csv), [/row 3: file_name: absolute path .* refused/]);
  writeFileSync(join(d, 'images', 'metadata.jsonl'), '{"file_name": "A.jpg", "text": "a"}\n{"file_name": "../../secret.jpg", "text": "b"}\n');
  await rejects(readCaptionedFolder(join(d, 'images')), [/metadata\.jsonl line 2: file_name: path "\.\.\/\.\.\/secret\.jpg" leads outside/]);
  // inside the folder (subfolders too) still reads
  writeFileSync(csv, 'file_name,text\nimages/A.jpg,a leaf\n./images/../images/A.jpg,again\n');
  assert.equal((await readCaptionedCsv(csv)).map((c) => c.image), [join(d, 'images', 'A.jpg'), join(d, 'images', 'A.jpg')]);
});

test('generated images with NaN/Inf are an error naming the count, never black pixels', async () => {
  const x = ft.tensor(new Float32Array(2 * 3 * 4 * 4).fill(0.5), { shape: [2, 3, 4, 4] });
  assert.is((await tensorToImages(x)).length, 2);
  const data = new Float32Array(2 * 3 * 4 * 4).fill(0.5);
  data[50] = Number.NaN;
  data[60] = Infinity;
  data[61] = Number.NaN;
  const bad = ft.tensor(data, { shape: [2, 3, 4, 4] });
  try {
    await tensorToImages(bad);
    assert.unreachable('NaN images accepted');
  } catch (e) {
    assert.instance(e, NonFiniteImageError);
    const err = e as NonFiniteImageError;
    assert.is(err.count, 3);
    assert.equal(err.images, [1]);
    assert.match(err.message, /^generated images: 3 non-finite values \(NaN\/Inf\) in 1 of 2 images \(first: image 1\)/);
  }
  x.dispose();
  bad.dispose();
  // a pipeline whose VAE decoder weights hold NaN (clamp propagates NaN: the images do too)
  const pipe = tinyPipeline();
  ft.noGrad(() => ft.fill_(pipe.vae.decoder.convOut.weight, Number.NaN));
  const r = await pipe.generate({ prompt: 'a leaf', numInferenceSteps: 2, height: 16, width: 16 });
  await rejects(tensorToImages(r.images), [/3 ?\d* ?non-finite|non-finite values/, /in 1 of 1 image/], NonFiniteImageError);
  r.images.dispose();
  r.latents.dispose();
  pipe.dispose();
});

test('a training checkpoint state.json with tampered fields (step -3, losses of another length, bad JSON) is refused naming the file and field', async () => {
  const out = join(tmp, 'loop');
  const w = ft.keep(ft.zeros([4]).requiresGrad_(true));
  const target = ft.keep(ft.tensor([1, -2, 3, 0.5]));
  const run = (o: Partial<TrainLoopOptions>) => runTrainLoop(
    { outputDir: out, maxTrainSteps: 2, learningRate: 0.1, checkpointingSteps: 2, quiet: true, ...o },
    { label: 'quadratic', params: [w], stateDict: () => new Map([['w', w]]), loss: () => w.sub(target).square().sum() },
  );
  try {
    await run({});
    const statePath = join(out, 'checkpoints', 'checkpoint-2', 'state.json');
    const good = JSON.parse(readFileSync(statePath, 'utf8')) as Record<string, unknown>;
    for (const [patch, re] of [
      [{ step: -3 }, /"step" must be a non-negative integer, got -3/],
      [{ step: 1.5 }, /"step" must be a non-negative integer, got 1\.5/],
      [{ step: 99 }, /"losses" must be 99 losses \(one per step\), got \[/],
      [{ losses: 'x' }, /"losses" must be 2 losses/],
      [{ scheduler: null }, /"scheduler" must be \{step, baseLrs\}, got null/],
      [{ generator: { seed: 1, counter: -1 } }, /"generator" must be \{seed, counter\} integers/],
    ] as [Record<string, unknown>, RegExp][]) {
      writeFileSync(statePath, JSON.stringify({ ...good, ...patch }));
      await rejects(run({ resumeFrom: 'latest', maxTrainSteps: 4 }), [new RegExp(`^${esc(statePath)}: `), re]);
    }
    writeFileSync(statePath, '{"step": 2,');
    await rejects(run({ resumeFrom: 'latest', maxTrainSteps: 4 }), [new RegExp(`^${esc(statePath)} is not valid JSON`)]);
    writeFileSync(statePath, JSON.stringify(good));
    assert.is((await run({ resumeFrom: 'latest', maxTrainSteps: 3 })).steps, 3, 'the honest state resumes');
  } finally {
    w.dispose();
    target.dispose();
  }
});

function cli(args: string[]): { code: number; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, FOLIAR_BACKEND: 'cpu' };
  delete env.FOLIAR_DEBUG;
  const r = spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', join(repoRoot, 'packages/diffusion/src/cli/main.ts'), ...args], { cwd: repoRoot, encoding: 'utf8', env, timeout: 180_000 });
  return { code: r.status ?? -1, stderr: r.stderr };
}

test('foliar-diffuse generate: NaN weights exit 1 with one line naming the count and write no PNG; a bad config names file and field', async () => {
  const d = join(tmp, 'nan-pipe');
  const pipe = tinyPipeline();
  ft.noGrad(() => ft.fill_(pipe.vae.decoder.convOut.weight, Number.NaN));
  await pipe.save(d);
  pipe.dispose();
  const out = join(tmp, 'nan-out');
  const r = cli(['generate', '--model', d, '--prompt', 'a leaf', '--steps', '2', '--height', '16', '--width', '16', '--out', out]);
  assert.is(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => !/^device:|^\s*denoising|\r/.test(l));
  assert.match(lines[lines.length - 1]!, /^foliar-diffuse: generated images: \d+ non-finite values \(NaN\/Inf\) in 1 of 1 image/);
  assert.equal(existsSync(out) ? readdirSync(out).filter((f) => f.endsWith('.png')) : [], [], 'no PNG written');
  writeFileSync(join(d, 'vae', 'config.json'), JSON.stringify({ ...readCfg('vae'), scaling_factor: 'abc' }));
  const r2 = cli(['generate', '--model', d, '--prompt', 'a leaf', '--steps', '2', '--out', out]);
  assert.is(r2.code, 1, r2.stderr);
  assert.match(r2.stderr, new RegExp(`foliar-diffuse: ${esc(join(d, 'vae', 'config.json'))}: scaling_factor must be a finite number > 0, got "abc"`));
});

test('foliar-diffuse dreambooth --instance-csv with ../ image ids is refused before training', () => {
  const d = join(tmp, 'db-csv');
  mkdirSync(join(d, 'images'), { recursive: true });
  writeFileSync(join(d, 'train.csv'), 'image_id,healthy,multiple_diseases,rust,scab\n../../../etc/passwd,0,1,0,0\n');
  const out = join(tmp, 'db-out');
  const r = cli(['dreambooth', '--model', 'tiny', '--instance-csv', join(d, 'train.csv'), '--instance-class', 'multiple_diseases', '--instance-prompt', 'a sks leaf', '--max-train-steps', '1', '--resolution', '16', '--no-progress', '--out', out]);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /^foliar-diffuse: .*train\.csv row 2: image_id: path "\.\.\/\.\.\/\.\.\/etc\/passwd\.jpg" leads outside .*images\n?$/);
  assert.not.ok(existsSync(join(out, 'train.jsonl')), 'nothing trained');
});

test.run();
