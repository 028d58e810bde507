/**
 * Training pictures: PNG round trips, grids, text, and charts checked against geometry computed
 * here from the returned plot rectangle (not from the chart's own scale functions).
 * Writes one example of each chart to /tmp/foliar-viz/ for a human to look at.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import {
  barChart, createImage, decodePng, drawText, encodePng, fillRect, fromFloatCHW, getPixel, heatmap, imageGrid,
  lineChart, linearTicks, logTicks, measureText, readPng, resizeBilinear, resizeNearest, writePng, blit,
  wrapText, emaSmooth, type Raster as RgbImage, type ChartImage,
} from '@foliar/report';

const OUT = '/tmp/foliar-viz';

const colorDist = (a: readonly number[], b: readonly number[]): number =>
  Math.max(Math.abs(a[0]! - b[0]!), Math.abs(a[1]! - b[1]!), Math.abs(a[2]! - b[2]!));

function countPixels(img: RgbImage, pred: (r: number, g: number, b: number) => boolean, x0 = 0, y0 = 0, x1 = img.width, y1 = img.height): number {
  let n = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = (y * img.width + x) * img.channels;
      if (pred(img.data[i]!, img.data[i + 1]!, img.data[i + 2]!)) n++;
    }
  }
  return n;
}

const nonWhite = (r: number, g: number, b: number): boolean => r < 200 || g < 200 || b < 200;

// ------------------------------------------------------------------------------------------ PNG

test('PNG round trip (RGB and RGBA) through encode/decode and atomic file write', () => {
  const rgb = createImage(7, 5, 3);
  for (let i = 0; i < rgb.data.length; i++) rgb.data[i] = (i * 37) & 255;
  const back = decodePng(encodePng(rgb));
  assert.is(back.width, 7); assert.is(back.height, 5); assert.is(back.channels, 3);
  assert.equal(Array.from(back.data), Array.from(rgb.data));

  const rgba = createImage(3, 4, 4);
  for (let i = 0; i < rgba.data.length; i++) rgba.data[i] = (i * 91 + 3) & 255;
  const dir = mkdtempSync(path.join(tmpdir(), 'foliar-png-'));
  try {
    const file = path.join(dir, 'sub', 'x.png');
    writePng(file, rgba);
    assert.equal(readdirSync(path.dirname(file)), ['x.png'], 'no temp file left behind');
    const r = readPng(file);
    assert.is(r.channels, 4);
    assert.equal(Array.from(r.data), Array.from(rgba.data));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('decodePng reads a hand-built 2-bit greyscale PNG and names bad files', () => {
  // Build a PNG by hand (independent of fast-png's encoder): 3x2, grey, depth 2, rows packed.
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Uint8Array): number => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 255]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, body: Uint8Array): Uint8Array => {
    const out = new Uint8Array(12 + body.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, body.length);
    out.set(Buffer.from(type, 'latin1'), 4);
    out.set(body, 8);
    dv.setUint32(8 + body.length, crc(out.subarray(4, 8 + body.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, 3);
  new DataView(ihdr.buffer).setUint32(4, 2);
  ihdr.set([2, 0, 0, 0, 0], 8); // depth 2, colour type 0 (grey)
  // Row 0: values 0,1,2 -> bits 00 01 10 00 ; row 1: 3,3,0 -> 11 11 00 00. Filter byte 0 each.
  const raw = new Uint8Array([0, 0b00011000, 0, 0b11110000]);
  const sig = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  const bytes = Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array())]);
  const img = decodePng(bytes);
  assert.is(img.channels, 3);
  const greys = [0, 1, 2, 3, 3, 0].map((v) => Math.round((v * 255) / 3));
  assert.equal(Array.from({ length: 6 }, (_, p) => img.data[p * 3]), greys);
  assert.throws(() => decodePng(new Uint8Array([1, 2, 3]), 'bad.png'), /bad\.png/);
});

// -------------------------------------------------------------------------------- image helpers

test('fromFloatCHW maps [-1,1] and [0,1] and rejects wrong sizes', () => {
  // 1x2 image, 3 channels, planar.
  const chw = [-1, 1, 0, 0.5, 1, -1];
  const img = fromFloatCHW(chw, 3, 1, 2, '[-1,1]');
  assert.equal(Array.from(img.data), [0, 128, 255, 255, 191, 0]);
  const unit = fromFloatCHW([0, 1, 0.5, 2], 1, 2, 2, '[0,1]');
  assert.equal(Array.from(unit.data), [0, 0, 0, 255, 255, 255, 128, 128, 128, 255, 255, 255]);
  assert.throws(() => fromFloatCHW([0, 1], 3, 1, 1), /expected 3x1x1/);
});

test('blit clips, resize keeps constant images constant and picks nearest pixels', () => {
  const dst = createImage(4, 4, 3, [0, 0, 0]);
  const src = createImage(3, 3, 3, [200, 100, 50]);
  blit(dst, src, 2, -1);
  assert.equal(getPixel(dst, 3, 0).slice(0, 3), [200, 100, 50]);
  assert.equal(getPixel(dst, 3, 2).slice(0, 3), [0, 0, 0]);
  assert.equal(getPixel(dst, 1, 0).slice(0, 3), [0, 0, 0]);
  const flat = createImage(9, 7, 3, [10, 20, 30]);
  const big = resizeBilinear(flat, 20, 3);
  assert.ok(big.data.every((v, i) => v === [10, 20, 30][i % 3]));
  const small = resizeBilinear(createImage(64, 64, 3, [77, 77, 77]), 5, 5);
  assert.ok(small.data.every((v) => v === 77));
  const two = createImage(2, 1, 3);
  two.data.set([0, 0, 0, 255, 255, 255]);
  const up = resizeNearest(two, 4, 1);
  assert.equal(Array.from(up.data.filter((_, i) => i % 3 === 0)), [0, 0, 255, 255]);
  // Bilinear, half-pixel centres: output pixel 1 of 4 samples source x = 0.25 -> 64.
  const lin = resizeBilinear(two, 4, 1);
  assert.equal(Array.from(lin.data.filter((_, i) => i % 3 === 0)), [0, 64, 191, 255]);
});

test('text: measured box matches drawn pixels, glyphs differ, wrapping respects width', () => {
  const img = createImage(80, 20, 3, [255, 255, 255]);
  drawText(img, 3, 4, 'Ag|', [0, 0, 0]);
  const m = measureText('Ag|');
  let minX = 99, maxX = -1, minY = 99, maxY = -1;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      if (getPixel(img, x, y)[0] < 128) { minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
    }
  }
  assert.ok(minX >= 3 && maxX < 3 + m.width && minY >= 4 && maxY < 4 + m.height, `ink inside measured box ${minX}..${maxX} ${minY}..${maxY}`);
  assert.ok(maxY >= 4 + 7, "descender of 'g' below the baseline");
  // Every printable glyph is distinct (a typo in the font table would likely duplicate or blank one).
  const seen = new Map<string, string>();
  for (let c = 33; c < 127; c++) {
    const g = createImage(6, 9, 3, [255, 255, 255]);
    drawText(g, 0, 0, String.fromCharCode(c), [0, 0, 0]);
    const key = Array.from(g.data.filter((_, i) => i % 3 === 0)).map((v) => (v < 128 ? 1 : 0)).join('');
    assert.ok(key.includes('1'), `glyph ${String.fromCharCode(c)} is blank`);
    assert.not.ok(seen.has(key), `glyph ${String.fromCharCode(c)} equals ${seen.get(key)}`);
    seen.set(key, String.fromCharCode(c));
  }
  const lines = wrapText('a prompt about a rusty apple leaf in the sun', 60);
  assert.ok(lines.length > 1 && lines.every((l) => measureText(l).width <= 60), JSON.stringify(lines));
  assert.is(lines.join(' '), 'a prompt about a rusty apple leaf in the sun');
  assert.equal(wrapText('multiple_diseases', 60), ['multiple_', 'diseases']);
});

// ----------------------------------------------------------------------------------------- grid

test('imageGrid: dimensions follow cells, padding, captions; images and captions land in place', () => {
  const colours: [number, number, number][] = [[255, 0, 0], [0, 160, 0], [0, 0, 255], [200, 150, 0], [90, 0, 90]];
  const imgs = colours.map((c) => createImage(32, 24, 3, c));
  const g = imageGrid(imgs, { cols: 3, padding: 5, labels: ['rust', 'scab', 'healthy', 'step 100', 'x'], imageScale: 2 });
  // Cell width: max(64, 12 chars = 71 px) = 71; 3 columns + 4 gaps.
  assert.is(g.width, 3 * 71 + 4 * 5);
  // Rows: image 48 + caption (4 + 7 + 2 = 13), 2 rows + 3 gaps, no title.
  assert.is(g.height, 2 * (48 + 13) + 3 * 5);
  // Image k's centre pixel has its colour; caption band under it contains dark text pixels.
  imgs.forEach((_, k) => {
    const r = Math.floor(k / 3), c = k % 3;
    const x = 5 + c * (71 + 5), y = 5 + r * (48 + 13 + 5);
    assert.equal(getPixel(g, x + 35, y + 24).slice(0, 3), colours[k]);
    const ink = countPixels(g, (rr, gg, bb) => rr < 100 && gg < 100 && bb < 100, x, y + 48, x + 71, y + 48 + 13);
    assert.ok(ink > 5, `caption ${k} drawn (${ink} dark pixels)`);
  });
  const titled = imageGrid(imgs, { cols: 5, title: 'step 1000' });
  const titleInk = countPixels(titled, (r, gg, b) => r < 100 && gg < 100 && b < 100, 0, 0, titled.width, 8 + 18);
  assert.ok(titleInk > 20, 'title drawn');
  assert.throws(() => imageGrid(imgs, { labels: ['a'] }), /1 labels for 5 images/);
});

// --------------------------------------------------------------------------------------- charts

test('axis ticks are nice numbers covering the data', () => {
  const t = linearTicks(0.13, 9.7, 5);
  assert.equal(t.domain, [0, 10]);
  assert.equal(t.values, [0, 2, 4, 6, 8, 10]);
  assert.equal(t.labels, ['0', '2', '4', '6', '8', '10']);
  const s = linearTicks(0.0012, 0.0051, 4);
  assert.equal(s.labels, ['0.001', '0.002', '0.003', '0.004', '0.005', '0.006']);
  const l = logTicks(0.03, 4);
  assert.ok(l.domain[0] <= 0.03 && l.domain[1] >= 4, `log domain ${l.domain}`);
  assert.ok(l.values.includes(1) && l.values.includes(0.1) && l.values.every((v) => v >= l.domain[0] && v <= l.domain[1]));
  assert.equal(emaSmooth([1, 1, 1], 0.9).map((v) => Math.round(v * 1e9) / 1e9), [1, 1, 1]);
});

/** Pixel where the value (x, y) must be drawn, from the plot rectangle alone. */
function expectedPixel(c: ChartImage, x: number, y: number): [number, number] {
  const p = c.plot;
  const tx = (x - p.xDomain[0]) / (p.xDomain[1] - p.xDomain[0]);
  const fy = p.logY ? Math.log10 : (v: number) => v;
  const ty = (fy(y) - fy(p.yDomain[0])) / (fy(p.yDomain[1]) - fy(p.yDomain[0]));
  return [Math.floor(p.left + tx * p.width), Math.floor(p.top + p.height - ty * p.height)];
}

