/**
 * The VAE's perceptual term (issue 11): LPIPS-style distance (unit-length feature vectors, squared
 * difference summed over channels, mean over batch and positions, summed over layers) recomputed on
 * the host; zero for identical images; the term's gradient reaches the VAE and not the frozen feature
 * net (a ResNet's early stages through `resnetFeatures`); a short trainVAE run with it leaves the
 * feature net's weights untouched, logs the term, and keeps live buffers and tensors flat.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { AutoencoderKL, imagesToTensor } from '@foliar/diffusion';
import { resnet18, resnetFeatures } from '@foliar/classifier';
import { vaeLoss, perceptualDistance, trainVAE } from '../../packages/diffusion/src/training/vae.js';
import { setup, teardown } from '../helpers.js';
import { leafImages } from './fixtures.js';

const test = suite('VAE perceptual term');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-vae-perceptual-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

const vaeCfg = { block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, latent_channels: 4, down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'] };

/** All weights and buffers of a module, flattened (to check that a frozen net did not move). */
async function snapshot(m: { stateDict(): Map<string, ft.Tensor> }): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of m.stateDict()) out.set(k, Float32Array.from(await t.dataF32()));
  return out;
}

test('distance recomputed on the host (identity features, two layers); zero for identical images', async () => {
  ft.manualSeed(1);
  const a = ft.randn([2, 3, 4, 5]), b = ft.randn([2, 3, 4, 5]);
  // two "layers": the image and its square, to check the sum over layers
  const feats = (x: ft.Tensor) => [x, x.square()];
  const d = ft.noGrad(() => perceptualDistance(feats, a, b));
  const same = ft.noGrad(() => perceptualDistance(feats, a, a));
  const [ad, bd] = [await a.dataF32(), await b.dataF32()];
  const [N, C, H, W] = [2, 3, 4, 5];
  let ref = 0;
  for (const f of [(v: number) => v, (v: number) => v * v]) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let p = 0; p < H * W; p++) {
      const at = (d: Float32Array, c: number) => f(d[(n * C + c) * H * W + p]!);
      let na = 0, nb = 0;
      for (let c = 0; c < C; c++) { na += at(ad, c) ** 2; nb += at(bd, c) ** 2; }
      na = Math.sqrt(na + 1e-8); nb = Math.sqrt(nb + 1e-8);
      for (let c = 0; c < C; c++) s += (at(ad, c) / na - at(bd, c) / nb) ** 2;
    }
    ref += s / (N * H * W);
  }
  const got = await d.item();
  assert.ok(Math.abs(got - ref) <= 1e-4 * ref, `distance ${got} vs host ${ref}`);
  assert.ok(Math.abs(await same.item()) < 1e-6, 'zero for identical images');
  for (const t of [a, b, d, same]) t.dispose();
});

test('resnetFeatures: early stages only, shapes, input range mapped to the classifier\'s normalisation, frozen', async () => {
  ft.manualSeed(2);
  const net = resnet18({ numClasses: 3 });
  const f = resnetFeatures(net, ['stem', 'layer1', 'layer2'], { inputRange: [-1, 1] });
  const g = resnetFeatures(net, ['layer1']);
  assert.ok(net.parameters().every((p) => !p.requiresGrad), 'parameters frozen');
  assert.not.ok(net.training, 'eval mode');
  const x = imagesToTensor(leafImages(2, 32, 'rust'));
  const fs = ft.noGrad(() => f(x));
  assert.equal(fs.map((t) => t.shape), [[2, 64, 16, 16], [2, 64, 8, 8], [2, 128, 4, 4]]);
  // the same layer1 from [0, 1] images
  const x01 = x.add(1).mul(0.5);
  const [l1] = ft.noGrad(() => g(x01));
  const [p, q] = [await fs[1]!.dataF32(), await l1!.dataF32()];
  let worst = 0;
  for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i]! - q[i]!));
  assert.ok(worst < 1e-3, `[-1, 1] input mapped like [0, 1]: max diff ${worst}`);
  for (const t of [...fs, x, x01, l1!]) t.dispose();
  net.dispose();
});

