// Photometric degradations of training images (issue 11: the gates' instrument must not read a soft
// leaf as another class) and the `degrade` config key that turns them on.
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as D from '../../packages/classifier/src/data/index.js';
import { resolveConfig, validateConfig, readConfigFile, DEFAULT_CONFIG, ConfigError, type TrainConfig } from '../../packages/classifier/src/train/index.js';
import { trainingTransform } from '../../packages/classifier/src/train/data.js';
import { hashOf } from '../../examples/study/stages.js';
import { STUDY_PROFILES } from '../../examples/study/profiles.js';

const rgb = (w: number, h: number, f: (x: number, y: number, c: number) => number): D.RgbImage => {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = f(x, y, c);
  return { width: w, height: h, data };
};
/** A textured image: a pseudo-random pattern, so blur and noise visibly change it. */
const textured = (w = 16, h = 12) => rgb(w, h, (x, y, c) => (x * 37 + y * 91 + c * 53 + ((x * y) % 7) * 29) % 256);
const mean = (a: Uint8Array) => a.reduce((s, v) => s + v, 0) / a.length;

test('gaussianKernel: normalized, symmetric, σ 0 is [0, 1, 0]', () => {
  for (const sigma of [0.3, 1, 1.5, 2.7]) {
    const k = D.gaussianKernel(sigma);
    assert.is(k.length, 2 * Math.max(1, Math.ceil(3 * sigma)) + 1);
    assert.ok(Math.abs(k.reduce((a, b) => a + b, 0) - 1) < 1e-6);
    for (let i = 0; i < k.length; i++) assert.ok(Math.abs(k[i]! - k[k.length - 1 - i]!) < 1e-7);
  }
  assert.equal([...D.gaussianKernel(0)], [0, 1, 0]);
  assert.throws(() => D.gaussianKernel(-1), /non-negative/);
  assert.throws(() => D.gaussianKernel(Number.NaN), /non-negative/);
});

test('gaussianBlur: σ → 0 is the identity', () => {
  const img = textured();
  for (const sigma of [0, 1e-3, 0.2]) assert.equal([...D.gaussianBlur(img, sigma).data], [...img.data], `σ ${sigma}`);
});

test('gaussianBlur: a constant image stays constant (edges clamped, mean colour kept)', () => {
  const img = rgb(9, 7, (_x, _y, c) => [200, 100, 37][c]!);
  for (const sigma of [0.7, 1.5, 4]) {
    const out = D.gaussianBlur(img, sigma);
    assert.equal([...out.data], [...img.data], `σ ${sigma}`);
  }
});

test('gaussianBlur: smooths a texture and keeps its mean colour', () => {
  const img = textured(32, 32);
  const out = D.gaussianBlur(img, 1.5);
  assert.is(out.width, 32); assert.is(out.height, 32);
  const energy = (im: D.RgbImage) => { let e = 0; for (let i = 3; i < im.data.length; i++) e += Math.abs(im.data[i]! - im.data[i - 3]!); return e; };
  assert.ok(energy(out) < energy(img) / 3, 'high frequencies removed');
  for (let c = 0; c < 3; c++) {
    const ch = (im: D.RgbImage) => mean(im.data.filter((_, i) => i % 3 === c));
    assert.ok(Math.abs(ch(out) - ch(img)) < 3, `channel ${c} mean ${ch(out)} vs ${ch(img)}`);
  }
});

