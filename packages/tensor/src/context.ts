import type { Backend, BackendName } from './backend.js';
import { CpuBackend } from './backends/cpu/cpu-backend.js';
import { WebGPUBackend } from './backends/webgpu/webgpu-backend.js';
import { WebGPURuntime } from './runtime/webgpu-runtime.js';
import type { DeviceOptions } from './device/acquire.js';
import { NoAdapterError } from './device/errors.js';
import { setPollingMode, type PollingMode } from './device/polling.js';
import { cpuKernels } from './backends/cpu/kernels/index.js';
import { webgpuKernels } from './backends/webgpu/kernels/index.js';

let cpu: CpuBackend | null = null;
let gpu: WebGPUBackend | null = null;
let current: Backend | null = null;

export interface InitOptions extends DeviceOptions {
  /**
   * 'auto' (default): WebGPU when an adapter exists, else the CPU backend with a warning (an error
   * instead when FOLIAR_REQUIRE_WEBGPU=1, as in CI). Env: FOLIAR_BACKEND.
   */
  backend?: BackendName | 'auto';
  polling?: PollingMode;
  /** Silence the CPU-fallback warning. */
  quiet?: boolean;
}

function env(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
}

export function cpuBackend(): CpuBackend {
  return (cpu ??= new CpuBackend(cpuKernels));
}

/** Chooses and initialises the default backend. Call once before creating tensors. */
export async function init(opts: InitOptions = {}): Promise<Backend> {
  const want = (opts.backend ?? (env('FOLIAR_BACKEND') as BackendName | undefined) ?? 'auto') as BackendName | 'auto';
  if (opts.polling) setPollingMode(opts.polling);
  if (want === 'cpu') return (current = cpuBackend());
  try {
    gpu ??= new WebGPUBackend(await WebGPURuntime.create(opts), webgpuKernels);
    return (current = gpu);
  } catch (e) {
    if (want === 'webgpu' || !(e instanceof NoAdapterError)) throw e;
    const require = env('FOLIAR_REQUIRE_WEBGPU');
    if (require && require !== '0') throw new NoAdapterError(`${(e as Error).message}\nfoliar: FOLIAR_REQUIRE_WEBGPU is set, so there is no fallback to the CPU backend.`);
    if (!opts.quiet) console.warn(`foliar: ${(e as Error).message}\nfoliar: falling back to the CPU reference backend.`);
    return (current = cpuBackend());
  }
}

/** The default backend (the CPU backend until `init()` chose another). */
export function getBackend(): Backend {
  return current ?? cpuBackend();
}

export function setBackend(b: Backend): void {
  current = b;
}

/** The WebGPU backend if initialised. */
export function webgpuBackend(): WebGPUBackend | null {
  return gpu;
}

/** Flushes queued GPU work, releases pooled buffers and destroys the device (lets the process exit promptly). */
export function shutdown(): void {
  if (gpu) gpu.rt.destroy();
  gpu = null;
  current = null;
}