test('lineChart: a straight line lands on the expected pixels; other pixels do not carry its colour', () => {
  const red: [number, number, number] = [220, 20, 60];
  const pts: [number, number][] = Array.from({ length: 11 }, (_, i) => [i * 100, 2 + 0.5 * i]);
  const c = lineChart({ series: [{ name: 'line', points: pts, color: red }], width: 500, height: 320, title: 'straight' });
  assert.equal(c.plot.xDomain, [0, 1000]);
  assert.equal(c.plot.yDomain, [2, 7]);
  for (let x = 50; x <= 950; x += 75) {
    const [px, py] = expectedPixel(c, x, 2 + x / 200);
    const onLine = getPixel(c, px, py);
    assert.ok(colorDist(onLine, red) < 40, `pixel (${px},${py}) for x=${x} is ${onLine.slice(0, 3)}`);
    for (const dy of [-12, 12]) {
      const off = getPixel(c, px, py + dy);
      assert.ok(colorDist(off, red) > 80, `pixel (${px},${py + dy}) off the line is ${off.slice(0, 3)}`);
    }
  }
  // Nothing red outside the plot rectangle (lines are clipped, no stray ink).
  const p = c.plot;
  const isRed = (r: number, g: number, b: number): boolean => colorDist([r, g, b], red) < 60;
  const total = countPixels(c, isRed);
  const inside = countPixels(c, isRed, p.left - 1, p.top - 2, p.left + p.width + 2, p.top + p.height + 2);
  assert.is(total, inside);
  // Axis lines are at the plot edges.
  assert.ok(colorDist(getPixel(c, p.left - 1, p.top + 10), [110, 110, 110]) < 10, 'y axis drawn at left edge');
  assert.ok(colorDist(getPixel(c, p.left + 10, p.top + p.height), [110, 110, 110]) < 10, 'x axis drawn at bottom edge');
});

