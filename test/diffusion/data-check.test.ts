/**
 * The diffusion trainers check their images up front (issue 14, item 4): DreamBooth's instance images
 * and the class images a rerun reuses, text-to-image examples and VAE images are all decoded before
 * anything is generated, loaded or trained, and every missing or corrupt file comes in one
 * DatasetCheckError naming the file, where it was listed (CSV row, metadata.jsonl line) and its role.
 * Before, DreamBooth generated its class images first and then failed on the first bad instance image;
 * truncated JPEGs decoded half grey without an error; the CLIs stopped at the first missing file.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readdirSync, existsSync, readFileSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { DatasetCheckError } from '@foliar/nn';
import { LoRA, AutoencoderKL } from '@foliar/diffusion';
import { trainDreamBooth, trainTextToImage, trainVAE, imageFileProblem } from '../../packages/diffusion/src/training/index.js';
import { setup, teardown, repoRoot } from '../helpers.js';
import { tinyPipeline, leafImages } from './fixtures.js';

const test = suite('diffusion data check');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-diffusion-check-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

async function save(path: string, seed: number, format: 'png' | 'jpeg' = 'png'): Promise<string> {
  const img = leafImages(1, 24, 'rust', seed)[0]!;
  const s = sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } });
  await (format === 'png' ? s.png() : s.jpeg({ quality: 90 })).toFile(path);
  return path;
}
/** A JPEG cut in half: without sharp's failOn it decodes to a half-grey image and no error. */
async function truncated(path: string, seed: number): Promise<string> {
  await save(path, seed, 'jpeg');
  truncateSync(path, statSync(path).size >> 1);
  return path;
}

async function checkError(p: Promise<unknown>): Promise<DatasetCheckError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, DatasetCheckError, (e as Error).stack);
    return e as DatasetCheckError;
  }
  assert.unreachable('expected a DatasetCheckError');
  throw new Error('unreachable');
}

test('imageFileProblem: a good PNG/JPEG passes; missing, empty, text, truncated JPEG and cut PNG are named', async () => {
  const d = join(dir, 'kinds');
  mkdirSync(d);
  assert.is(await imageFileProblem(await save(join(d, 'ok.png'), 1)), null);
  assert.is(await imageFileProblem(await save(join(d, 'ok.jpg'), 2, 'jpeg')), null);
  assert.is(await imageFileProblem(join(d, 'missing.png')), 'file not found');
  writeFileSync(join(d, 'empty.png'), '');
  writeFileSync(join(d, 'text.jpg'), 'hello');
  const png = readFileSync(join(d, 'ok.png'));
  writeFileSync(join(d, 'cut.png'), png.subarray(0, png.length >> 1));
  for (const f of ['empty.png', 'text.jpg', 'cut.png', 'trunc.jpg']) {
    if (f === 'trunc.jpg') await truncated(join(d, f), 3);
    assert.match((await imageFileProblem(join(d, f))) ?? 'passed', /^does not decode: \S/, f);
  }
});

test('trainDreamBooth: bad instance images and a bad reused class image in one error, before any class image is generated or a step trained', async () => {
  const d = join(dir, 'db');
  mkdirSync(join(d, 'inst'), { recursive: true });
  const classDir = join(d, 'class');
  mkdirSync(classDir);
  const good = await save(join(d, 'inst', 'a.png'), 1);
  const trunc = await truncated(join(d, 'inst', 'b.jpg'), 2);
  const missing = join(d, 'inst', 'gone.png');
  writeFileSync(join(classDir, 'class-0000-seed0.png'), 'not a png');
  const out = join(d, 'out');
  const pipe = tinyPipeline();
  const lora = new LoRA({ rank: 2 });
  const err = await checkError(trainDreamBooth(pipe, {
    instanceImages: [good, trunc, missing, leafImages(1, 16)[0]!], instancePrompt: 'a sks leaf', classPrompt: 'a leaf', classImagesDir: classDir, numClassImages: 3,
    resolution: 16, method: lora, maxTrainSteps: 2, outputDir: out, quiet: true,
  }));
  assert.equal(err.problems.map((p) => [p.file, p.part]), [[trunc, 'instance image'], [missing, 'instance image'], [join(classDir, 'class-0000-seed0.png'), 'class image']]);
  assert.match(err.message, /^DreamBooth images: 3 problems found before training \(nothing was trained\):\n/);
  assert.is(err.problems[1]!.why, 'file not found');
  assert.equal(readdirSync(classDir), ['class-0000-seed0.png'], 'no class image generated');
  assert.not.ok(existsSync(join(out, 'checkpoints')) && readdirSync(join(out, 'checkpoints')).length, 'no checkpoint');
  assert.not.ok(existsSync(join(out, 'train.jsonl')), 'no step logged');
  lora.dispose?.();
  pipe.dispose();
});