test('VAE loss with the term: logged, positive, loss = plain + weight·term; the gradient reaches the VAE and not the feature net', async () => {
  ft.manualSeed(3);
  const vae = new AutoencoderKL(vaeCfg);
  const net = resnet18({ numClasses: 3 });
  const features = resnetFeatures(net, ['stem', 'layer1'], { inputRange: [-1, 1] });
  const x = imagesToTensor(leafImages(2, 16, 'scab'));
  const plain = ft.noGrad(() => vaeLoss(vae, x, new ft.Generator(4)));
  const r = ft.noGrad(() => vaeLoss(vae, x, new ft.Generator(4), { perceptual: { weight: 0.5, features } }));
  const p = await r.logs.perceptual!.item();
  assert.ok(p > 0, `term ${p} > 0 for an untrained VAE`);
  const [l, l0] = [await r.loss.item(), await plain.loss.item()];
  assert.ok(Math.abs(l - (l0 + 0.5 * p)) <= 1e-4 * l, `loss ${l} = ${l0} + 0.5·${p}`);
  assert.is(plain.logs.perceptual, undefined, 'no term by default');
  // the term alone, backward: gradients on the VAE (decoder and encoder), none on the feature net
  vae.requiresGrad_(true);
  ft.tidy(() => {
    const z = vae.encode(x).sample(new ft.Generator(4));
    perceptualDistance(features, vae.decode(z), x).backward();
  });
  for (const w of [vae.decoder.convOut.weight, vae.encoder.convIn.weight]) {
    assert.ok(w.grad, 'VAE weight has a gradient');
    const gd = await w.grad!.dataF32();
    assert.ok(gd.some((v) => v !== 0), 'non-zero gradient');
  }
  assert.ok(net.parameters().every((q) => q.grad === null), 'no gradient on the feature net');
  for (const t of [plain.loss, plain.logs.reconstruction, plain.logs.kl, r.loss, r.logs.reconstruction, r.logs.kl, r.logs.perceptual!, x]) t.dispose();
  vae.dispose();
  net.dispose();
});

test('trainVAE with the term: feature net unchanged, term in train.jsonl, no buffer or tensor leak over 40 steps', async () => {
  ft.manualSeed(4);
  const vae = new AutoencoderKL(vaeCfg);
  const net = resnet18({ numClasses: 3 });
  const features = resnetFeatures(net, ['stem', 'layer1'], { inputRange: [-1, 1] });
  const before = await snapshot(net);
  const live: { buffers: number; tensors: number }[] = [];
  const out = join(dir, 'train');
  await trainVAE(vae, {
    images: leafImages(3, 16, 'rust'), resolution: 16, cropSize: 8, learningRate: 3e-3, maxTrainSteps: 40, trainBatchSize: 2, outputDir: out, quiet: true, seed: 1,
    perceptual: { weight: 1, features },
    onStep: () => {
      const m = ft.memory();
      live.push({ buffers: m.liveBuffers, tensors: m.liveTensors });
    },
  });
  const after = await snapshot(net);
  assert.equal([...after.keys()], [...before.keys()]);
  for (const [k, v] of before) assert.ok(Buffer.from(v.buffer).equals(Buffer.from(after.get(k)!.buffer)), `feature net's ${k} unchanged (weights and BatchNorm statistics)`);
  assert.ok(net.parameters().every((q) => q.grad === null), 'no gradient accumulated on the feature net');
  const rows = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((r) => 'loss' in r);
  assert.ok(rows.length > 0 && rows.every((r) => typeof r.perceptual === 'number' && r.perceptual > 0), 'perceptual term logged each step');
  // handles and buffers may only go down after warm-up (as dreambooth.test.ts's leak test)
  const tail = live.slice(3);
  for (let i = 1; i < tail.length; i++) {
    assert.ok(tail[i]!.buffers <= tail[i - 1]!.buffers, `live buffers grew at step ${i + 4}: ${tail[i - 1]!.buffers} → ${tail[i]!.buffers}`);
    assert.ok(tail[i]!.tensors <= tail[i - 1]!.tensors, `live tensors grew at step ${i + 4}: ${tail[i - 1]!.tensors} → ${tail[i]!.tensors}`);
  }
  vae.dispose();
  net.dispose();
});

test.run();
