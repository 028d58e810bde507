/** @foliar/report: pictures and progress bars in their own package; @foliar/nn keeps modules and training, not pictures. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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

test.run();
