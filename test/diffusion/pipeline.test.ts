/**
 * StableDiffusionPipeline on a tiny random pipeline: output shapes and range, seed determinism, the
 * classifier-free-guidance batch and combination (checked against a scheduler step done by hand),
 * WebGPU against CPU, save → fromPretrained round trip, and tokenizer save/reload.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import {
  StableDiffusionPipeline, CLIPTokenizer, DDIMScheduler, DDPMScheduler, PNDMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler, generateImageSet, type UNet2DConditionModel,
} from '@foliar/diffusion';
import { readPng } from '@foliar/report';
import { readdirSync } from 'node:fs';
import { setup, teardown, backends, requireGpu, assertClose, assertExact } from '../helpers.js';
import { tinyPipeline } from './fixtures.js';

const test = suite('stable diffusion pipeline');
let dir = '';
let pipe: StableDiffusionPipeline;
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-pipe-'));
  pipe = tinyPipeline();
});
test.after(() => {
  pipe.dispose();
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

const opts = { numInferenceSteps: 4, height: 16, width: 16 };

test('generate: image and latent shapes, values in [0, 1], one image per prompt × numImagesPerPrompt', async () => {
  const r = await pipe.generate({ ...opts, prompt: ['a leaf', 'rust'], numImagesPerPrompt: 2, seed: 1 });
  assert.equal(r.images.shape, [4, 3, 16, 16]);
  assert.equal(r.latents.shape, [4, 4, 8, 8]);
  const d = await r.images.data();
  let lo = Infinity, hi = -Infinity;
  for (const v of d) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  assert.ok(lo >= 0 && hi <= 1 && hi > lo, `range [${lo}, ${hi}]`);
  r.images.dispose();
  r.latents.dispose();
  let err = '';
  await pipe.generate({ ...opts, prompt: 'x', height: 15 }).catch((e: Error) => (err = e.message));
  assert.match(err, /multiples of 2, got 15x16/);
});

test('generate: same seed → identical images; another seed → different', async () => {
  const a = await pipe.generate({ ...opts, prompt: 'a leaf', seed: 7 });
  const b = await pipe.generate({ ...opts, prompt: 'a leaf', seed: 7 });
  const c = await pipe.generate({ ...opts, prompt: 'a leaf', seed: 8 });
  const [da, db, dc] = [await a.images.data(), await b.images.data(), await c.images.data()];
  assertExact(da, db, 'same seed');
  assert.ok(da.some((v, i) => Math.abs(v - dc[i]!) > 1e-3), 'a different seed changes the image');
  for (const r of [a, b, c]) {
    r.images.dispose();
    r.latents.dispose();
  }
});

test('classifier-free guidance: UNet batch [uncond, cond] with the negative prompt; ε = u + g·(c − u)', async () => {
  const g = 5;
  const unet = pipe.unet as UNet2DConditionModel;
  const realForward = unet.forward.bind(unet);
  // copies kept out of the pipeline's tidy scopes, read after the run
  const contexts: ft.Tensor[] = [];
  unet.forward = (x, t, ctx) => {
    contexts.push(ft.keep(ctx.clone()));
    return realForward(x, t, ctx);
  };
  let kept: { input: ft.Tensor; output: ft.Tensor } | null = null;
  const latents = ft.randn([1, 4, 8, 8], { generator: new ft.Generator(3), backend: pipe.backend });
  const r = await pipe.generate({
    ...opts,
    numInferenceSteps: 1,
    prompt: 'a leaf',
    negativePrompt: 'blurry',
    guidanceScale: g,
    latents,
    onUNet: ({ input, output }) => {
      kept = { input: ft.keep(input.clone()), output: ft.keep(output.clone()) };
    },
  });
  unet.forward = realForward;
  assert.ok(kept, 'onUNet called');
  const k = kept as unknown as { input: ft.Tensor; output: ft.Tensor };
  const inShape = [...k.input.shape];
  const input = (await k.input.data()) as Float32Array, output = (await k.output.data()) as Float32Array;
  k.input.dispose();
  k.output.dispose();
  assert.equal(inShape, [2, 4, 8, 8], 'CFG doubles the batch');
  const half = input.length / 2;
  assertExact(input.subarray(0, half), input.subarray(half), 'both halves see the same latents');
  // the context: [negative prompt, prompt]
  const neg = pipe.encodeText(['blurry']), pos = pipe.encodeText(['a leaf']);
  const ctxRef = new Float32Array([...(await neg.data()), ...(await pos.data())]);
  await assertClose(contexts[0]!, ctxRef, { rtol: 1e-6, atol: 1e-6, msg: 'UNet context = [negative, prompt]' });
  for (const t of contexts) t.dispose();
  neg.dispose();
  pos.dispose();
  // redo the single DDIM step by hand from the recorded UNet output
  const u = output.subarray(0, half), c = output.subarray(half);
  const eps = ft.tensor(u.map((v, i) => v + g * (c[i]! - v)), { shape: [1, 4, 8, 8], backend: pipe.backend });
  const s = new DDIMScheduler(pipe.scheduler.config);
  s.setTimesteps(1);
  const step = s.step(eps, s.timesteps[0]!, latents);
  await assertClose(r.latents, step.prevSample, { rtol: 1e-5, atol: 1e-6, msg: 'latents after the guided step' });
  // guidance 1: no CFG, batch of one
  let shape1: number[] = [];
  const r1 = await pipe.generate({ ...opts, numInferenceSteps: 1, prompt: 'a leaf', guidanceScale: 1, onUNet: ({ input }) => (shape1 = [...input.shape]) });
  assert.equal(shape1, [1, 4, 8, 8]);
  for (const t of [r.images, r.latents, r1.images, r1.latents, eps, step.prevSample, latents]) t.dispose();
  step.predOriginalSample?.dispose();
});

test('WebGPU and CPU generate the same image', async () => {
  requireGpu('WebGPU vs CPU generation');
  const { cpu } = backends();
  const a = await pipe.generate({ ...opts, prompt: 'a rusty leaf', seed: 4 });
  const other = tinyPipeline();
  await other.textEncoder.to(cpu);
  await other.vae.to(cpu);
  await other.unet.to(cpu);
  const b = await other.generate({ ...opts, prompt: 'a rusty leaf', seed: 4 });
  assert.is(b.images.backend, cpu);
  await assertClose(a.images, b.images, { rtol: 1e-3, atol: 1e-3, msg: 'WebGPU vs CPU images' });
  other.dispose();
  for (const t of [a.images, a.latents, b.images, b.latents]) t.dispose();
});

test('save(dir) then fromPretrained(dir) reproduces the same image', async () => {
  const out = join(dir, 'tiny');
  await pipe.save(out);
  const index = JSON.parse(readFileSync(join(out, 'model_index.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(index.scheduler, ['diffusers', 'DDIMScheduler']);
  const re = await StableDiffusionPipeline.fromPretrained(out);
  const a = await pipe.generate({ ...opts, prompt: 'a leaf with scab', seed: 2 });
  const b = await re.generate({ ...opts, prompt: 'a leaf with scab', seed: 2 });
  assertExact(await b.images.data(), await a.images.data(), 'reloaded pipeline image');
  re.dispose();
  for (const t of [a.images, a.latents, b.images, b.latents]) t.dispose();
});

test('tokenizer save/reload keeps ids, special tokens, max length and added tokens', async () => {
  const tok = CLIPTokenizer.byteLevel(['l e', 'le a', 'lea f</w>']);
  tok.modelMaxLength = 12;
  const [id] = tok.addTokens(['<diseased-leaf>']);
  const d = join(dir, 'tok');
  await tok.save(d);
  const re = await CLIPTokenizer.fromFolder(d);
  const texts = ['a photo of a <diseased-leaf> leaf', 'Leaf  LEAF\tleaf!', 'café ﬁ 12', ''];
  for (const t of texts) assert.equal(re.encode(t), tok.encode(t), `encode ${JSON.stringify(t)}`);
  assert.ok(tok.encode('a <diseased-leaf>').includes(id!), 'the added token is one id');
  assert.equal(re.call(texts, { padding: 'max_length', maxLength: re.modelMaxLength, truncation: true }), tok.call(texts, { padding: 'max_length', maxLength: 12, truncation: true }));
  assert.is(re.modelMaxLength, 12);
  assert.is(re.vocabSize, tok.vocabSize);
  assert.is(re.decode(re.encode('a <diseased-leaf> leaf'), { skipSpecialTokens: true }), tok.decode(tok.encode('a <diseased-leaf> leaf'), { skipSpecialTokens: true }));
});

test('generateImageSet: one seed per image (batch-independent), seeds.jsonl, a re-run continues the set', async () => {
  const out = join(dir, 'set');
  const o = { prompt: 'a photo of a sks leaf', seed: 40, numInferenceSteps: 3, guidanceScale: 2, height: 16, width: 16, outDir: out, quiet: true };
  const r = await generateImageSet(pipe, { ...o, count: 5, batchSize: 2 });
  assert.is(r.generated, 5);
  assert.equal(r.files.map((f) => f.split('/').pop()), ['img-0000-seed40.png', 'img-0001-seed41.png', 'img-0002-seed42.png', 'img-0003-seed43.png', 'img-0004-seed44.png']);
  // image 3 (second item of the second batch) is what generate makes alone with seed 43
  const alone = await pipe.generate({ prompt: o.prompt, seed: 43, numInferenceSteps: 3, guidanceScale: 2, height: 16, width: 16 });
  const want = await alone.images.dataF32();
  alone.images.dispose();
  alone.latents.dispose();
  const got = readPng(r.files[3]!);
  let maxDiff = 0;
  for (let c = 0; c < 3; c++) for (let k = 0; k < 256; k++) maxDiff = Math.max(maxDiff, Math.abs(got.data[k * 3 + c]! - Math.round(want[c * 256 + k]! * 255)));
  assert.ok(maxDiff <= 1, `image 3 differs from generate({ seed: 43 }) by ${maxDiff}/255`);
  const other = readPng(r.files[2]!);
  assert.ok(other.data.some((v, k) => Math.abs(v - got.data[k]!) > 8), 'different seeds give different images');
  // a larger count reuses the files on disk and only makes the new ones
  const before = readFileSync(r.files[0]!);
  const r2 = await generateImageSet(pipe, { ...o, count: 7, batchSize: 4 });
  assert.equal([r2.generated, r2.reused], [2, 5]);
  assert.equal(readFileSync(r.files[0]!), before);
  const seeds = readFileSync(join(out, 'seeds.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seed: number });
  assert.equal(seeds.map((s) => s.seed), [40, 41, 42, 43, 44, 45, 46]);
  assert.ok(!readdirSync(out).some((f) => f.includes('.tmp-')), 'no temporary files left');
  let msg = '';
  await generateImageSet(pipe, { ...o, count: 0 }).catch((e: Error) => (msg = e.message));
  assert.match(msg, /count must be a positive integer/);
});


test('every scheduler runs the pipeline for several steps: multistep history outlives the step loop\'s tidy(), and repeated calls leak nothing', async () => {
  // DPM-Solver++ and PNDM keep earlier model outputs across steps; the pipeline steps inside tidy(),
  // which once disposed that history (a "used after dispose" at the second step)
  const schedulers = [
    new DDIMScheduler(pipe.scheduler.config), new DDPMScheduler(pipe.scheduler.config), new PNDMScheduler(pipe.scheduler.config),
    new EulerDiscreteScheduler(pipe.scheduler.config), new DPMSolverMultistepScheduler(pipe.scheduler.config),
  ];
  const own = pipe.scheduler;
  try {
    for (const s of schedulers) {
      pipe.scheduler = s;
      const run = async () => {
        const r = await pipe.generate({ ...opts, numInferenceSteps: 5, prompt: 'a leaf', seed: 3 });
        const d = await r.images.data();
        r.images.dispose();
        r.latents.dispose();
        return d;
      };
      const a = await run();
      const live = ft.memory().liveBuffers;
      const b = await run();
      assert.equal(ft.memory().liveBuffers, live, `${s.constructor.name}: live buffers after a second generate`);
      assert.ok(a.every((v) => Number.isFinite(v)), `${s.constructor.name}: finite image`);
      assertExact(a, b, `${s.constructor.name}: deterministic`);
    }
  } finally {
    pipe.scheduler = own;
  }
});

test('guidanceRescale φ: the guided output rescaled to the conditional output\'s std (unbiased, per image) and mixed φ·rescaled + (1 − φ)·guided, as diffusers', async () => {
  const g = 4, phi = 0.7;
  const latents = ft.randn([2, 4, 8, 8], { generator: new ft.Generator(5), backend: pipe.backend });
  const r = await pipe.generate({ ...opts, numInferenceSteps: 1, prompt: ['a leaf', 'rust'], guidanceScale: g, guidanceRescale: phi, latents });
  // recompute from a plain guided run's UNet output
  let out: ft.Tensor | null = null;
  await pipe.generate({ ...opts, numInferenceSteps: 1, prompt: ['a leaf', 'rust'], guidanceScale: g, latents, onUNet: ({ output }) => (out = ft.keep(output.clone())) });
  const o = (await (out as unknown as ft.Tensor).data()) as Float32Array;
  (out as unknown as ft.Tensor).dispose();
  const n = 4 * 8 * 8;
  const epsRef = new Float32Array(2 * n);
  const std = (a: ArrayLike<number>) => {
    let m = 0;
    for (let i = 0; i < a.length; i++) m += a[i]! / a.length;
    let v = 0;
    for (let i = 0; i < a.length; i++) v += (a[i]! - m) ** 2;
    return Math.sqrt(v / (a.length - 1));
  };
  for (let b = 0; b < 2; b++) {
    const u = o.subarray(b * n, (b + 1) * n), c = o.subarray((2 + b) * n, (3 + b) * n);
    const guided = u.map((v, i) => v + g * (c[i]! - v));
    const k = std(c) / std(guided);
    for (let i = 0; i < n; i++) epsRef[b * n + i] = phi * guided[i]! * k + (1 - phi) * guided[i]!;
  }
  const s = new DDIMScheduler(pipe.scheduler.config);
  s.setTimesteps(1);
  const eps = ft.tensor(epsRef, { shape: [2, 4, 8, 8], backend: pipe.backend });
  const step = s.step(eps, s.timesteps[0]!, latents);
  await assertClose(r.latents, step.prevSample, { rtol: 1e-4, atol: 1e-5, msg: 'latents after the rescaled guided step' });
  let err = '';
  await pipe.generate({ ...opts, prompt: 'x', guidanceRescale: 1.5 }).catch((e: Error) => (err = e.message));
  assert.match(err, /guidanceRescale must be in \[0, 1\], got 1.5/);
  for (const t of [r.images, r.latents, eps, step.prevSample, latents]) t.dispose();
  step.predOriginalSample?.dispose();
});

test.run();
