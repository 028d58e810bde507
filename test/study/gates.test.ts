/**
 * The study's generator gates and drift measurements, on stand-ins that respond to their input: a
 * TinyResNet trained here for a few seconds on the procedural leaves (so it tells the classes apart),
 * `generate` functions that render leaves of a chosen class or noise, a real tiny AutoencoderKL and a
 * tiny SD pipeline. Exact arithmetic (thresholds, shares) is checked with a scorer whose
 * probabilities are a function of the image's mean colour.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { AdamW } from '@foliar/nn';
import { readPng } from '@foliar/report';
import {
  ResNet, TinyResNet, Rng, LEAF_CLASSES, evalTransform, normalizeToChw, renderLeaf, softmaxRows, type LeafLabel,
} from '@foliar/classifier';
import { AutoencoderKL, imagesToTensor } from '@foliar/diffusion';
import { setup, teardown, prng, assertClose, settledMemory } from '../helpers.js';
import { tinyPipeline } from '../diffusion/fixtures.js';
import {
  classifierScorer, meanNearestNeighbourDistance, nearestNeighbourDistances, pairedDistance, predictedClasses,
  type ImageScorer, type RgbImage,
} from '../../examples/study/features.js';
import {
  conditioningGate, dreamboothGate, generatorFromPipeline, keepThreshold, lostRows, psnrOf, sampleSeeds, vaeGate, verificationFilter, type Generate,
} from '../../examples/study/gates.js';
import { measureDrift, DEFAULT_PROBES } from '../../examples/study/drift.js';
import { labelledGrid, sideBySideGrid } from '../../examples/study/grids.js';
import type { GateEntry } from '../../examples/study/report-types.js';

const test = suite('study gates');
const CLASSES: string[] = [...LEAF_CLASSES];
const RARE = 'multiple_diseases';
const S = 32;
let dir = '';

test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-gates-'));
});
test.after(() => {
  trained?.model.dispose();
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- stand-ins

const leaf = (label: string, seed: number, size = S): RgbImage => {
  const img = renderLeaf({ label: label as LeafLabel, seed, width: size, height: size });
  return { width: img.width, height: img.height, data: img.data };
};
const leaves = (label: string, seeds: number[], size = S) => seeds.map((s) => leaf(label, s, size));
const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

/** A `generate` that renders a leaf of the class `classOf(prompt)` at each seed, logging the calls. */
function leafGenerator(classOf: (prompt: string) => string, calls: { prompt: string; seeds: number[] }[] = []): Generate {
  return async (prompt, seeds) => {
    calls.push({ prompt, seeds });
    return leaves(classOf(prompt), seeds);
  };
}
/** Seeded noise images, whatever the prompt. */
const noiseGenerator: Generate = async (_prompt, seeds) => seeds.map((s) => {
  const r = prng(s + 1);
  return { width: S, height: S, data: Uint8Array.from({ length: S * S * 3 }, () => Math.floor(r() * 256)) };
});
/** "a photo of a rust leaf" → rust; anything else → healthy. */
const promptClass = (p: string) => CLASSES.find((c) => p.includes(` ${c} `)) ?? 'healthy';
const classPrompts = Object.fromEntries(CLASSES.map((c) => [c, `a photo of a ${c} leaf`]));

const solid = (r: number, g: number, b: number, size = 4): RgbImage => ({
  width: size, height: size, data: Uint8Array.from({ length: size * size * 3 }, (_, i) => [r, g, b][i % 3]!),
});
/**
 * P(rare) = mean red / 255, the rest shared equally; features = mean (R, G, B) / 255. Deterministic
 * and exact, so thresholds and shares can be checked by hand.
 */
function colourScorer(): ImageScorer {
  const rare = CLASSES.indexOf(RARE);
  const means = (imgs: RgbImage[]) => imgs.map((im) => {
    const m = [0, 0, 0];
    for (let i = 0; i < im.data.length; i++) m[i % 3]! += im.data[i]! / 255;
    return m.map((v) => v / (im.width * im.height));
  });
  const probabilities = async (imgs: RgbImage[]) => Float32Array.from(means(imgs).flatMap(([r]) => CLASSES.map((_, c) => (c === rare ? r! : (1 - r!) / 3))));
  return { classNames: CLASSES, dim: 3, probabilities, features: async (imgs) => Float32Array.from(means(imgs).flat()) };
}
/** Ignores its input: uniform probabilities (argmax: class 0), zero features. */
const constantScorer: ImageScorer = {
  classNames: CLASSES,
  dim: 2,
  probabilities: async (imgs) => new Float32Array(imgs.length * CLASSES.length).fill(1 / CLASSES.length),
  features: async (imgs) => new Float32Array(imgs.length * 2),
};

