// Training pictures: RGB(A) rasters, PNG files, bitmap text, sample grids and charts.
export * from './common.js';
export { encodePng, decodePng, writePng, readPng } from './png.js';
