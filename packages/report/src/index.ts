// @foliar/report public API: pictures of a run (RGB(A) rasters, PNG files, a bitmap font, labelled
// image grids, line and bar charts, heatmaps) and progress bars. Images are @foliar/data's RgbImage.
export * from './viz/index.js';
export { Progress, type ProgressOptions } from '#progress';