let trained: { model: TinyResNet; scorer: ImageScorer } | null = null;
/**
 * A TinyResNet trained on freshly rendered 32 px leaves (200 steps of 32, cosine LR): about 80%
 * accurate on new leaves, rust and multiple_diseases the most confused.
 */
async function leafScorer(): Promise<ImageScorer> {
  if (trained) return trained.scorer;
  ft.manualSeed(0);
  const model = new TinyResNet(CLASSES.length);
  const opt = new AdamW(model.parameters(), { lr: 5e-3, weightDecay: 0 });
  const steps = 200, B = 32, per = 3 * S * S;
  for (let step = 0; step < steps; step++) {
    opt.lr = 5e-3 * 0.5 * (1 + Math.cos((Math.PI * step) / steps));
    const x = new Float32Array(B * per);
    const y = Int32Array.from(range(B), (k) => k % CLASSES.length);
    for (let k = 0; k < B; k++) normalizeToChw(leaf(CLASSES[y[k]!]!, 10_000_000 + step * B + k), x, k * per);
    const xt = ft.tensor(x, { shape: [B, 3, S, S] }), yt = ft.tensor(y, { shape: [B] });
    ft.tidy(() => ft.crossEntropy(model.forward(xt), yt).backward());
    opt.step();
    opt.zeroGrad();
    xt.dispose();
    yt.dispose();
  }
  trained = { model, scorer: classifierScorer(model, { classNames: CLASSES, imageSize: S, batchSize: 16 }) };
  return trained.scorer;
}

/** Live tensors and device buffers: a gate must leave both as it found them. */
const live = async (): Promise<number[]> => {
  const m = await settledMemory();
  return [m.liveTensors, m.liveBuffers];
};

const byName = (entries: GateEntry[], name: string): GateEntry => {
  const e = entries.find((x) => x.name === name);
  assert.ok(e, `no entry "${name}" in ${entries.map((x) => x.name).join(', ')}`);
  return e!;
};

// ---------------------------------------------------------------- distances and thresholds

test('nearest-neighbour and paired distances: exact values, 0 against itself, > 0 against a shifted set', () => {
  const a = Float32Array.from([0, 0, 3, 4]), b = Float32Array.from([0, 0]);
  assert.is(meanNearestNeighbourDistance(a, 2, b, 1, 2), 2.5);
  assert.equal(Array.from(nearestNeighbourDistances(a, 2, Float32Array.from([3, 4, 0, 1]), 2, 2)), [1, 0]);
  const r = prng(3);
  const set = Float32Array.from({ length: 10 * 5 }, () => r());
  assert.is(meanNearestNeighbourDistance(set, 10, set, 10, 5), 0);
  const shifted = set.map((v) => v + 0.5);
  const d = meanNearestNeighbourDistance(shifted, 10, set, 10, 5);
  assert.ok(d > 0 && d <= 0.5 * Math.sqrt(5) + 1e-6, `shifted: ${d}`);
  assert.is(pairedDistance(Float32Array.from([0, 0, 1, 1]), Float32Array.from([3, 4, 1, 1]), 2, 2), 2.5);
  assert.ok(Math.abs(pairedDistance(set, shifted, 10, 5) - 0.5 * Math.sqrt(5)) < 1e-5);
  assert.throws(() => pairedDistance(set, set, 9, 5), /50 values for 9 rows of 5/);
  assert.throws(() => meanNearestNeighbourDistance(set, 10, new Float32Array(0), 0, 5), /at least one row/);
});

