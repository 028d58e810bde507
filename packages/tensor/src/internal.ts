/**
 * @foliar/tensor/internal: the machinery under the public API, for backends, benches and tests that
 * drive kernels and GPU buffers directly. Not covered by the package's stability promise: these move
 * when the kernels do. Users need only '@foliar/tensor'.
 */
import './tensor-methods.js';
export type { KernelFn, KernelTable } from './backend.js';
export { cpuKernels } from './backends/cpu/kernels/index.js';
export { webgpuKernels } from './backends/webgpu/kernels/index.js';
export { CpuStorage } from './backends/cpu/cpu-backend.js';
export { GpuStorage, UniformWriter, bufferOf, grid } from './backends/webgpu/webgpu-backend.js';
export { WebGPURuntime, type DispatchSpec } from './runtime/webgpu-runtime.js';
export { BufferPool } from './runtime/buffer-pool.js';
export { profilerGpuObjects } from './runtime/profiler.js';
export { acquireDevice, type DeviceOptions, type AcquiredDevice } from './device/acquire.js';
export { WGSL_PRELUDE } from './ops/scalar-math.js';
export { subgroupLanesFor, type SubgroupLanes } from './ops/matmul/webgpu-subgroup.js';
export { tuningCachePath, adapterKey } from './backends/webgpu/tuning.js';
export { coalesce as coalesceDims } from './ops/elementwise/webgpu.js';
export { setNormRowMapping, type NormRowMapping } from './ops/norm/webgpu.js';
