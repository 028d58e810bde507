/**
 * Procedural apple leaves: determinism, resolution independence, dataset bookkeeping, and
 * class separability measured on pixel colours (rust orange, scab olive-brown).
 * Writes a labelled grid to /tmp/foliar-viz/leaves.png (and docs/synthetic-leaves.png when
 * FOLIAR_UPDATE_DOCS=1).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import {
  LEAF_CLASSES, PP2020_TRAIN_COUNTS, renderLeaf, syntheticLeafDataset, type LeafImage, type LeafLabel,
} from '../../packages/classifier/src/data/synthetic/index.js';
import { imageGrid, writePng } from '@foliar/report';
import { repoRoot } from '../helpers.js';

const render = (label: LeafLabel, seed: number, width = 64, height = width): LeafImage => renderLeaf({ label, seed, width, height });

function sameBytes(a: LeafImage, b: LeafImage): boolean {
  return a.data.length === b.data.length && a.data.every((v, i) => v === b.data[i]);
}

/** Fraction of pixels satisfying `pred`. */
function fraction(img: LeafImage, pred: (r: number, g: number, b: number) => boolean): number {
  let n = 0;
  for (let i = 0; i < img.data.length; i += 3) if (pred(img.data[i]!, img.data[i + 1]!, img.data[i + 2]!)) n++;
  return n / (img.width * img.height);
}

// Colour classes defined from the disease descriptions, not from the renderer's constants:
// orange = red well above blue and clearly above green (rust lesions);
// olive-brown/black = dark, with red about as high as green (no green dominance) and above blue.
const orange = (r: number, g: number, b: number): boolean => r > 140 && r - b > 90 && r - g > 35;
const darkBrown = (r: number, g: number, b: number): boolean => r + g + b < 240 && r >= 0.95 * g && r > 1.4 * b;

test('deterministic: same (label, seed) gives the same bytes, other seeds differ', () => {
  for (const label of LEAF_CLASSES) {
    const a = render(label, 7), b = render(label, 7);
    assert.ok(sameBytes(a, b), `${label}: same seed, same bytes`);
    assert.not.ok(sameBytes(a, render(label, 8)), `${label}: seed 8 differs from seed 7`);
  }
  assert.not.ok(sameBytes(render('rust', 3), render('healthy', 3)), 'labels change the picture');
  const d1 = syntheticLeafDataset({ counts: { healthy: 3, rust: 3, scab: 3, multiple_diseases: 3 }, size: 32, seed: 5 });
  const d2 = syntheticLeafDataset({ counts: { healthy: 3, rust: 3, scab: 3, multiple_diseases: 3 }, size: 32, seed: 5 });
  const d3 = syntheticLeafDataset({ counts: { healthy: 3, rust: 3, scab: 3, multiple_diseases: 3 }, size: 32, seed: 6 });
  assert.equal(d1.labels, d2.labels);
  for (let i = 0; i < d1.length; i++) assert.ok(sameBytes(d1.get(i).image, d2.get(i).image), `dataset index ${i}`);
  assert.ok(sameBytes(d1.get(4).image, d1.get(4).image), 'get is repeatable');
  assert.not.ok(sameBytes(d1.get(0).image, d3.get(0).image), 'dataset seed changes images');
});

test('sizes: 32, 64, 128 and non-square; the picture is the same at every resolution', () => {
  for (const [w, h] of [[32, 32], [64, 64], [128, 128], [96, 48], [40, 80]] as const) {
    const img = render('multiple_diseases', 11, w, h);
    assert.is(img.width, w); assert.is(img.height, h); assert.is(img.channels, 3);
    assert.is(img.data.length, w * h * 3);
    const mean = img.data.reduce((a, v) => a + v, 0) / img.data.length;
    let v = 0;
    for (const x of img.data) v += (x - mean) ** 2;
    assert.ok(Math.sqrt(v / img.data.length) > 12, `${w}x${h} has structure`);
  }
  // Box-downsampling the 128 render to 32 must match the 32 render closely (same scene).
  for (const label of LEAF_CLASSES) {
    const big = render(label, 4, 128), small = render(label, 4, 32);
    let err = 0;
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        for (let k = 0; k < 3; k++) {
          let s = 0;
          for (let dy = 0; dy < 4; dy++) for (let dx = 0; dx < 4; dx++) s += big.data[((y * 4 + dy) * 128 + x * 4 + dx) * 3 + k]!;
          err += Math.abs(s / 16 - small.data[(y * 32 + x) * 3 + k]!);
        }
      }
    }
    err /= 32 * 32 * 3;
    assert.ok(err < 10, `${label}: mean |128->32 - 32| = ${err.toFixed(2)}`);
  }
  assert.throws(() => render('rust', 1, 0, 10), /size must be positive/);
  assert.throws(() => renderLeaf({ label: 'mildew' as LeafLabel, seed: 1, width: 8, height: 8 }), /unknown label 'mildew'/);
});

