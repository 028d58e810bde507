/**
 * foliar-diffuse training commands end to end as subprocesses (CPU backend, a tiny pipeline from a
 * --tiny-config file, 16 px synthetic leaves): dreambooth from a folder and from a Plant Pathology
 * 2020 style CSV, resume, textual inversion; train-text-to-image from an imagefolder and from a CSV
 * with a caption template; train-vae; refusing another run's folder and --overwrite; errors as one
 * line, values refused up front, FOLIAR_BACKEND; --help.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readSafetensors } from '@foliar/nn';
import { repoRoot } from '../helpers.js';
import { leafImages } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-diffuse-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const cli = join(repoRoot, 'packages', 'diffusion', 'src', 'cli', 'main.ts');

/** The CLI on the CPU backend: `--backend cpu`, or (`viaEnv`) FOLIAR_BACKEND=cpu and no flag. */
function run(args: string[], o: { viaEnv?: boolean } = {}): { code: number; stdout: string; stderr: string } {
  const env = { ...process.env };
  delete env.FOLIAR_BACKEND;
  delete env.FOLIAR_DEBUG;
  if (o.viaEnv) env.FOLIAR_BACKEND = 'cpu';
  const r = spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', cli, ...(o.viaEnv ? [] : ['--backend', 'cpu']), ...args], { cwd: repoRoot, encoding: 'utf8', env, timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
/** An error is reported as one line, without a stack trace. */
function oneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.is(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `one line on stderr:\n${r.stderr}`);
  assert.match(lines[0]!, /^foliar-diffuse: /);
  assert.match(lines[0]!, pattern);
}
const log = (out: string) => readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

const tinyCfg = join(tmp, 'tiny.json');
const leaves = join(tmp, 'leaves');
const pp = join(tmp, 'pp2020');
const captioned = join(tmp, 'captioned');

test.before(async () => {
  writeFileSync(tinyCfg, JSON.stringify({
    unet: { block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, attention_head_dim: 4, sample_size: 8, cross_attention_dim: 16 },
    vae: { block_out_channels: [8, 16], norm_num_groups: 4, sample_size: 16 },
    textEncoder: { hidden_size: 16, num_hidden_layers: 2, intermediate_size: 24, num_attention_heads: 2, max_position_embeddings: 16 },
  }));
  const save = async (img: { width: number; height: number; data: Uint8Array }, path: string) =>
    sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } }).toFile(path);
  mkdirSync(leaves, { recursive: true });
  const rust = leafImages(3, 24, 'rust');
  for (let i = 0; i < rust.length; i++) await save(rust[i]!, join(leaves, `leaf-${i}.png`));
  // Plant Pathology 2020 layout: train.csv + images/<image_id>.jpg
  mkdirSync(join(pp, 'images'), { recursive: true });
  const rows = ['image_id,healthy,multiple_diseases,rust,scab'];
  const labels = ['healthy', 'multiple_diseases', 'rust', 'multiple_diseases', 'scab'] as const;
  for (let i = 0; i < labels.length; i++) {
    await save(leafImages(1, 20, labels[i], 10 + i)[0]!, join(pp, 'images', `Train_${i}.jpg`));
    rows.push([`Train_${i}`, ...['healthy', 'multiple_diseases', 'rust', 'scab'].map((c) => (c === labels[i] ? 1 : 0))].join(','));
  }
  writeFileSync(join(pp, 'train.csv'), rows.join('\n') + '\n');
  // diffusers imagefolder: metadata.jsonl
  mkdirSync(captioned, { recursive: true });
  const caps = ['a photo of a rusty leaf', 'a photo of a healthy leaf', 'a photo of a scabby leaf'];
  const imgs = [leafImages(1, 16, 'rust', 30)[0]!, leafImages(1, 16, 'healthy', 31)[0]!, leafImages(1, 16, 'scab', 32)[0]!];
  for (let i = 0; i < 3; i++) await save(imgs[i]!, join(captioned, `${i}.png`));
  writeFileSync(join(captioned, 'metadata.jsonl'), caps.map((text, i) => JSON.stringify({ file_name: `${i}.png`, text })).join('\n') + '\n');
});

