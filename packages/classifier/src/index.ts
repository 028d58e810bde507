// @foliar/classifier public API
export * from './models/resnet.js';