test('lineChart: log y axis places decades evenly', () => {
  const pts: [number, number][] = [[0, 1000], [1, 100], [2, 10], [3, 1]];
  const blue: [number, number, number] = [20, 60, 230];
  const c = lineChart({ series: [{ name: 'l', points: pts, color: blue }], logY: true, width: 400, height: 300 });
  for (const [x, y] of [[0.5, 10 ** 2.5], [1.5, 10 ** 1.5], [2.5, 10 ** 0.5]] as const) {
    const [px, py] = expectedPixel(c, x, y);
    assert.ok(colorDist(getPixel(c, px, py), blue) < 50, `log-scale point (${x}, ${y}) at (${px}, ${py})`);
  }
});

test('barChart: bar heights match values; heatmap colours are monotone in value', () => {
  const values = [0.9, 0.45, 0.7, 0.2];
  const c = barChart({ labels: ['healthy', 'multiple_diseases', 'rust', 'scab'], values, yMax: 1, title: 'per-class recall', color: [30, 110, 180] });
  const p = c.plot;
  const band = p.width / values.length;
  values.forEach((v, i) => {
    const x = Math.floor(p.left + band * (i + 0.5));
    let top = -1;
    for (let y = p.top; y < p.top + p.height; y++) {
      if (colorDist(getPixel(c, x, y), [30, 110, 180]) < 5) { top = y; break; }
    }
    const expected = p.top + p.height * (1 - v);
    assert.ok(Math.abs(top - expected) <= 1.5, `bar ${i} top at ${top}, expected ${expected}`);
  });

  const m = [[1, 2, 3], [4, 5, 6], [7, 8, 9]];
  const h = heatmap({ matrix: m, rowLabels: ['a', 'b', 'c'], colLabels: ['x', 'y', 'z'] });
  const cell = h.plot.width / 3;
  const lum: number[] = [];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      // Sample near the cell's corner, away from the printed number.
      const px = getPixel(h, Math.floor(h.plot.left + j * cell + 3), Math.floor(h.plot.top + i * cell + 3));
      lum.push(0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2]);
    }
  }
  for (let k = 1; k < lum.length; k++) assert.ok(lum[k]! < lum[k - 1]!, `cell ${k} darker than cell ${k - 1}: ${lum.join(', ')}`);
  // Numbers are drawn in cells: the centre region has both the cell colour and text-coloured ink.
  const centre = countPixels(h, nonWhite, h.plot.left, h.plot.top, h.plot.left + cell, h.plot.top + cell);
  assert.ok(centre < cell * cell, 'first (palest) cell has text on it');
  assert.throws(() => heatmap({ matrix: [[1, 2], [3]] }), /row 1 has 1 values/);
});

