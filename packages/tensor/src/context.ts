import type { Backend, BackendName } from './backend.js';
import { CpuBackend } from './backends/cpu/cpu-backend.js';
import { WebGPUBackend } from './backends/webgpu/webgpu-backend.js';
import { WebGPURuntime } from './runtime/webgpu-runtime.js';
import type { DeviceOptions } from './device/acquire.js';
import { NoAdapterError } from './device/errors.js';
import { setPollingMode, type PollingMode } from './device/polling.js';
import { cpuKernels } from './backends/cpu/kernels/index.js';
import { webgpuKernels } from './backends/webgpu/kernels/index.js';
import { env } from './env.js';
import { PLATFORM } from '#platform';

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
  /**
   * With 'auto': throw NoAdapterError when there is no WebGPU adapter instead of falling back to the
   * CPU backend (what FOLIAR_REQUIRE_WEBGPU=1 does in Node; the way to ask for it in a browser).
   */
  requireWebGPU?: boolean;
}

/** What `init()` chose, and why: the one place that says which backend and adapter computations run on. */
export interface BackendInfo {
  /** The backend tensors are created on now. */
  backend: BackendName;
  /** What was asked for ('auto' unless init's `backend` or FOLIAR_BACKEND said otherwise). */
  requested: BackendName | 'auto';
  /** 'node' (Dawn binding) or 'browser' (navigator.gpu). */
  platform: 'node' | 'browser';
  /** The WebGPU adapter, when the WebGPU backend is in use. */
  adapter: null | {
    vendor: string; architecture: string; device: string; description: string; isSoftware: boolean;
    subgroupMinSize: number; subgroupMaxSize: number; features: string[]; maxStorageBufferBindingSize: number;
    /** requestAdapter() calls it took (null answers are retried). */
    attempts: number;
  };
  /** Why 'auto' ended on the CPU backend (the adapter error), else null. */
  fallbackReason: string | null;
}

let info: BackendInfo | null = null;
const platform = (): 'node' | 'browser' => PLATFORM;

function gpuInfo(requested: BackendName | 'auto'): BackendInfo {
  const rt = gpu!.rt;
  return {
    backend: 'webgpu', requested, platform: platform(), fallbackReason: null,
    adapter: { ...rt.info, features: [...rt.features].sort(), maxStorageBufferBindingSize: rt.limits.maxStorageBufferBindingSize, attempts: rt.adapterAttempts },
  };
}

/**
 * Which backend and adapter `init()` chose (and, after a CPU fallback, why). Before `init()`:
 * the CPU backend, nothing requested.
 */
export function backendInfo(): BackendInfo {
  if (info && current && current.name === info.backend) return info;
  if (current && gpu && current === gpu) return gpuInfo('webgpu');
  return { backend: 'cpu', requested: 'cpu', platform: platform(), adapter: null, fallbackReason: null };
}

/** backendInfo() as one line, e.g. `webgpu on google swiftshader (software, subgroups 4..4)`. */
export function describeBackend(i: BackendInfo = backendInfo()): string {
  if (i.backend === 'cpu') return `cpu (reference backend${i.fallbackReason ? `; no WebGPU: ${i.fallbackReason.split('\n')[0]}` : ''})`;
  const a = i.adapter!;
  const name = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' ') || 'unknown adapter';
  const sg = a.features.includes('subgroups') ? `, subgroups ${a.subgroupMinSize}..${a.subgroupMaxSize}` : '';
  return `webgpu on ${name} (${a.isSoftware ? 'software' : 'hardware'}${sg}${a.features.includes('shader-f16') ? ', f16' : ''}; ${i.platform})`;
}

export function cpuBackend(): CpuBackend {
  return (cpu ??= new CpuBackend(cpuKernels));
}

/** Chooses and initialises the default backend. Call once before creating tensors. */
export async function init(opts: InitOptions = {}): Promise<Backend> {
  const want = (opts.backend ?? (env('FOLIAR_BACKEND') as BackendName | undefined) ?? 'auto') as BackendName | 'auto';
  if (opts.polling) setPollingMode(opts.polling);
  if (want === 'cpu') {
    info = { backend: 'cpu', requested: 'cpu', platform: platform(), adapter: null, fallbackReason: null };
    return (current = cpuBackend());
  }
  try {
    gpu ??= new WebGPUBackend(await WebGPURuntime.create(opts), webgpuKernels);
    const lowered = env('FOLIAR_MAX_BINDING_BYTES');
    if (lowered) gpu.rt.setMaxBindingBytes(Number(lowered));
    info = gpuInfo(want);
    return (current = gpu);
  } catch (e) {
    if (want === 'webgpu' || !(e instanceof NoAdapterError)) throw e;
    const require = env('FOLIAR_REQUIRE_WEBGPU');
    if (require && require !== '0') throw new NoAdapterError(`${(e as Error).message}\nfoliar: FOLIAR_REQUIRE_WEBGPU is set, so there is no fallback to the CPU backend.`);
    if (opts.requireWebGPU) throw new NoAdapterError(`${(e as Error).message}\nfoliar: init({ requireWebGPU: true }), so there is no fallback to the CPU backend.`);
    if (!opts.quiet) console.warn(`foliar: ${(e as Error).message}\nfoliar: falling back to the CPU reference backend.`);
    info = { backend: 'cpu', requested: want, platform: platform(), adapter: null, fallbackReason: (e as Error).message };
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

/**
 * Lowers the WebGPU backend's binding limit (bytes, a multiple of 256, at least 4096) so that the split
 * paths for tensors larger than one binding run on any adapter (tests, `--small` checks); null restores
 * the adapter's maxStorageBufferBindingSize. FOLIAR_MAX_BINDING_BYTES sets it at init(). No effect on CPU.
 */
export function setMaxBindingBytes(bytes: number | null): void {
  gpu?.rt.setMaxBindingBytes(bytes);
}

/** Flushes queued GPU work, releases pooled buffers and destroys the device (lets the process exit promptly). */
export function shutdown(): void {
  if (gpu) gpu.rt.destroy();
  gpu = null;
  current = null;
  info = null;
}