test('keepThreshold: the largest threshold that keeps the share asked for', () => {
  const r = prng(5);
  for (const n of [1, 7, 10, 20, 33]) {
    const v = Array.from({ length: n }, () => r());
    const t = keepThreshold(v, 0.9);
    const kept = v.filter((p) => p >= t).length;
    assert.ok(kept >= 0.9 * n, `n=${n}: keeps ${kept}`);
    // any larger threshold (the next value up) keeps fewer than 90%
    const above = v.filter((p) => p > t);
    if (above.length) assert.ok(v.filter((p) => p >= Math.min(...above)).length < 0.9 * n, `n=${n}: not the largest`);
  }
  assert.is(keepThreshold(range(20).map((i) => i / 20), 0.9), 2 / 20); // keeps 18 of 20
  assert.is(keepThreshold([0.5, 0.5, 0.5, 0.1], 0.5), 0.5); // ties keep more
});

// ---------------------------------------------------------------- the classifier scorer

test('classifierScorer: evaluation preprocessing, softmax of the logits, features = the head\'s input, batch-size invariant, eval mode restored', async () => {
  ft.manualSeed(1);
  const models = [new ResNet({ numClasses: 4, layers: [1, 1, 1, 1] }), new TinyResNet(4)];
  const images = range(5).map((i) => leaf(CLASSES[i % 4]!, 900 + i, 40)); // 40 px: resized and cropped to 32
  for (const model of models) {
    const name = model.constructor.name;
    model.train();
    const before = await live();
    const scorer = classifierScorer(model, { classNames: CLASSES, imageSize: S, batchSize: 2 });
    assert.is(scorer.dim, model instanceof ResNet ? 512 : 32, `${name} dim`);
    const s = await scorer.score!(images);
    assert.ok(model.training, `${name}: training mode restored`);
    assert.equal(await live(), before, `${name}: no tensor or buffer left behind`);
    assert.is(s.probabilities.length, 5 * 4);
    assert.is(s.features.length, 5 * scorer.dim);
    // the reference: evaluation's transform and normalization, one forward pass in eval mode
    const prep = evalTransform(S);
    const x = new Float32Array(5 * 3 * S * S);
    images.forEach((im, k) => normalizeToChw(prep(im, new Rng(0)), x, k * 3 * S * S));
    model.eval();
    const xt = ft.tensor(x, { shape: [5, 3, S, S] });
    const logits = ft.noGrad(() => model.forward(xt));
    const ref = await logits.dataF32();
    logits.dispose();
    xt.dispose();
    model.train();
    await assertClose(s.probabilities, softmaxRows(ref, 4), { rtol: 1e-4, atol: 1e-5, msg: `${name} probabilities` });
    // fc(features) gives the logits back: the features are the penultimate layer
    const W = await model.fc.weight.dataF32(), b = await model.fc.bias!.dataF32();
    const D = scorer.dim;
    const again = new Float32Array(5 * 4);
    for (let i = 0; i < 5; i++) for (let c = 0; c < 4; c++) {
      let z = b[c]!;
      for (let k = 0; k < D; k++) z += W[c * D + k]! * s.features[i * D + k]!;
      again[i * 4 + c] = z;
    }
    await assertClose(again, ref, { rtol: 1e-3, atol: 1e-4, msg: `${name}: fc(features) vs logits` });
    const one = await classifierScorer(model, { classNames: CLASSES, imageSize: S, batchSize: 32 }).score!(images);
    await assertClose(one.probabilities, s.probabilities, { rtol: 1e-4, atol: 1e-6, msg: `${name}: batch size` });
    await assertClose(one.features, s.features, { rtol: 1e-4, atol: 1e-5, msg: `${name}: batch size (features)` });
    assert.ok(!Object.prototype.hasOwnProperty.call(model.fc, 'forward'), `${name}: the head's forward is restored`);
    model.dispose();
  }
  const three = new TinyResNet(3);
  assert.throws(() => classifierScorer(three, { classNames: CLASSES, imageSize: S }), /4 class names for a model with 3 outputs/);
  three.dispose();
});

// ---------------------------------------------------------------- conditioning

