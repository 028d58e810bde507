/**
 * The VAE and text-to-image trainers and the dataset readers: the VAE loss against a host computation
 * (L1/MSE + β·KL from the same sampled z), a short VAE run lowers the reconstruction loss,
 * text-to-image conditions each image on its own caption (each encoded once), the shared loop's run
 * folder (refusing another run's folder, --overwrite, cleanup and log repair after a kill),
 * CSV/imagefolder readers.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { AutoencoderKL, LoRA, imagesToTensor } from '@foliar/diffusion';
import { vaeLoss, initPosteriorLogvar, trainVAE, trainTextToImage, parseCsv, readCaptionedCsv, readCaptionedFolder, readClassImagesFromCsv, runTrainLoop, type TrainLoopOptions } from '../../packages/diffusion/src/training/index.js';
import { readSafetensors } from '@foliar/nn';
import { setup, teardown } from '../helpers.js';
import { tinyPipeline, leafImages } from './fixtures.js';

const test = suite('trainers and datasets');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-trainers-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

const vaeCfg = { block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, latent_channels: 4, down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'] };

test('VAE loss = reconstruction + β·KL, recomputed on the host from the same sampled latents', async () => {
  ft.manualSeed(2);
  const vae = new AutoencoderKL(vaeCfg);
  const x = imagesToTensor(leafImages(2, 16, 'scab'));
  for (const [rec, beta] of [['l1', 1e-6], ['mse', 0.05]] as const) {
    const r = ft.noGrad(() => vaeLoss(vae, x, new ft.Generator(9), { reconstruction: rec, klWeight: beta }));
    // the same draw: encode, z = mean + std·ε from a generator in the same state, decode
    const post = ft.noGrad(() => vae.encode(x));
    const z = post.sample(new ft.Generator(9));
    const y = ft.noGrad(() => vae.decode(z));
    const [xd, yd, m, lv] = await Promise.all([x.data(), y.data(), post.mean.data(), post.logvar.data()]);
    let recRef = 0;
    for (let i = 0; i < xd.length; i++) recRef += rec === 'l1' ? Math.abs(yd[i]! - xd[i]!) : (yd[i]! - xd[i]!) ** 2;
    recRef /= xd.length;
    let kl = 0;
    for (let i = 0; i < m.length; i++) kl += 0.5 * (m[i]! ** 2 + Math.exp(lv[i]!) - 1 - lv[i]!);
    kl /= 2; // summed over latent dims, averaged over the batch of 2
    const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-4 * Math.abs(b) + 1e-7, `${rec} ${what}: ${a} vs ${b}`);
    near(await r.logs.reconstruction.item(), recRef, 'reconstruction');
    near(await r.logs.kl.item(), kl, 'KL');
    near(await r.loss.item(), recRef + beta * kl, 'loss');
    for (const t of [r.loss, r.logs.reconstruction, r.logs.kl, z, y]) t.dispose();
    post.dispose();
  }
  x.dispose();
  vae.dispose();
});

test('VAE gradient term: mean |∇recon − ∇x| over horizontal and vertical neighbours, recomputed on the host', async () => {
  ft.manualSeed(3);
  const vae = new AutoencoderKL(vaeCfg);
  const x = imagesToTensor(leafImages(2, 16, 'rust'));
  const plain = ft.noGrad(() => vaeLoss(vae, x, new ft.Generator(5)));
  const r = ft.noGrad(() => vaeLoss(vae, x, new ft.Generator(5), { gradientWeight: 0.5 }));
  const y = ft.noGrad(() => vae.decode(vae.encode(x).sample(new ft.Generator(5))));
  const [xd, yd] = await Promise.all([x.data(), y.data()]);
  const [n, c, h, w] = x.shape as number[];
  let gx = 0, gy = 0;
  const at = (d: ArrayLike<number>, b: number, k: number, i: number, j: number) => d[((b * c! + k) * h! + i) * w! + j]!;
  for (let b = 0; b < n!; b++) for (let k = 0; k < c!; k++) for (let i = 0; i < h!; i++) for (let j = 0; j < w!; j++) {
    if (j + 1 < w!) gx += Math.abs(at(yd, b, k, i, j + 1) - at(yd, b, k, i, j) - (at(xd, b, k, i, j + 1) - at(xd, b, k, i, j)));
    if (i + 1 < h!) gy += Math.abs(at(yd, b, k, i + 1, j) - at(yd, b, k, i, j) - (at(xd, b, k, i + 1, j) - at(xd, b, k, i, j)));
  }
  const g = gx / (n! * c! * h! * (w! - 1)) + gy / (n! * c! * (h! - 1) * w!);
  const got = await r.logs.gradient!.item();
  assert.ok(Math.abs(got - g) <= 1e-4 * g, `gradient term ${got} vs ${g}`);
  assert.ok(Math.abs((await r.loss.item()) - ((await plain.loss.item()) + 0.5 * g)) <= 1e-4 * g, 'loss = plain loss + weight · gradient term');
  assert.is(plain.logs.gradient, undefined, 'no gradient term by default');
  // identical images have no gradient-domain error
  const same = ft.noGrad(() => {
    const [a, b2] = [x, x];
    const d = a.narrow(3, 1, w! - 1).sub(a.narrow(3, 0, w! - 1)).sub(b2.narrow(3, 1, w! - 1).sub(b2.narrow(3, 0, w! - 1)));
    return d.abs().mean();
  });
  assert.is(await same.item(), 0);
  for (const t of [plain.loss, plain.logs.reconstruction, plain.logs.kl, r.loss, r.logs.reconstruction, r.logs.kl, r.logs.gradient!, y, x, same]) t.dispose();
  vae.dispose();
});

test('VAE low-pass term: mean |block average of recon − of x| at 2×2 and 4×4, recomputed on the host', async () => {
  ft.manualSeed(4);
  const vae = new AutoencoderKL(vaeCfg);
  const x = imagesToTensor(leafImages(2, 16, 'rust'));
  const plain = ft.noGrad(() => vaeLoss(vae, x, new ft.Generator(6)));
  const r = ft.noGrad(() => vaeLoss(vae, x, new ft.Generator(6), { lowPassWeight: 2 }));
  const y = ft.noGrad(() => vae.decode(vae.encode(x).sample(new ft.Generator(6))));
  const [xd, yd] = await Promise.all([x.data(), y.data()]);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  let ref = 0;
  for (const k of [2, 4]) {
    let s = 0;
    for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let i = 0; i < h; i += k) for (let j = 0; j < w; j += k) {
      let d = 0;
      for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) {
        const idx = ((b * c + ch) * h + i + u) * w + j + v;
        d += yd[idx]! - xd[idx]!;
      }
      s += Math.abs(d / (k * k));
    }
    ref += s / (n * c * (h / k) * (w / k));
  }
  const got = await r.logs.lowPass!.item();
  assert.ok(Math.abs(got - ref) <= 1e-4 * ref, `low-pass term ${got} vs ${ref}`);
  assert.ok(Math.abs((await r.loss.item()) - ((await plain.loss.item()) + 2 * ref)) <= 1e-4 * ref, 'loss = plain loss + weight · low-pass term');
  assert.is(plain.logs.lowPass, undefined, 'no low-pass term by default');
  for (const t of [plain.loss, plain.logs.reconstruction, plain.logs.kl, r.loss, r.logs.reconstruction, r.logs.kl, r.logs.lowPass!, y, x]) t.dispose();
  vae.dispose();
});

test('initPosteriorLogvar shifts the log-variance by the bias change, leaves the mean alone, refuses out-of-range values', async () => {
  ft.manualSeed(5);
  const vae = new AutoencoderKL(vaeCfg);
  const x = imagesToTensor(leafImages(1, 16, 'scab'));
  const before = ft.noGrad(() => vae.encode(x));
  const oldBias = await vae.stateDict().get('quant_conv.bias')!.dataF32();
  await initPosteriorLogvar(vae, -8);
  const after = ft.noGrad(() => vae.encode(x));
  const [m0, m1, l0, l1] = await Promise.all([before.mean.dataF32(), after.mean.dataF32(), before.logvar.dataF32(), after.logvar.dataF32()]);
  const L = vaeCfg.latent_channels, hw = l0.length / L;
  for (let i = 0; i < m0.length; i++) assert.ok(Math.abs(m0[i]! - m1[i]!) < 1e-6, 'mean unchanged');
  for (let i = 0; i < l0.length; i++) {
    const ch = Math.floor(i / hw);
    assert.ok(Math.abs(l1[i]! - l0[i]! - (-8 - oldBias[L + ch]!)) < 1e-4, `logvar[${i}] moved by the bias change`);
  }
  let refused = '';
  await initPosteriorLogvar(vae, -31).catch((e: Error) => (refused = e.message));
  assert.match(refused, /\[-30, 20\]/);
  before.dispose();
  after.dispose();
  x.dispose();
  vae.dispose();
});

test('trainVAE on random crops: same crops after a resume, bad crop sizes refused', async () => {
  const run = async (out: string, steps: number, resume: boolean) => {
    ft.manualSeed(6);
    const vae = new AutoencoderKL(vaeCfg);
    const r = await trainVAE(vae, { images: leafImages(3, 16, 'scab'), resolution: 16, cropSize: 8, gradientWeight: 1, learningRate: 3e-3, maxTrainSteps: steps, trainBatchSize: 2, outputDir: out, quiet: true, checkpointingSteps: 3, resumeFrom: resume ? 'latest' : null, seed: 1 });
    const w = await vae.encoder.convIn.weight.data();
    vae.dispose();
    return { losses: r.losses, w: Array.from(w) };
  };
  const whole = await run(join(dir, 'vae-crop-a'), 6, false);
  await run(join(dir, 'vae-crop-b'), 3, false);
  const resumed = await run(join(dir, 'vae-crop-b'), 6, true);
  assert.equal(resumed.w, whole.w, 'resumed weights equal the uninterrupted run');
  assert.equal(resumed.losses.slice(-3), whole.losses.slice(-3), 'the same crops after the resume');
  for (const bad of [3, 7, 32, 0]) {
    const vae = new AutoencoderKL(vaeCfg);
    try {
      await trainVAE(vae, { images: leafImages(1, 16, 'scab'), resolution: 16, cropSize: bad, maxTrainSteps: 1, outputDir: join(dir, `vae-bad-${bad}`), quiet: true });
      assert.unreachable(`cropSize ${bad} accepted`);
    } catch (e) {
      assert.match((e as Error).message, /cropSize must be a multiple of 2/, `cropSize ${bad}`);
    } finally {
      vae.dispose();
    }
  }
});

test('trainVAE: a short run lowers the reconstruction loss and saves a loadable diffusers VAE', async () => {
  ft.manualSeed(4);
  const vae = new AutoencoderKL(vaeCfg);
  const out = join(dir, 'vae');
  const r = await trainVAE(vae, { images: leafImages(4, 16, 'rust'), resolution: 16, learningRate: 3e-3, maxTrainSteps: 40, trainBatchSize: 2, outputDir: out, quiet: true });
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(r.losses.slice(0, 5)), last = mean(r.losses.slice(-5));
  assert.ok(last < 0.7 * first, `reconstruction loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  const { loadVAE } = await import('@foliar/diffusion');
  const re = await loadVAE(join(out, 'final'));
  const a = await vae.encoder.convIn.weight.data(), b = await re.encoder.convIn.weight.data();
  assert.equal(Array.from(b), Array.from(a));
  re.dispose();
  vae.dispose();
});

test('trainVAE trainEncoder false: the decoder learns, the encoder and so every latent stay bit for bit; initialLogvar refused', async () => {
  ft.manualSeed(8);
  const vae = new AutoencoderKL(vaeCfg);
  const x = imagesToTensor(leafImages(2, 16, 'rust'));
  const snapshot = async () => new Map(await Promise.all([...vae.namedParameters()].map(async ([k, t]) => [k, Array.from(await t.dataF32())] as const)));
  const before = await snapshot();
  const latentsOf = async () => {
    const m = ft.noGrad(() => ft.tidy(() => vae.encode(x).mean));
    const d = Array.from(await m.dataF32());
    m.dispose();
    return d;
  };
  const latents0 = await latentsOf();
  const r = await trainVAE(vae, { images: leafImages(4, 16, 'rust'), resolution: 16, learningRate: 3e-3, maxTrainSteps: 30, trainBatchSize: 2, outputDir: join(dir, 'vae-dec'), quiet: true, trainEncoder: false, checkpointingSteps: 30 });
  const after = await snapshot();
  let decoderMoved = 0;
  for (const [k, w] of before) {
    const same = w.every((v, i) => v === after.get(k)![i]);
    if (k.startsWith('decoder.') || k.startsWith('post_quant_conv.')) decoderMoved += same ? 0 : 1;
    else assert.ok(same, `${k} changed in a decoder fine-tune`);
  }
  assert.ok(decoderMoved > 0, 'the decoder trained');
  assert.equal(await latentsOf(), latents0, 'the latents are unchanged');
  const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
  assert.ok(mean(r.losses.slice(-5)) < mean(r.losses.slice(0, 5)), `loss ${mean(r.losses.slice(0, 5)).toFixed(3)} → ${mean(r.losses.slice(-5)).toFixed(3)}`);
  // the checkpoint holds what trained, nothing of the encoder
  const held = await readSafetensors(join(dir, 'vae-dec', 'checkpoints', 'checkpoint-30', 'trained.safetensors'));
  assert.ok([...held.keys()].every((k) => k.startsWith('decoder.') || k.startsWith('post_quant_conv.')), [...held.keys()].join(', '));
  let msg = '';
  await trainVAE(vae, { images: leafImages(1, 16, 'rust'), resolution: 16, maxTrainSteps: 1, outputDir: join(dir, 'vae-dec-bad'), quiet: true, trainEncoder: false, initialLogvar: -8 }).catch((e: Error) => (msg = e.message));
  assert.match(msg, /initialLogvar changes the encoder/);
  x.dispose();
  vae.dispose();
});

test('trainTextToImage: each image is conditioned on its own caption, each caption encoded once', async () => {
  const pipe = tinyPipeline();
  const encoded: string[] = [];
  const enc = pipe.encodeText.bind(pipe);
  pipe.encodeText = (p: string[]) => {
    encoded.push(...p);
    return enc(p);
  };
  const imgs = leafImages(3, 16, 'healthy');
  const caps = ['a healthy leaf', 'a green leaf', 'a healthy leaf'];
  const lora = new LoRA({ rank: 2 });
  const r = await trainTextToImage(pipe, { examples: imgs.map((image, i) => ({ image, caption: caps[i]! })), resolution: 16, method: lora, maxTrainSteps: 6, trainBatchSize: 2, outputDir: join(dir, 't2i'), quiet: true });
  assert.is(r.steps, 6);
  assert.equal([...encoded].sort(), ['a green leaf', 'a healthy leaf']);
  lora.dispose();
  pipe.dispose();
});

// ---------------------------------------------------------------- the loop's run folder (a 4-parameter model: fast)

/** runTrainLoop on a tiny quadratic; `failAt` throws after that step is logged (a crash). */
async function quadratic(outputDir: string, o: Partial<TrainLoopOptions> & { failAt?: number } = {}) {
  const w = ft.keep(ft.zeros([4]).requiresGrad_(true));
  const target = ft.keep(ft.tensor([1, -2, 3, 0.5]));
  const { failAt, ...opts } = o;
  try {
    return await runTrainLoop(
      { outputDir, maxTrainSteps: 6, learningRate: 0.1, checkpointingSteps: 2, quiet: true, ...opts, ...(failAt ? { onStep: ({ step }: { step: number }) => { if (step === failAt) throw new Error('killed'); } } : {}) },
      { label: 'quadratic', params: [w], stateDict: () => new Map([['w', w]]), loss: (_k, gen) => w.sub(target).square().sum().add(ft.randn([1], { generator: gen }).mul(0.01).sum()) },
    );
  } finally {
    w.dispose();
    target.dispose();
  }
}
const steps = (out: string) => readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  return assert.unreachable('expected a rejection') as never;
}