test('classes are separable by colour: rust orange, scab olive-brown, multiple both', () => {
  const N = 24;
  const stats = Object.fromEntries(LEAF_CLASSES.map((c) => [c, { orange: [] as number[], brown: [] as number[] }])) as
    Record<LeafLabel, { orange: number[]; brown: number[] }>;
  for (let s = 0; s < N; s++) {
    for (const c of LEAF_CLASSES) {
      const img = render(c, 1000 + s, 64);
      stats[c].orange.push(fraction(img, orange));
      stats[c].brown.push(fraction(img, darkBrown));
    }
  }
  // Compare each class with the healthy render of the same seed: same leaf, background and light,
  // so differences come from the disease marks alone (soil backgrounds are brown in every class).
  const gain = (c: LeafLabel, k: 'orange' | 'brown'): number =>
    stats[c][k].reduce((acc, v, i) => acc + v - stats.healthy[k][i]!, 0) / N;
  const report = LEAF_CLASSES.map((c) => `${c}: +orange ${gain(c, 'orange').toFixed(4)} +brown ${gain(c, 'brown').toFixed(4)}`).join('; ');
  const healthyOrange = stats.healthy.orange.reduce((x, y) => x + y, 0) / N;
  assert.ok(healthyOrange < 0.002, `healthy leaves have (almost) no orange: ${healthyOrange}`);
  assert.ok(gain('rust', 'orange') > 0.008, `rust adds orange: ${report}`);
  assert.ok(gain('scab', 'brown') > 0.01, `scab adds dark brown: ${report}`);
  assert.ok(gain('scab', 'orange') < 0.1 * gain('rust', 'orange'), `scab adds no orange: ${report}`);
  assert.ok(gain('rust', 'brown') < 0.3 * gain('scab', 'brown'), `rust adds little dark brown: ${report}`);
  assert.ok(gain('multiple_diseases', 'orange') > 0.003, `multiple_diseases has rust: ${report}`);
  assert.ok(gain('multiple_diseases', 'brown') > 0.005, `multiple_diseases has scab: ${report}`);
  // Per image (same seed = same leaf and background), disease marks nearly always show (they may
  // fall on a part of the leaf outside the frame).
  const wins = (a: number[], b: number[]): number => a.filter((v, i) => v > b[i]!).length;
  assert.ok(wins(stats.rust.orange, stats.healthy.orange) >= 0.9 * N, `rust more orange than healthy, per seed`);
  assert.ok(wins(stats.scab.brown, stats.healthy.brown) >= 0.9 * N, `scab browner than healthy, per seed`);
});

test('dataset: default Plant Pathology 2020 counts, shuffled labels, lazy per-index rendering', () => {
  const d = syntheticLeafDataset({ size: 16 });
  assert.is(d.length, 516 + 91 + 622 + 592);
  assert.equal(d.classNames, ['healthy', 'multiple_diseases', 'rust', 'scab']);
  for (const c of LEAF_CLASSES) assert.is(d.labels.filter((l) => l === c).length, PP2020_TRAIN_COUNTS[c]);
  assert.ok(new Set(d.labels.slice(0, 40)).size >= 3, 'classes interleaved, not in blocks');
  const s = d.get(123);
  assert.is(s.label, d.labels[123]);
  assert.is(s.target, LEAF_CLASSES.indexOf(s.label));
  assert.is(s.image.width, 16);
  const rect = syntheticLeafDataset({ counts: { healthy: 1, multiple_diseases: 0, rust: 2, scab: 0 }, size: { width: 48, height: 32 } });
  assert.is(rect.length, 3);
  assert.is(rect.get(2).image.width, 48); assert.is(rect.get(2).image.height, 32);
  assert.throws(() => d.get(d.length), /index 1821 out of range/);
  assert.throws(() => syntheticLeafDataset({ counts: { rust: -1 } }), /counts.rust/);
  assert.throws(() => syntheticLeafDataset({ counts: { mildew: 3 } as never }), /unknown class 'mildew'/);
});

test('write a labelled grid (4 per class) to /tmp/foliar-viz/leaves.png', async () => {
  const images: LeafImage[] = [];
  const labels: string[] = [];
  for (const c of LEAF_CLASSES) {
    for (let k = 0; k < 4; k++) { images.push(render(c, 40 + k * 7, 104)); labels.push(c); }
  }
  const grid = imageGrid(images, { cols: 4, labels, padding: 6, title: 'Synthetic apple leaves' });
  writePng('/tmp/foliar-viz/leaves.png', grid);
  if (process.env.FOLIAR_UPDATE_DOCS === '1') {
    // The README copy is palette-quantised (sharp) to stay small; dithering hides the banding.
    const png = await sharp(Buffer.from(grid.data), { raw: { width: grid.width, height: grid.height, channels: 3 } })
      .png({ palette: true, colours: 256, quality: 95, dither: 0.5, compressionLevel: 9 })
      .toBuffer();
    assert.ok(png.length < 150_000, `docs image is ${png.length} bytes`);
    const file = path.join(repoRoot, 'docs', 'synthetic-leaves.png');
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}-${Date.now().toString(36)}`;
    writeFileSync(tmp, png);
    renameSync(tmp, file);
  }
});

test.run();
