// viz/index.ts for browsers: everything but the PNG files (writePng, readPng).
export * from './common.js';
export { encodePng, decodePng } from './png-codec.js';
