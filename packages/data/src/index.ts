// @foliar/data public API: what every foliar package reads data with (CSV, which files are images,
// the one RgbImage type, decoding with sharp, HWC ↔ CHW conversion).
export { parseCsv, parseCsvRecords, readCsv, requireColumns, CsvError, type CsvTable, type CsvOptions } from './csv.js';
export { IMAGE_EXTENSIONS, isImageFile } from './images.js';
export { assertRgbImage, channelsOf, hasChannels, type RgbImage, type Raster } from './rgb-image.js';
// sharp in Node, createImageBitmap + OffscreenCanvas in a browser (package.json `imports` #platform)
export { decodeImage, loadImageSquare, resizeSquare } from '#platform';
export { ImageDecodeError, type DecodeOptions, type ResizeMode } from './decode-types.js';
export {
  normalizeToChw, imagesToChw, fromFloatCHW, IMAGENET_MEAN, IMAGENET_STD, IMAGENET_NORMALIZATION,
  type Normalization, type FloatRange,
} from './chw.js';
export { Rng, hashKey, hashSeed, mix32, permutation, hashStream } from './random.js';
