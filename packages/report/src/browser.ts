// @foliar/report for browsers (package.json `exports`, condition `browser`): index.ts but writePng and
// readPng (files; encodePng/decodePng work on bytes here too). test/browser/entries.test.ts keeps the lists in step.
// @foliar/report public API: pictures of a run (RGB(A) rasters, PNG files, a bitmap font, labelled
// image grids, line and bar charts, heatmaps) and progress bars. Images are @foliar/data's RgbImage.
export * from './viz/browser.js';
export { Progress, type ProgressOptions } from '#progress';
