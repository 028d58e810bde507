// @foliar/nn for browsers (package.json `exports`, condition `browser`): index.ts but the run folders
// (run-dir.ts), the CLI error helpers and the file-backed training loop (train-loop.ts), which need Node; weights load from
// URLs or bytes here. test/browser/entries.test.ts keeps the lists in step.
// @foliar/nn public API: modules, layers, optimizers, schedules, checkpointing, the training loop.
// Pictures and progress bars are @foliar/report's.
export { Module, StateDictError, withParameterDtype, type StateDict, type StateValue, type LoadResult } from './module.js';
export * from './init.js';
export { Linear, Identity, type LinearOptions, type LinearDelta } from './layers/linear.js';
export { Embedding } from './layers/embedding.js';
export { ReLU, SiLU, GELU, QuickGELU, Sigmoid, Tanh, Flatten, Dropout } from './layers/activation.js';
export { Sequential, ModuleList, ModuleDict, type Layer } from './layers/containers.js';
export { Optimizer, type OptimizerState, type GroupOf } from './optim/optimizer.js';
export { Adam, AdamW, type AdamOptions } from './optim/adam.js';
export { SGD, type SGDOptions } from './optim/sgd.js';
export * from './schedules/lr.js';
export { checkpoint } from './checkpoint.js';
export * from './weights.js';
export { Conv2d, ConvTranspose2d, type Conv2dOptions, type ConvTranspose2dOptions } from './layers/conv.js';
export { GroupNorm, LayerNorm, BatchNorm2d, type NormOptions } from './layers/norm.js';
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Upsample } from './layers/pool.js';
export { DatasetCheckError, throwIfProblems, mapBounded, formatProblem, reasonOf, LISTED_PROBLEMS, type DataProblem } from './data-check.js';
