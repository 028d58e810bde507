// @foliar/tensor public API (Node): the common API and the file-system helpers of io/
export * from './api.js';
export * from './io/index.js';
export * from './io/open.js';