test('write example charts to /tmp/foliar-viz for inspection', () => {
  // Deterministic noisy loss curves (a tiny LCG, no Math.random).
  let s = 12345;
  const rnd = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const steps = 3000;
  const train: [number, number][] = [], val: [number, number][] = [];
  for (let i = 0; i <= steps; i += 10) train.push([i, 1.4 * Math.exp(-i / 700) + 0.12 + 0.12 * (rnd() - 0.5) * Math.exp(-i / 2000)]);
  for (let i = 0; i <= steps; i += 250) val.push([i, 1.35 * Math.exp(-i / 800) + 0.2]);
  const loss = lineChart({
    series: [{ name: 'train loss', points: train }, { name: 'validation loss', points: val, smoothing: 0 }],
    title: 'Classifier training', xLabel: 'step', yLabel: 'cross-entropy', smoothing: 0.8, width: 720, height: 420,
  });
  writePng(`${OUT}/loss.png`, loss);
  writePng(`${OUT}/loss-log.png`, lineChart({
    series: [{ name: 'diffusion loss', points: train.map(([x, y]) => [x, y * y]) }],
    title: 'Diffusion training (log scale)', xLabel: 'step', yLabel: 'MSE', logY: true, smoothing: 0.9,
  }));
  writePng(`${OUT}/bars.png`, barChart({
    labels: ['healthy', 'multiple_diseases', 'rust', 'scab'],
    groups: [
      { name: 'precision', values: [0.94, 0.41, 0.97, 0.93] },
      { name: 'recall', values: [0.96, 0.33, 0.95, 0.9] },
      { name: 'F1', values: [0.95, 0.366, 0.96, 0.915] },
    ],
    title: 'Per-class metrics (validation)', yMax: 1, yLabel: 'score',
  }));
  const cm = [[98, 1, 2, 3], [4, 6, 5, 3], [1, 2, 118, 3], [5, 2, 2, 110]];
  const names = ['healthy', 'multiple_diseases', 'rust', 'scab'];
  writePng(`${OUT}/confusion.png`, heatmap({ matrix: cm, rowLabels: names, colLabels: names, title: 'Confusion matrix', xLabel: 'predicted', yLabel: 'true' }));
  writePng(`${OUT}/confusion-norm.png`, heatmap({ matrix: cm, rowLabels: names, colLabels: names, title: 'Confusion matrix (row-normalised)', xLabel: 'predicted', yLabel: 'true', normalize: true }));
  const samples = Array.from({ length: 8 }, (_, k) => {
    const im = createImage(64, 64, 3, [40 + k * 25, 120, 200 - k * 20]);
    fillRect(im, 16, 16, 32, 32, [250, 250, 250]);
    return im;
  });
  writePng(`${OUT}/grid.png`, imageGrid(samples, {
    cols: 4, title: 'samples at step 2000', imageScale: 2,
    labels: samples.map((_, k) => (k % 2 ? `an apple leaf with rust, seed ${k}` : `healthy leaf ${k}`)),
  }));
  assert.ok(countPixels(loss, nonWhite) > 2000, 'loss chart has content');
});

test.run();
