export * from './safetensors.js';
export * from './half.js';
export * from './atomic.js';
