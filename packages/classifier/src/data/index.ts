// Real-image data pipeline for the classifier (the `synthetic/` subfolder has its own barrel).
export { parseCsv, readCsv, requireColumns, CsvError, type CsvTable, type CsvOptions } from '@foliar/data';
export * from './image.js';
export * from './rng.js';
export * from './layouts.js';
export * from './decode.js';
export * from './transforms.js';
export * from './split.js';
export * from './dataset.js';
export * from './loader.js';
export * from './dedup.js';
export * from './protocol.js';
