export * from './half.js';
export * from './atomic.js';
export * from './safetensors.js';