test('addPixelNoise: seeded and deterministic, std as asked, std 0 is the identity', () => {
  const img = rgb(32, 32, () => 128);
  for (const kind of ['gaussian', 'uniform'] as const) {
    const a = D.addPixelNoise(img, new D.Rng(7, 1, 2), 6, kind);
    const b = D.addPixelNoise(img, new D.Rng(7, 1, 2), 6, kind);
    const c = D.addPixelNoise(img, new D.Rng(7, 1, 3), 6, kind);
    assert.equal([...a.data], [...b.data], 'same stream, same noise');
    assert.not.equal([...a.data], [...c.data], 'another stream, other noise');
    const d = [...a.data].map((v) => v - 128);
    const m = d.reduce((s, v) => s + v, 0) / d.length;
    const sd = Math.sqrt(d.reduce((s, v) => s + (v - m) ** 2, 0) / d.length);
    assert.ok(Math.abs(m) < 0.5, `${kind} mean ${m}`);
    assert.ok(Math.abs(sd - 6) < 0.5, `${kind} std ${sd}`);
    if (kind === 'uniform') assert.ok(d.every((v) => Math.abs(v) <= Math.ceil(6 * Math.sqrt(3))));
  }
  assert.equal([...D.addPixelNoise(textured(), new D.Rng(1), 0).data], [...textured().data]);
  // values clamp at the ends instead of wrapping around
  const dark = D.addPixelNoise(rgb(16, 16, () => 0), new D.Rng(3), 20);
  assert.ok(dark.data.every((v) => v < 120), 'no wrap-around below 0');
  const bright = D.addPixelNoise(rgb(16, 16, () => 255), new D.Rng(3), 20);
  assert.ok(bright.data.every((v) => v > 135), 'no wrap-around above 255');
});

test('downUpsample: factor 1 is the identity, factor 2 keeps the size and a constant image', () => {
  const img = textured(16, 16);
  assert.is(D.downUpsample(img, 1), img);
  const out = D.downUpsample(img, 2);
  assert.is(out.width, 16); assert.is(out.height, 16);
  assert.not.equal([...out.data], [...img.data]);
  const flat = rgb(10, 10, () => 90);
  assert.equal([...D.downUpsample(flat, 2.5).data], [...flat.data]);
  assert.throws(() => D.downUpsample(img, 0.5), /factor/);
});

test('randomDegradation: deterministic per stream; probability 0 draws coins but changes nothing', () => {
  const img = textured(24, 24);
  const t = D.randomDegradation({ resample: { p: 0.5, factor: [1, 2] }, blur: { p: 0.5, sigma: [0.5, 2] }, noise: { p: 0.5, std: [1, 8] } });
  let changed = 0;
  for (let i = 0; i < 20; i++) {
    const a = t(img, new D.Rng(5, 0, i)), b = t(img, new D.Rng(5, 0, i));
    assert.equal([...a.data], [...b.data]);
    if (a.data.some((v, j) => v !== img.data[j])) changed++;
  }
  assert.ok(changed > 10 && changed < 20, `some samples degraded, some not (${changed} of 20)`);
  const off = D.randomDegradation({ blur: { p: 0, sigma: [1, 2] }, noise: { p: 0, std: [4, 4] } });
  assert.equal([...off(img, new D.Rng(1)).data], [...img.data]);
});

test('trainingTransform: without `degrade` the augmentation stream is unchanged; with it, images differ', () => {
  const img = textured(40, 40);
  const base = { imageSize: 32, augment: true } as const;
  const before = D.trainTransform({ size: 32, cropScale: [0.5, 1], horizontalFlip: true, verticalFlip: true, rotate90: true, colorJitter: { brightness: 0.2, contrast: 0.2, saturation: 0.2 } });
  const a = trainingTransform(base)(img, new D.Rng(3, 1, 4));
  assert.equal([...a.data], [...before(img, new D.Rng(3, 1, 4)).data]);
  const withNoise = trainingTransform({ ...base, degrade: { noise: { p: 1, std: [5, 5] } } })(img, new D.Rng(3, 1, 4));
  assert.not.equal([...withNoise.data], [...a.data]);
  // with augment off, degradations still apply (after the resize)
  const plain = trainingTransform({ imageSize: 32, augment: false, degrade: { blur: { p: 1, sigma: [1, 1] } } })(img, new D.Rng(1));
  assert.is(plain.width, 32);
});

