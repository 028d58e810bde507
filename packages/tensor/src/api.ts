// The part of @foliar/tensor's public API that is the same in Node (index.ts) and in browsers
// (browser.ts); each adds its own file access (io/) to it.
// installs the op methods on Tensor.prototype (tensor.ts itself imports no op)
import './tensor-methods.js';
export { Tensor, fromTyped, type TensorLike } from './tensor.js';
export type { DType, AnyTypedArray } from './dtype.js';
export { bytesPerElement } from './dtype.js';
export * from './shape.js';
export { Storage, type Backend, type BackendName, type View, type MemoryStats } from './backend.js';
export type * from './backends/kernel-attrs.js';
export { init, getBackend, setBackend, cpuBackend, webgpuBackend, shutdown, setMaxBindingBytes, backendInfo, describeBackend, type InitOptions, type BackendInfo } from './context.js';
export { CpuBackend } from './backends/cpu/cpu-backend.js';
export { WebGPUBackend } from './backends/webgpu/webgpu-backend.js';
export {
  profile, profileScope, profileReport, resetProfile, formatProfile, isProfiling,
  type ProfileReport, type ProfileRow, type ProfileOptions,
} from './runtime/profiler.js';
export type { DeviceOptions } from './device/acquire.js';
export { setPollingMode, getPollingMode, awaitGpu, type PollingMode } from './device/polling.js';
export { NoAdapterError, DeviceLostError, GpuValidationError, GpuOutOfMemoryError } from './device/errors.js';
export { tidy, tidyAsync, keep } from './scope.js';
export { noGrad, isGradEnabled, setGradEnabled } from './autograd/grad-mode.js';
export { record, needsGrad, collectGradInputs } from './autograd/record.js';
export { Node, type BackwardFn } from './autograd/node.js';
export type { BackwardOptions } from './autograd/backward.js';
export { Generator, defaultGenerator, manualSeed } from './random/generator.js';
export { philox4x32 } from './random/philox.js';
export { ELEMENTWISE, type ElementwiseName, type ElementwiseDef, type ElementwiseRow } from './ops/elementwise/table.js';
export * from './ops/elementwise/index.js';
export * from './ops/reduce/index.js';
export * from './ops/views.js';
export * from './ops/matmul/index.js';
export * from './ops/nn.js';
export * from './ops/softmax/index.js';
export * from './ops/indexing/index.js';
export * from './ops/creation.js';
export * from './ops/random/index.js';
export * from './ops/inplace.js';
export { memory, liveTensors, resetPeakMemory } from './memory.js';
export * from './ops/conv/index.js';
export * from './ops/pool/index.js';
export * from './ops/norm/index.js';
export * from './ops/attention/index.js';
export * from './ops/optim/index.js';
export { matmulVariant, setMatmulVariant, matmulVariants, tuneMatmul, matmulSubgroupLanes, setMatmulSubgroupLanes, MATMUL_VARIANTS, type MatmulVariant } from './ops/matmul/webgpu.js';
export { setAttentionKernel, type AttentionKernel } from './ops/attention/webgpu.js';
export type { TuneResult } from './backends/webgpu/tuning.js';
export type { SubgroupLanes } from './ops/matmul/webgpu-subgroup.js';