test('conditioningGate: high when the samples show the prompted class, low for the wrong class, 1/C when the prompt is ignored or the scorer is blind', async () => {
  const scorer = await leafScorer();
  const calls: { prompt: string; seeds: number[] }[] = [];
  const right = await conditioningGate({ generate: leafGenerator(promptClass, calls), scorer, prompts: classPrompts, samples: 24, seed: 3 });
  assert.equal(calls.map((c) => c.prompt), Object.values(classPrompts));
  assert.ok(calls.every((c) => c.seeds.join() === range(24, 300000).join()), 'seeds seed·100000 + i');
  const score = byName(right, 'conditioning_score');
  const shares = CLASSES.map((c) => byName(right, `conditioning_share.${c}`).value!);
  assert.ok(score.value! >= 0.6, `right class: score ${score.value} (shares ${shares.join(', ')})`);
  assert.ok(shares.every((v) => v >= 0.4), `right class: shares ${shares.join(', ')}`);
  assert.is(score.value, shares.reduce((a, b) => a + b) / 4);
  assert.equal(score.target, { op: '>=', value: 0.7 });
  assert.is(score.passed, score.value! >= 0.7);
  assert.ok(right.every((e) => e.stage === 'base_model' && e.seed === 3));

  // wrong class: healthy ↔ rust, multiple_diseases ↔ scab (the pairs the classifier does not confuse)
  const swap: Record<string, string> = { healthy: 'rust', rust: 'healthy', multiple_diseases: 'scab', scab: 'multiple_diseases' };
  const wrong = await conditioningGate({ generate: leafGenerator((p) => swap[promptClass(p)]!), scorer, prompts: classPrompts, samples: 24, seed: 3 });
  assert.ok(byName(wrong, 'conditioning_score').value! <= 0.25, `wrong class: ${byName(wrong, 'conditioning_score').value}`);
  assert.is(byName(wrong, 'conditioning_score').passed, false);

  // a generator that ignores the prompt gives the same images to every prompt: the shares sum to 1
  for (const gen of [noiseGenerator, leafGenerator(() => 'rust')]) {
    const e = await conditioningGate({ generate: gen, scorer, prompts: classPrompts, samples: 12, seed: 4 });
    assert.ok(Math.abs(byName(e, 'conditioning_score').value! - 0.25) < 1e-9, `prompt ignored: ${byName(e, 'conditioning_score').value}`);
  }
  // a scorer that ignores its input calls everything class 0
  const blind = await conditioningGate({ generate: leafGenerator(promptClass), scorer: constantScorer, prompts: classPrompts, samples: 8, seed: 4 });
  assert.equal(CLASSES.map((c) => byName(blind, `conditioning_share.${c}`).value), [1, 0, 0, 0]);
  assert.is(byName(blind, 'conditioning_score').passed, false);
});

// ---------------------------------------------------------------- DreamBooth