test('degrade is optional: resolved configs without it have no such key, so stage hashes do not move', () => {
  const c = resolveConfig({ epochs: 3 });
  assert.not.ok('degrade' in c);
  assert.not.ok('degrade' in DEFAULT_CONFIG);
  assert.is(JSON.stringify(c).includes('degrade'), false);
  // the resolved config of a profile's arm (no degrade) hashes as the same config without the key
  const arm = resolveConfig(STUDY_PROFILES.quick.classifier);
  const { degrade: _d, ...rest } = { ...arm, degrade: undefined };
  assert.is(hashOf(arm), hashOf(rest));
  // a key set to undefined in an override layer is ignored, as any other key
  assert.not.ok('degrade' in resolveConfig({ degrade: undefined }));
  // the gates' instrument turns it on in every profile
  for (const p of Object.values(STUDY_PROFILES)) assert.ok(p.gateClassifier.degrade?.blur, p.name);
});

test('degrade validation: accepts good settings and names the offending field', () => {
  const good = resolveConfig({ degrade: { resample: { p: 0.25, factor: [1, 2] }, blur: { p: 0.5, sigma: [0.3, 2] }, noise: { p: 0.5, std: [1, 8], kind: 'uniform' } } });
  assert.is(good.degrade?.noise?.kind, 'uniform');
  resolveConfig({ degrade: {} });
  const bad = (d: unknown, re: RegExp) => {
    // cast: deliberately malformed values, as a JSON config file could hold
    const c = { ...DEFAULT_CONFIG, counts: { ...DEFAULT_CONFIG.counts }, degrade: d } as unknown as TrainConfig;
    assert.throws(() => validateConfig(c), (e: Error) => e instanceof ConfigError && re.test(e.message));
  };
  bad(null, /"degrade" must be an object/);
  bad([1], /"degrade" must be an object/);
  bad({ sharpen: { p: 1 } }, /unknown key\(s\) "sharpen"/);
  bad({ blur: { p: 1.5, sigma: [1, 2] } }, /"degrade\.blur\.p" must be a probability in \[0, 1\], got 1\.5/);
  bad({ blur: { p: -0.1, sigma: [1, 2] } }, /degrade\.blur\.p/);
  bad({ blur: { p: 0.5 } }, /"degrade\.blur\.sigma" must be a range/);
  bad({ blur: { p: 0.5, sigma: [2, 1] } }, /degrade\.blur\.sigma.*lo ≤ hi/);
  bad({ blur: { p: 0.5, sigma: [-1, 1] } }, /degrade\.blur\.sigma/);
  bad({ blur: { p: 0.5, sigma: [1, 100] } }, /degrade\.blur\.sigma.*≤ 16/);
  bad({ blur: { p: 0.5, sigma: 1 } }, /degrade\.blur\.sigma/);
  bad({ blur: { p: 0.5, sigma: [1, 2], radius: 3 } }, /"degrade\.blur" has unknown key\(s\) "radius"/);
  bad({ noise: { p: 0.5, std: [1, Number.NaN] } }, /degrade\.noise\.std/);
  bad({ noise: { p: 0.5, std: [1, 8], kind: 'salt' } }, /"degrade\.noise\.kind" must be "gaussian" or "uniform"/);
  bad({ resample: { p: 0.5, factor: [0.5, 2] } }, /degrade\.resample\.factor.*1 ≤ lo/);
  bad({ noise: 'on' }, /"degrade\.noise" must be an object/);
});

test('degrade in a config file: checked there, errors name the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'foliar-degrade-'));
  try {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ degrade: { blur: { p: 2, sigma: [1, 2] } } }));
    const err = await readConfigFile(file).then(() => null, (e: Error) => e);
    assert.ok(err instanceof ConfigError);
    assert.match(err!.message, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: "degrade\\.blur\\.p"`));
    writeFileSync(file, JSON.stringify({ degrade: { noise: { p: 0.5, std: [1, 4] } } }));
    const ok = await readConfigFile(file);
    assert.equal(resolveConfig(ok).degrade, { noise: { p: 0.5, std: [1, 4] } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
