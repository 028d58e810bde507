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
export { cleanStaleTemps, filterJsonl, pidAlive, type CleanStaleOptions } from './run-dir.js';
export { reportCliError, debugWanted } from './cli-errors.js';
export { DatasetCheckError, throwIfProblems, mapBounded, formatProblem, reasonOf, LISTED_PROBLEMS, type DataProblem } from './data-check.js';
export {
  runTrainLoop, prepareOutputDir, existingRunOutputs, latestCheckpoint, readCheckpointState, loadCheckpointWeights, writeLossCurve, emaDecayAt, BEST_CHECKPOINT,
  type TrainLoopOptions, type TrainLoopHooks, type TrainLoopResult, type TrainLoopContext, type EvaluationOutcome, type TrainCheckpointState,
} from './train-loop.js';