test('dreamboothGate: rare share and feature distance respond to what the model makes', async () => {
  const scorer = await leafScorer();
  const realRare = leaves(RARE, range(24, 500));
  const baseSamples = leaves('healthy', range(24, 700));
  const good = await dreamboothGate({ generate: leafGenerator(() => RARE), scorer, instancePrompt: 'a photo of a <x> leaf', rareClass: RARE, samples: 24, realRare, baseSamples, seed: 2 });
  assert.is(good.samples.length, 24);
  assert.ok(good.rareShare >= 0.5, `rare leaves: rare share ${good.rareShare}`);
  assert.is(byName(good.entries, 'rare_share').passed, true);
  assert.ok(good.nnDistance > 0 && good.nnDistance < good.baseNnDistance, `rare leaves nearer the real ones: ${good.nnDistance} vs base ${good.baseNnDistance}`);
  assert.is(byName(good.entries, 'nn_feature_distance_ratio').value, good.ratio);
  assert.is(byName(good.entries, 'nn_feature_distance_ratio').passed, true);
  assert.ok(good.entries.every((e) => e.stage === 'dreambooth' && e.seed === 2));
  // the control: the base samples are healthy leaves, so the classifier gives them (almost) no rare calls
  assert.ok(good.baseRareShare <= 0.1, `base samples (healthy): rare share ${good.baseRareShare}`);
  assert.is(byName(good.entries, 'base_rare_share').value, good.baseRareShare);

  const bad = await dreamboothGate({ generate: leafGenerator(() => 'healthy'), scorer, instancePrompt: 'x', rareClass: RARE, samples: 24, realRare, baseSamples, seed: 2, stage: 'dreambooth_no_prior' });
  assert.ok(bad.rareShare <= 0.1, `healthy leaves: rare share ${bad.rareShare}`);
  assert.is(byName(bad.entries, 'rare_share').passed, false);
  assert.ok(bad.nnDistance > good.nnDistance, `healthy leaves farther: ${bad.nnDistance} vs ${good.nnDistance}`);
  assert.is(bad.entries[0]!.stage, 'dreambooth_no_prior');

  // copies of the real images: distance 0
  // base samples that the classifier already calls rare: the control shows it
  const fooled = await dreamboothGate({ generate: leafGenerator(() => RARE), scorer, instancePrompt: 'x', rareClass: RARE, samples: 8, realRare, baseSamples: leaves(RARE, range(8, 900)), seed: 2 });
  assert.ok(fooled.baseRareShare >= 0.5, `rare base samples: base rare share ${fooled.baseRareShare}`);
  const copies = await dreamboothGate({ generate: async (_p, seeds) => seeds.map((_, i) => realRare[i % realRare.length]!), scorer, instancePrompt: 'x', rareClass: RARE, samples: 24, realRare, baseSamples, seed: 2 });
  assert.ok(copies.nnDistance < 1e-4, `copies: ${copies.nnDistance}`);
  // the domain gap: copies look like one set with the real images; healthy leaves are told apart
  assert.ok(copies.twoSampleAccuracy! < 0.2, `copies: two-sample accuracy ${copies.twoSampleAccuracy}`);
  assert.ok(bad.twoSampleAccuracy! > 0.8, `healthy leaves: two-sample accuracy ${bad.twoSampleAccuracy}`);
  assert.ok(good.twoSampleAccuracy! < bad.twoSampleAccuracy!, `rare leaves nearer in distribution: ${good.twoSampleAccuracy} vs ${bad.twoSampleAccuracy}`);
  assert.is(byName(good.entries, 'two_sample_1nn_accuracy').value, good.twoSampleAccuracy);
  assert.is(byName(good.entries, 'base_two_sample_1nn_accuracy').value, good.baseTwoSampleAccuracy);
  const blind = await dreamboothGate({ generate: leafGenerator(() => RARE), scorer: constantScorer, instancePrompt: 'x', rareClass: RARE, samples: 8, realRare, baseSamples, seed: 2 });
  assert.is(blind.rareShare, 0);
  assert.is(blind.ratio, null); // all features equal: no distance to compare against
});

// ---------------------------------------------------------------- verification

test('verificationFilter: threshold fixed on validation keeps 90% of the real rare images; acceptance follows P(rare)', async () => {
  const scorer = colourScorer();
  // P(rare) = red level: 20 rare validation images at 0.50..0.975, others at 0.1..0.55
  const valRare = range(20).map((i) => solid(Math.round(255 * (0.5 + i * 0.025)), 90, 40));
  const valOther = range(10).map((i) => solid(Math.round(255 * (0.1 + i * 0.05)), 120, 40));
  const synthetic = [0.2, 0.5, 0.54, 0.6, 0.9].map((r) => solid(Math.round(255 * r), 100, 40));
  const realRare = [solid(230, 90, 40)], classImages = [solid(40, 200, 40)];
  const v = await verificationFilter({ scorer, rareClass: RARE, synthetic, valRare, valOther, realRare, classImages, seed: 1 });
  const expected = Math.round(255 * (0.5 + 2 * 0.025)) / 255; // the 18th largest of 20
  assert.ok(Math.abs(v.threshold - expected) < 1e-6, `threshold ${v.threshold}, expected ${expected}`);
  assert.is(v.valRareKept, 0.9);
  assert.is(v.valOtherAccepted, 1 / 10); // only the 0.55 one reaches the threshold
  assert.equal(v.accepted, [false, false, false, true, true]);
  assert.equal(v.accepted, v.probabilities.map((p) => p >= v.threshold));
  assert.ok(Math.abs(v.meanRareProbability - v.probabilities.reduce((a, b) => a + b) / 5) < 1e-9);
  // features are the mean colour: red images are nearer the red real image than the green class image
  assert.equal(v.featureAccepted, [false, true, true, true, true]);
  assert.is(v.featureAcceptedShare, 0.8);
  assert.is(byName(v.entries, 'accepted_share').value, 0.4);
  assert.ok(v.entries.every((e) => e.stage === 'verification' && e.seed === 1));
  // without the feature inputs there is no feature check; without a seed no entries
  const plain = await verificationFilter({ scorer, rareClass: RARE, synthetic, valRare, valOther });
  assert.is(plain.featureAccepted, null);
  assert.equal(plain.entries, []);
  assert.equal(plain.accepted, v.accepted);

  // with the trained classifier: rare-class leaves pass more often than healthy ones
  const leafS = await leafScorer();
  const w = await verificationFilter({
    scorer: leafS, rareClass: RARE, seed: 1,
    synthetic: [...leaves(RARE, range(16, 2000)), ...leaves('healthy', range(16, 2000))],
    valRare: leaves(RARE, range(20, 3000)), valOther: leaves('rust', range(20, 3000)),
    realRare: leaves(RARE, range(16, 4000)), classImages: leaves('healthy', range(16, 4000)),
  });
  assert.ok(w.valRareKept >= 0.9);
  const share = (xs: boolean[]) => xs.filter(Boolean).length / xs.length;
  assert.ok(share(w.accepted.slice(0, 16)) > share(w.accepted.slice(16)) + 0.4, `accepted: rare ${share(w.accepted.slice(0, 16))}, healthy ${share(w.accepted.slice(16))}`);
  assert.ok(share(w.featureAccepted!.slice(0, 16)) > share(w.featureAccepted!.slice(16)), 'feature check prefers the rare leaves');
});

