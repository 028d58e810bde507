// @foliar/classifier public API
export * from './models/resnet.js';
export * from './data/index.js';
export * from './metrics/index.js';