test('trainTextToImage and trainVAE: every bad file listed with where it was listed', async () => {
  const d = join(dir, 't2i');
  mkdirSync(d);
  const a = await save(join(d, 'a.png'), 4), b = join(d, 'b.png'), c = await truncated(join(d, 'c.jpg'), 5);
  writeFileSync(b, '');
  const pipe = tinyPipeline();
  const lora = new LoRA({ rank: 2 });
  const examples = [a, b, c].map((image, i) => ({ image, caption: 'a leaf', listedAt: `meta.jsonl line ${i + 1}` }));
  const err = await checkError(trainTextToImage(pipe, { examples, resolution: 16, method: lora, maxTrainSteps: 2, outputDir: join(d, 'out'), quiet: true }));
  assert.equal(err.problems.map((p) => [p.file, p.line, p.part]), [[b, 'meta.jsonl line 2', 'example'], [c, 'meta.jsonl line 3', 'example']]);
  assert.ok(err.message.includes(`  ${b} (meta.jsonl line 2, example): does not decode`), err.message);
  lora.dispose?.();
  pipe.dispose();
  const vae = new AutoencoderKL({ block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, latent_channels: 4, down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'] });
  const verr = await checkError(trainVAE(vae, { images: [a, b, join(d, 'nope.png')], resolution: 16, maxTrainSteps: 2, outputDir: join(d, 'vae'), quiet: true }));
  assert.equal(verr.problems.map((p) => [p.file, p.why.replace(/:.*/, '')]), [[b, 'does not decode'], [join(d, 'nope.png'), 'file not found']]);
  assert.match(verr.message, /^VAE training images: 2 problems/);
  vae.dispose();
});

// ---- the CLI: checked before the model loads; the list on stderr, no stack

const cli = join(repoRoot, 'packages', 'diffusion', 'src', 'cli', 'main.ts');
function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, FOLIAR_BACKEND: 'cpu' };
  delete env.FOLIAR_DEBUG;
  const r = spawnSync(process.execPath, ['--conditions=foliar-source', '--import', 'tsx', cli, ...args], { cwd: repoRoot, encoding: 'utf8', env, timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
/** The error's lines: `foliar-diffuse: <what>: N problems …`, then one line per problem; no stack. */
function listed(r: { code: number; stderr: string }, head: RegExp, n: number): string[] {
  assert.is(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[0]!, head);
  assert.is(lines.length, n + 1, r.stderr);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack');
  assert.not.match(r.stderr, /device:/, 'failed before the backend and the model');
  return lines.slice(1);
}

test('foliar-diffuse dreambooth / train-text-to-image / train-vae: all bad images listed with CSV rows and metadata.jsonl lines, before the model loads', async () => {
  const d = join(dir, 'cli');
  mkdirSync(join(d, 'images'), { recursive: true });
  await save(join(d, 'images', 'T0.jpg'), 6, 'jpeg');
  await truncated(join(d, 'images', 'T1.jpg'), 7);
  await save(join(d, 'images', 'T3.jpg'), 8, 'jpeg');
  writeFileSync(join(d, 'train.csv'), 'image_id,healthy,multiple_diseases,rust,scab\nT0,0,1,0,0\nT1,0,1,0,0\nT2,0,1,0,0\nT3,1,0,0,0\n');
  const db = run(['dreambooth', '--model', 'tiny', '--instance-csv', join(d, 'train.csv'), '--instance-class', 'multiple_diseases', '--instance-prompt', 'a sks leaf', '--resolution', '16', '--out', join(d, 'db'), '--no-progress']);
  const dbLines = listed(db, /^foliar-diffuse: dreambooth images: 2 problems found before training \(nothing was trained\):$/, 2);
  assert.match(dbLines[0]!, new RegExp(`^  ${join(d, 'images', 'T1.jpg')} \\(${join(d, 'train.csv')} row 3, instance image\\): does not decode: `));
  assert.is(dbLines[1], `  ${join(d, 'images', 'T2.jpg')} (${join(d, 'train.csv')} row 4, instance image): file not found`);
  assert.not.ok(existsSync(join(d, 'db', 'checkpoints')), 'the output folder was not claimed');

  const cap = join(d, 'captioned');
  mkdirSync(cap);
  await save(join(cap, '0.png'), 9);
  writeFileSync(join(cap, '1.png'), 'x');
  writeFileSync(join(cap, 'metadata.jsonl'), ['0.png', '1.png', '2.png'].map((f) => JSON.stringify({ file_name: f, text: 'a leaf' })).join('\n') + '\n');
  const t2i = run(['train-text-to-image', '--model', 'tiny', '--data', cap, '--resolution', '16', '--out', join(d, 't2i'), '--no-progress']);
  const tLines = listed(t2i, /^foliar-diffuse: train-text-to-image examples: 2 problems/, 2);
  assert.match(tLines[0]!, new RegExp(`^  ${join(cap, '1.png')} \\(${join(cap, 'metadata.jsonl')} line 2, example\\): does not decode`));
  assert.is(tLines[1], `  ${join(cap, '2.png')} (${join(cap, 'metadata.jsonl')} line 3, example): file not found`);

  writeFileSync(join(d, 'vae.csv'), 'file_name\nimages/T0.jpg\nimages/T1.jpg\nimages/T9.jpg\n');
  const vae = run(['train-vae', '--csv', join(d, 'vae.csv'), '--resolution', '16', '--out', join(d, 'vae'), '--no-progress']);
  const vLines = listed(vae, /^foliar-diffuse: train-vae images: 2 problems/, 2);
  assert.match(vLines[0]!, /T1\.jpg \(.*vae\.csv row 3, image\): does not decode/);
  assert.match(vLines[1]!, /T9\.jpg \(.*vae\.csv row 4, image\): file not found/);
});

test.run();