test('runTrainLoop refuses a folder holding a run unless resuming or overwrite: true (which clears it); config.json alone does not count', async () => {
  const out = join(dir, 'refuse');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'config.json'), '{}'); // callers write their config before training
  await quadratic(out);
  assert.equal(readdirSync(join(out, 'checkpoints')).sort(), ['checkpoint-2', 'checkpoint-4', 'checkpoint-6']);
  const msg = await rejection(quadratic(out, { maxTrainSteps: 2 }));
  for (const part of [out, 'checkpoints/', 'train.jsonl', '--resume latest', "resumeFrom: 'latest'", '--overwrite', 'overwrite: true']) assert.ok(msg.includes(part), `error names ${part}: ${msg}`);
  assert.equal(steps(out), [1, 2, 3, 4, 5, 6], 'the refused run wrote nothing');
  // final/ alone counts too
  const fin = join(dir, 'refuse-final');
  mkdirSync(join(fin, 'final'), { recursive: true });
  writeFileSync(join(fin, 'final', 'model_index.json'), '{}');
  assert.match(await rejection(quadratic(fin)), /final\//);
  // overwrite: a fresh run, nothing of the old one left to mix with
  const r = await quadratic(out, { maxTrainSteps: 3, checkpointingSteps: 1, checkpointsTotalLimit: 5, overwrite: true });
  assert.is(r.steps, 3);
  assert.equal(steps(out), [1, 2, 3]);
  assert.equal(readdirSync(join(out, 'checkpoints')).sort(), ['checkpoint-1', 'checkpoint-2', 'checkpoint-3']);
  assert.ok(existsSync(join(out, 'config.json')), 'config.json kept');
  assert.match(await rejection(quadratic(out, { resumeFrom: 'latest', overwrite: true })), /exclude each other/);
});

