export * from './half.js';
export * from './atomic.js';
export * from './paths.js';
export * from './safetensors.js';