// ---------------------------------------------------------------- VAE

test('vaeGate on a real tiny AutoencoderKL: per-class accuracies, PSNR, latent std and scaling factor as computed independently', async () => {
  const scorer = await leafScorer();
  ft.manualSeed(5);
  const vae = new AutoencoderKL({ block_out_channels: [8, 16], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], norm_num_groups: 4, layers_per_block: 1, sample_size: S });
  const labels = range(12).map((i) => i % 4);
  const images = labels.map((l, i) => leaf(CLASSES[l]!, 6000 + i, 48)); // 48 px, brought to the VAE's 32
  const before = await live();
  const r = await vaeGate({ vae, scorer, images, labels, seed: 7, batchSize: 5 });
  assert.equal(await live(), before, 'no tensor or buffer left behind');
  assert.is(r.reconstructions.length, 12);
  assert.ok(r.reconstructions.every((im) => im.width === S && im.height === S && im.data.length === S * S * 3));
  assert.ok(r.originals.every((im) => im.width === S && im.height === S));
  assert.ok(Number.isFinite(r.psnr) && r.psnr > 0, `psnr ${r.psnr}`);
  assert.is(r.psnr, psnrOf(r.originals, r.reconstructions));
  assert.is(byName(r.entries, 'psnr').value, r.psnr);
  // the latent std, encoded here in one batch
  const x = imagesToTensor(r.originals);
  const d = ft.noGrad(() => vae.encode(x));
  const m = await d.mean.dataF32();
  d.dispose();
  x.dispose();
  const mu = m.reduce((a, b) => a + b, 0) / m.length;
  const std = Math.sqrt(m.reduce((a, b) => a + (b - mu) ** 2, 0) / m.length);
  assert.ok(std > 0);
  assert.ok(Math.abs(r.latentStd - std) < 1e-4 * std, `latent std ${r.latentStd} vs ${std}`);
  assert.is(r.scalingFactor, 1 / r.latentStd);
  assert.is(byName(r.entries, 'scaling_factor').value, r.scalingFactor);
  // per-class accuracies from the scorer's own predictions
  const po = predictedClasses(await scorer.probabilities(r.originals), 4), pr = predictedClasses(await scorer.probabilities(r.reconstructions), 4);
  CLASSES.forEach((c, k) => {
    const idx = labels.map((l, i) => (l === k ? i : -1)).filter((i) => i >= 0);
    const acc = (p: Int32Array) => idx.filter((i) => p[i] === k).length / idx.length;
    assert.is(byName(r.entries, `accuracy_original.${c}`).value, acc(po), c);
    assert.is(byName(r.entries, `accuracy_reconstructed.${c}`).value, acc(pr), c);
    const drop = byName(r.entries, `recon_accuracy_drop.${c}`);
    assert.is(drop.value, acc(po) - acc(pr));
    assert.equal(drop.target, { op: '<=', value: 0.05 });
    assert.is(drop.passed, drop.value! <= 0.05);
  });
  // the images the drop counts: right on the original, wrong on the reconstruction
  assert.equal(Array.from(r.predictedOriginal), Array.from(po));
  assert.equal(Array.from(r.predictedReconstructed), Array.from(pr));
  assert.equal(r.lost, labels.flatMap((l, i) => (po[i] === l && pr[i] !== l ? [i] : [])));
  const rows = lostRows(r, labels, scorer.classNames, 3);
  if (r.lost.length === 0) assert.equal(rows, []);
  else {
    assert.is(rows[0]!.images.length, Math.min(3, r.lost.length));
    assert.is(rows[1]!.images[0], r.reconstructions[r.lost[0]!]);
    assert.ok(rows[0]!.label.includes(CLASSES[labels[r.lost[0]!]!]!.replace('multiple_diseases', 'multiple')), rows[0]!.label);
  }
  // the classifier does see the originals' classes (so a random VAE's drop is measurable)
  assert.ok(labels.filter((l, i) => po[i] === l).length >= 7, 'originals mostly recognised');
  await vaeGate({ vae, scorer, images, labels: labels.slice(1), seed: 7 }).then(() => assert.unreachable('label count'), (e: Error) => assert.match(e.message, /11 labels for 12 images/));
  vae.dispose();
});