test('runTrainLoop after a kill: stale temps cleaned, log lines past the checkpoint dropped, the result equals an uninterrupted run', async () => {
  const whole = join(dir, 'whole');
  const a = await quadratic(whole);
  const out = join(dir, 'killed');
  assert.match(await rejection(quadratic(out, { failAt: 5 })), /killed/);
  assert.equal(steps(out), [1, 2, 3, 4, 5]);
  const dead = spawnSync('true').pid!;
  const stale = [join(out, 'checkpoints', `checkpoint-6.partial-${dead}`), join(out, `train.jsonl.tmp-${dead}-0a1b`), join(out, 'final', `weights.safetensors.tmp-${dead}-ff`)];
  mkdirSync(stale[0]!, { recursive: true });
  writeFileSync(join(stale[0]!, 'trained.safetensors'), 'partial');
  mkdirSync(join(out, 'final'), { recursive: true });
  for (const f of stale.slice(1)) writeFileSync(f, 'partial');
  const b = await quadratic(out, { resumeFrom: 'latest' });
  assert.equal(steps(out), [1, 2, 3, 4, 5, 6], 'no repeated steps');
  for (const f of stale) assert.not.ok(existsSync(f), `${f} cleaned`);
  assert.equal(b.losses, a.losses);
  const row = (o: string) => readFileSync(join(o, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => { const { seconds: _s, live_buffers: _b, peak_bytes: _p, ...x } = JSON.parse(l) as Record<string, number>; return x; });
  assert.equal(row(out), row(whole));

  // killed before the first checkpoint: checkpoints/ exists already, so callers that resume when it
  // does (the study, dreambooth-leaves) restart it instead of being refused, with a clean log
  const early = join(dir, 'early');
  await rejection(quadratic(early, { failAt: 1 }));
  assert.ok(existsSync(join(early, 'checkpoints')));
  await quadratic(early, { resumeFrom: existsSync(join(early, 'checkpoints')) ? 'latest' : null });
  assert.equal(steps(early), [1, 2, 3, 4, 5, 6]);
});

test('dataset readers: quoted CSV fields, caption templates, PP2020 class rows, imagefolder; errors name the row', async () => {
  assert.equal(parseCsv('a,b\r\n"x, ""y""",2\n\n3,4'), [['a', 'b'], ['x, "y"', '2'], ['3', '4']]);
  const d = join(dir, 'csv');
  mkdirSync(join(d, 'images'), { recursive: true });
  for (const n of ['A', 'B', 'C']) writeFileSync(join(d, 'images', `${n}.jpg`), '');
  writeFileSync(join(d, 'train.csv'), 'image_id,healthy,multiple_diseases,rust,scab\nA,0,1,0,0\nB,1,0,0,0\nC,0,1,0,0\n');
  const caps = await readCaptionedCsv(join(d, 'train.csv'), { imageColumn: 'image_id', imageDir: 'images', imageExt: '.jpg', captionTemplate: 'a photo of a {label} leaf' });
  assert.equal(caps.map((c) => c.caption), ['a photo of a multiple diseases leaf', 'a photo of a healthy leaf', 'a photo of a multiple diseases leaf']);
  assert.equal(caps[1]!.image, join(d, 'images', 'B.jpg'));
  assert.equal(await readClassImagesFromCsv(join(d, 'train.csv'), 'multiple_diseases'), [join(d, 'images', 'A.jpg'), join(d, 'images', 'C.jpg')]);
  writeFileSync(join(d, 'bad.csv'), 'image_id,healthy,rust\nA,1,1\n');
  let msg = '';
  await readCaptionedCsv(join(d, 'bad.csv'), { imageColumn: 'image_id', captionTemplate: '{label}' }).catch((e: Error) => (msg = e.message));
  assert.match(msg, /bad\.csv row 2: 2 label columns hold 1/);
  writeFileSync(join(d, 'short.csv'), 'file_name,text\nA.jpg\n');
  await readCaptionedCsv(join(d, 'short.csv')).catch((e: Error) => (msg = e.message));
  assert.match(msg, /short\.csv row 2: 1 fields, the header has 2/);
  writeFileSync(join(d, 'images', 'metadata.jsonl'), '{"file_name": "A.jpg", "text": "a leaf"}\n{"file_name": "Z.jpg", "text": "x"}\n');
  await readCaptionedFolder(join(d, 'images')).catch((e: Error) => (msg = e.message));
  assert.match(msg, /metadata\.jsonl line 2: image .*Z\.jpg not found/);
});

test.run();
