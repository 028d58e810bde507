/** @foliar/report: pictures and progress bars in their own package; @foliar/nn keeps modules and training, not pictures. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RateMeter } from '../../packages/report/src/platform/rate.js';
import * as report from '@foliar/report';
import * as nn from '@foliar/nn';
import { fromFloatCHW, type RgbImage } from '@foliar/data';

test('pictures and progress bars are exported by @foliar/report only (not by @foliar/nn)', () => {
  const nnExports: Record<string, unknown> = { ...nn };
  for (const name of ['writePng', 'readPng', 'encodePng', 'decodePng', 'imageGrid', 'lineChart', 'barChart', 'heatmap', 'drawText', 'createImage', 'fromFloatCHW', 'Progress'] as const) {
    assert.type(report[name], 'function', name);
    assert.is(nnExports[name], undefined, `@foliar/nn still exports ${name}`);
  }
  assert.is(report.fromFloatCHW, fromFloatCHW);
});

test('report functions take @foliar/data RgbImages without channels (RGB) and return rasters', () => {
  const img: RgbImage = { width: 2, height: 1, data: new Uint8Array([255, 0, 0, 0, 0, 255]) };
  const back = report.decodePng(report.encodePng(img));
  assert.is(back.channels, 3);
  assert.equal(Array.from(back.data), Array.from(img.data));
  const grid = report.imageGrid([img, img], { cols: 2 });
  assert.ok(grid.width >= 4 && grid.channels === 3);
  assert.equal(report.getPixel(img, 1, 0), [0, 0, 255, 255]);
});

test('a resumed progress bar measures its rate and ETA from this run only', async () => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    // 900 of 1,000 steps were done by an earlier run; this one does 10 in ~100 ms (~100 it/s, not ~9,000)
    const bar = new report.Progress({ total: 1000, label: 'resumed', plain: true, initial: 900 });
    await new Promise((r) => setTimeout(r, 100));
    bar.update(910);
    bar.update(1000);
  } finally {
    process.stderr.write = write;
  }
  const m = /resumed 1000\/1000 ([\d.]+) it\/s/.exec(lines.join(''));
  assert.ok(m, lines.join(''));
  const rate = Number(m![1]);
  // 100 steps over ≥ 100 ms: at most 1,000 it/s (counting the resumed 900 would give ≥ 9,000)
  assert.ok(rate > 0 && rate <= 1000, `rate ${rate}`);
});

test('the rate is the recent one: minutes before the first step do not hold the rate and ETA down', () => {
  // made at t = 0, first step after 9 minutes of compiling, then 0.6 steps/s
  const m = new RateMeter(0, 0);
  m.record(1, 540_000);
  m.record(4, 545_000);
  assert.ok(Math.abs(m.rate() - 0.6) < 1e-9, `rate ${m.rate()}`);
  // a steady 2 steps/s for a minute, then 0.5 steps/s: the window follows within 30 s
  const w = new RateMeter(0, 0);
  let v = 0, t = 0;
  for (; t < 60_000; t += 500) w.record((v += 1), t);
  assert.ok(Math.abs(w.rate() - 2) < 0.05, `steady ${w.rate()}`);
  for (const end = t + 40_000; t < end; t += 2000) w.record((v += 1), t);
  assert.ok(Math.abs(w.rate() - 0.5) < 0.05, `after the change ${w.rate()}`);
  // no progress yet: 0, not NaN
  assert.is(new RateMeter(5, 0).rate(), 0);
});

test.run();