// ---------------------------------------------------------------- drift

test('measureDrift: identical models drift 0 with equal shares; a changed model drifts, against a reference scale', async () => {
  const scorer = await leafScorer();
  const base = leafGenerator(promptClass);
  const inDomain = { 'a photo of a leaf': null, 'a photo of a rust leaf': 'rust', 'a photo of a scab leaf': 'scab' };
  const probes = ['cat', 'sea'];
  const same = await measureDrift({ base, tuned: base, variant: 'dreambooth', scorer, rareClass: RARE, inDomain, probes, samples: 8, seed: 1 });
  assert.is(same.entries.length, 5);
  assert.equal(same.grids.map((g) => g.prompt), [...Object.keys(inDomain), ...probes]);
  for (const e of same.entries) {
    assert.is(e.feature_distance, 0, e.prompt);
    assert.ok(e.reference_distance! > 0, `${e.prompt}: reference ${e.reference_distance}`);
    assert.is(e.rare_share_before, e.rare_share_after, e.prompt);
    assert.is(e.prompted_share_before, e.prompted_share_after, e.prompt);
    assert.is(e.samples, 8);
    assert.is(e.variant, 'dreambooth');
  }
  const [leafE, rustE] = same.entries;
  assert.is(leafE!.kind, 'in_domain');
  assert.is(leafE!.prompted_share_before, null); // no class: only the rare share
  assert.ok(rustE!.prompted_share_before! >= 0.4, `rust prompt recognised: ${rustE!.prompted_share_before}`);
  assert.is(same.entries[3]!.kind, 'probe');
  assert.ok(!('prompted_share_before' in same.entries[3]!), 'probes have no prompted class');

  // fine-tuning that turned every prompt into the rare class
  const tuned = leafGenerator(() => RARE);
  const moved = await measureDrift({ base, tuned, variant: 'dreambooth_no_prior', scorer, rareClass: RARE, inDomain, probes, samples: 8, seed: 1 });
  for (const e of moved.entries) {
    assert.ok(e.feature_distance! > 0, `${e.prompt}: ${e.feature_distance}`);
    assert.ok(e.rare_share_after! > e.rare_share_before!, `${e.prompt}: rare share ${e.rare_share_before} → ${e.rare_share_after}`);
  }
  assert.ok(moved.entries[1]!.prompted_share_after! < moved.entries[1]!.prompted_share_before!, 'rust prompt no longer rust');
  // tuned images from other seeds: drift as large as the reference
  const reseeded: Generate = (p, seeds) => base(p, seeds.map((s) => s + 50));
  const far = await measureDrift({ base, tuned: reseeded, variant: 'x', scorer, rareClass: RARE, inDomain: {}, probes: ['cat'], samples: 8, seed: 1 });
  const e = far.entries[0]!;
  assert.ok(e.feature_distance! > 0.5 * e.reference_distance! && e.feature_distance! < 2 * e.reference_distance!, `reseeded: ${e.feature_distance} vs reference ${e.reference_distance}`);
  assert.equal(DEFAULT_PROBES, ['a photo', 'cat', 'sea', 'pirate', 'illustration', 'animation', 'wallpaper']);
  await measureDrift({ base, tuned, variant: 'x', scorer, rareClass: RARE, inDomain: { a: 'nope' }, probes: [], samples: 2, seed: 1 })
    .then(() => assert.unreachable('unknown class'), (err: Error) => assert.match(err.message, /"nope" is not one of the scorer's classes/));
});

// ---------------------------------------------------------------- a real pipeline

test('generatorFromPipeline: one image per seed, independent of the batch; different seeds differ', async () => {
  const pipe = tinyPipeline();
  const g = generatorFromPipeline(pipe, { steps: 2, guidance: 2, batchSize: 3, height: 16, width: 16 });
  const before = await live();
  const three = await g.generate('a leaf', [11, 12, 13]);
  const alone = await generatorFromPipeline(pipe, { steps: 2, guidance: 2, batchSize: 1, height: 16, width: 16 }).generate('a leaf', [13]);
  assert.equal(await live(), before, 'no tensor or buffer left behind');
  assert.is(three.length, 3);
  assert.ok(three.every((im) => im.width === 16 && im.height === 16 && im.data.length === 16 * 16 * 3));
  let maxDiff = 0;
  three[2]!.data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - alone[0]!.data[i]!))));
  assert.ok(maxDiff <= 1, `seed 13 in a batch of 3 and alone: max byte difference ${maxDiff}`);
  assert.ok(three[0]!.data.some((v, i) => Math.abs(v - three[1]!.data[i]!) > 2), 'seeds 11 and 12 differ');
  assert.throws(() => generatorFromPipeline(pipe, { steps: 2, guidance: 2, batchSize: 2, height: 15, width: 16 }), /multiples of 2/);
  g.dispose();
  assert.equal(sampleSeeds(2, 3), [200000, 200001, 200002]);
});