const small = ['--model', 'tiny', '--tiny-config', tinyCfg, '--resolution', '16', '--no-progress'];

test('dreambooth --help documents the options', () => {
  const r = run(['dreambooth', '--help']);
  assert.is(r.code, 0, r.stderr);
  for (const o of ['--instance-csv', '--instance-class', '--class-prompt', '--prior-loss-weight', '--num-class-images', '--method', '--rank', '--alpha', '--token', '--initializer-token', '--resume', '--snr-gamma', '--checkpointing-steps', '5e-6 full, 1e-4'])  {
    assert.ok(r.stdout.includes(o), `help mentions ${o}`);
  }
});

test('dreambooth (LoRA, folder of images) writes checkpoints and the adapter; --resume latest continues the log', () => {
  const out = join(tmp, 'db');
  const r = run(['dreambooth', ...small, '--instance-dir', leaves, '--instance-prompt', 'a photo of a sks leaf', '--method', 'lora', '--rank', '2', '--max-train-steps', '3', '--checkpointing-steps', '2', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  for (const f of ['config.json', 'train.jsonl', 'loss.png', 'checkpoints/checkpoint-2/state.json', 'checkpoints/checkpoint-3/state.json', 'final/pytorch_lora_weights.safetensors']) assert.ok(existsSync(join(out, f)), f);
  const l = log(out);
  assert.equal(l.map((x) => x.step), [1, 2, 3]);
  assert.is(l[0]!.lr, 1e-4, "LoRA's default learning rate");
  const r2 = run(['dreambooth', ...small, '--instance-dir', leaves, '--instance-prompt', 'a photo of a sks leaf', '--method', 'lora', '--rank', '2', '--max-train-steps', '5', '--checkpointing-steps', '2', '--out', out, '--resume', 'latest']);
  assert.is(r2.code, 0, r2.stderr);
  assert.match(r2.stderr, /resumed from .*checkpoint-3 at step 3/);
  assert.equal(log(out).map((x) => x.step), [1, 2, 3, 4, 5]);
});

test('dreambooth into a folder that holds a run: refused before anything is written; --overwrite starts over (FOLIAR_BACKEND=cpu honoured)', () => {
  const out = join(tmp, 'db');
  const args = ['dreambooth', ...small, '--instance-dir', leaves, '--instance-prompt', 'a photo of a sks leaf', '--method', 'lora', '--rank', '2', '--max-train-steps', '2', '--checkpointing-steps', '2', '--out', out];
  const r = run(args);
  oneLineError(r, /db already holds a training run \(checkpoints\/, final\/, train\.jsonl\): continue it with --resume latest .*start over with --overwrite/);
  assert.is((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { maxTrainSteps: number }).maxTrainSteps, 5, "the old run's config.json is untouched");
  const r2 = run([...args, '--overwrite'], { viaEnv: true });
  assert.is(r2.code, 0, r2.stderr);
  assert.match(r2.stderr, /device: CPU/);
  assert.equal(log(out).map((x) => x.step), [1, 2]);
  assert.equal(readdirSync(join(out, 'checkpoints')), ['checkpoint-2'], "none of the old run's checkpoints left");
});

test('dreambooth from a Plant Pathology 2020 CSV (multiple_diseases) with textual inversion and prior preservation', async () => {
  const out = join(tmp, 'db-ti');
  const r = run(['dreambooth', ...small, '--instance-csv', join(pp, 'train.csv'), '--instance-class', 'multiple_diseases', '--instance-prompt', 'a photo of a <md> leaf',
    '--method', 'textual-inversion', '--token', '<md>', '--initializer-token', 'l', '--class-prompt', 'a photo of a leaf', '--num-class-images', '2', '--class-inference-steps', '2',
    '--max-train-steps', '2', '--checkpointing-steps', '0', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /2 instance images; method textual-inversion; prior preservation with 2 class images/);
  const emb = await readSafetensors(join(out, 'final', 'learned_embeds.safetensors'));
  assert.equal(emb.get('<md>')!.shape, [1, 16]);
  assert.ok(existsSync(join(out, 'class_images', 'class-0001-seed1.png')));
  const l = log(out);
  assert.is(l[0]!.lr, 5e-4, "textual inversion's default learning rate");
  assert.ok('prior_loss' in l[0]! && 'instance_loss' in l[0]!);
});

test('train-text-to-image: imagefolder from scratch (full) and CSV with a caption template (LoRA)', () => {
  const out = join(tmp, 't2i');
  const r = run(['train-text-to-image', ...small, '--data', captioned, '--max-train-steps', '3', '--train-batch-size', '2', '--checkpointing-steps', '0', '--validation-steps', '3', '--validation-inference-steps', '2', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  for (const f of ['final/model_index.json', 'final/unet/diffusion_pytorch_model.safetensors', 'validation/step-000000.png', 'validation/step-000003.png']) assert.ok(existsSync(join(out, f)), f);
  assert.is(log(out)[0]!.lr, 1e-4);
  const out2 = join(tmp, 't2i-csv');
  const r2 = run(['train-text-to-image', ...small, '--csv', join(pp, 'train.csv'), '--image-column', 'image_id', '--image-dir', 'images', '--image-ext', '.jpg',
    '--caption-template', 'a photo of a {label} leaf', '--method', 'lora', '--rank', '2', '--max-train-steps', '2', '--out', out2]);
  assert.is(r2.code, 0, r2.stderr);
  assert.match(r2.stderr, /5 captioned images; method lora/);
  assert.ok(existsSync(join(out2, 'final', 'pytorch_lora_weights.safetensors')));
  const cfg = JSON.parse(readFileSync(join(out2, 'config.json'), 'utf8')) as { command: string; captionTemplate: string };
  assert.is(cfg.command, 'train-text-to-image');
});

test('train-vae from scratch writes a diffusers VAE folder; the log has both loss terms', () => {
  const vcfg = join(tmp, 'vae.json');
  writeFileSync(vcfg, JSON.stringify({ block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, latent_channels: 4, down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'] }));
  const out = join(tmp, 'vae');
  const r = run(['train-vae', '--vae-config', vcfg, '--data', leaves, '--resolution', '16', '--max-train-steps', '3', '--reconstruction', 'mse', '--kl-weight', '1e-3', '--validation-steps', '3', '--no-progress', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  for (const f of ['final/config.json', 'final/diffusion_pytorch_model.safetensors', 'validation/step-000003.png']) assert.ok(existsSync(join(out, f)), f);
  const l = log(out);
  assert.is(l.length, 3);
  for (const x of l) assert.ok(Math.abs(x.loss! - (x.reconstruction! + 1e-3 * x.kl!)) < 1e-5 * x.loss!, 'loss = reconstruction + β·KL');
  const saved = JSON.parse(readFileSync(join(out, 'final', 'config.json'), 'utf8')) as { _class_name: string; block_out_channels: number[] };
  assert.is(saved._class_name, 'AutoencoderKL');
  assert.equal(saved.block_out_channels, [8, 16]);
});

test('bad input: clear errors naming what is wrong', () => {
  const both = run(['dreambooth', ...small, '--instance-dir', leaves, '--instance-csv', join(pp, 'train.csv'), '--instance-prompt', 'x', '--out', join(tmp, 'e1')]);
  assert.is(both.code, 1);
  assert.match(both.stderr, /exactly one of --instance-dir or --instance-csv/);
  const noTok = run(['dreambooth', ...small, '--instance-dir', leaves, '--instance-prompt', 'x', '--method', 'textual-inversion', '--out', join(tmp, 'e2')]);
  assert.match(noTok.stderr, /needs --token/);
  const noClass = run(['dreambooth', ...small, '--instance-csv', join(pp, 'train.csv'), '--instance-class', 'blight', '--instance-prompt', 'x', '--out', join(tmp, 'e3')]);
  assert.match(noClass.stderr, /train\.csv has no column 'blight' \(columns: image_id, healthy, multiple_diseases, rust, scab\)/);
  const badMethod = run(['dreambooth', ...small, '--instance-dir', leaves, '--instance-prompt', 'x', '--method', 'dora', '--out', join(tmp, 'e4')]);
  assert.match(badMethod.stderr, /Allowed choices are full, lora, textual-inversion/);
  const noMeta = run(['train-text-to-image', ...small, '--data', leaves, '--out', join(tmp, 'e5')]);
  assert.match(noMeta.stderr, /has no metadata\.jsonl/);
  const noLora = run(['generate-set', '--model', 'tiny', '--prompt', 'x', '--count', '2', '--lora', join(tmp, 'nope'), '--out', join(tmp, 'e6')]);
  assert.is(noLora.code, 1);
  assert.match(noLora.stderr, /nope.*pytorch_lora_weights\.safetensors/);
});

test('errors are one line with exit code 1 (the stack only with --verbose); sizes and counts of 0 are refused up front', () => {
  const gen = ['generate', '--model', 'tiny', '--prompt', 'x', '--steps', '1', '--out', join(tmp, 'g0')];
  oneLineError(run([...gen, '--height', '0']), /--height.*'0' is not a positive integer/);
  oneLineError(run([...gen, '--num-images', '0']), /--num-images.*'0' is not a positive integer/);
  oneLineError(run([...gen, '--width', '-8']), /--width.*not a positive integer/);
  oneLineError(run(['generate-set', '--model', 'tiny', '--prompt', 'x', '--count', '0', '--out', join(tmp, 'g1')]), /--count/);
  oneLineError(run(['train-vae', '--data', leaves, '--train-batch-size', '0', '--out', join(tmp, 'g2')]), /--train-batch-size/);
  oneLineError(run(['generate', '--bogus']), /required option '--model <dir>' not specified \(see --help\)/);
  oneLineError(run([...gen, '--bogus']), /unknown option '--bogus' \(see --help\)/);
  oneLineError(run(['--backend', 'tpu', 'create-tiny', '--out', join(tmp, 'g3')]), /--backend must be webgpu, cpu or auto, got 'tpu'/);
  const bad = ['dreambooth', ...small, '--instance-dir', leaves, '--instance-csv', join(pp, 'train.csv'), '--instance-prompt', 'x', '--out', join(tmp, 'e1')];
  oneLineError(run(bad), /exactly one of --instance-dir or --instance-csv/);
  const verbose = run([...bad, '--verbose']);
  assert.is(verbose.code, 1);
  assert.match(verbose.stderr, /\n\s+at /, 'a stack trace with --verbose');
  assert.ok(existsSync(join(tmp, 'g0')) === false, 'nothing was generated');
});

test('generate-set writes one file per seed, seeds.jsonl and a preview; a re-run keeps what is there', () => {
  const out = join(tmp, 'set');
  const args = ['generate-set', '--model', 'tiny', '--prompt', 'a photo of a sks leaf', '--height', '16', '--width', '16', '--steps', '2', '--batch-size', '2', '--seed', '7', '--out', out];
  const r = run([...args, '--count', '3']);
  assert.is(r.code, 0, r.stderr);
  for (const f of ['img-0000-seed7.png', 'img-0001-seed8.png', 'img-0002-seed9.png', 'preview.png', 'seeds.jsonl']) assert.ok(existsSync(join(out, f)), f);
  assert.match(r.stderr, /3 new image\(s\), 0 already there/);
  const r2 = run([...args, '--count', '4']);
  assert.match(r2.stderr, /1 new image\(s\), 3 already there/);
});

test.run();
