export * from './classification.js';
export * from './report.js';
export * from './stats.js';