// ---------------------------------------------------------------- grids

test('grids: labelled and side-by-side PNGs written atomically, sized by their rows', () => {
  const imgs = leaves('rust', range(3), 16);
  const a = join(dir, 'grids', 'labelled.png'), b = join(dir, 'grids', 'side.png'), c = join(dir, 'grids', 'side-more.png');
  labelledGrid([{ label: 'rust', images: imgs }, { label: 'a much longer label for healthy leaves', images: imgs.slice(0, 1) }], a, { title: 'samples' });
  sideBySideGrid([{ label: 'cat', base: imgs.slice(0, 2), tuned: imgs.slice(1, 3) }], b);
  sideBySideGrid([{ label: 'cat', base: imgs, tuned: imgs }, { label: 'sea', base: imgs, tuned: imgs }], c, { imageScale: 2 });
  const [pa, pb, pc] = [readPng(a), readPng(b), readPng(c)];
  assert.ok(pa.width > 3 * 16 && pa.height > 2 * 16, `labelled ${pa.width}x${pa.height}`);
  assert.ok(pc.width > pb.width && pc.height > pb.height, `more and larger images, larger grid: ${pb.width}x${pb.height} vs ${pc.width}x${pc.height}`);
  // a leaf pixel is in the picture (not only background and text)
  assert.ok(pa.data.some((v, i) => i % pa.channels === 1 && v > 60 && v < 200));
  assert.equal(readdirSync(join(dir, 'grids')).sort(), ['labelled.png', 'side-more.png', 'side.png']);
  assert.ok(existsSync(a));
  assert.throws(() => labelledGrid([], join(dir, 'grids', 'none.png')), /no rows/);
  assert.throws(() => labelledGrid([{ label: 'x', images: [{ width: 2, height: 2, data: new Uint8Array(16) }] }], join(dir, 'grids', 'rgba.png')), /expected RGB/);
});

test.run();
