// Training, evaluation and prediction for the leaf classifier (used by the foliar-classify CLI).
export * from './config.js';
export * from './model.js';
export * from './data.js';
export * from './checkpoint.js';
export * from './evaluate.js';
export * from './report.js';
export * from './model-file.js';
export { META_KEY as MODEL_FILE_META_KEY, loadModelBytes, fetchModel, classifyImages } from './model-bytes.js';
export * from './predict.js';
export * from './trainer.js';
