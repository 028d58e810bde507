export * from './classification.js';
export * from './report.js';
