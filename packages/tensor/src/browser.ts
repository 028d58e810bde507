// @foliar/tensor for browsers (package.json `exports`, condition `browser`): the whole public API of
// index.ts but the file-system helpers (io/atomic, io/paths, SafetensorsFile, writeSafetensors), which
// need Node. Files are URLs here: openSafetensors(url) fetches. test/browser/entries.test.ts keeps the
// two lists in step.
export * from './api.js';
export * from './io/half.js';
export * from './io/safetensors-format.js';
export * from './io/safetensors-codec.js';
export * from './io/safetensors-buffer.js';
export * from './io/open.js';
