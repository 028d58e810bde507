import { NoAdapterError, NO_ADAPTER_HELP } from './errors.js';
import { nodeGpu } from '#platform';

export interface DeviceOptions {
  powerPreference?: GPUPowerPreference;
  /** Extra flags passed to dawn.node's `create()` (Node only), e.g. ['backend=vulkan']. */
  dawnFlags?: string[];
  /** How many times to ask for an adapter before giving up (default 3; a null answer is retried after 100, 200… ms). */
  adapterAttempts?: number;
}

export interface AcquiredDevice {
  device: GPUDevice;
  adapter: GPUAdapter;
  features: Set<string>;
  limits: GPUSupportedLimits;
  info: { vendor: string; architecture: string; device: string; description: string; isSoftware: boolean; subgroupMinSize: number; subgroupMaxSize: number };
  /** How many requestAdapter() calls it took. */
  adapterAttempts: number;
}

const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];

async function getGpu(flags: string[]): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu; // browsers (and Deno)
  // Node: dawn.node (platform/node.ts); in a browser without navigator.gpu this throws NoAdapterError
  const gpu = await nodeGpu(flags);
  if (!gpu) throw new NoAdapterError(NO_ADAPTER_HELP);
  return gpu;
}

/**
 * requestAdapter, asked again when it answers null: Chromium's first answer is sometimes null while
 * its GPU process is still starting (seen in 3 of 4 headless starts with some flags).
 */
async function requestAdapterWithRetry(gpu: GPU, opts: GPURequestAdapterOptions, tries: number, delayMs: number): Promise<{ adapter: GPUAdapter | null; attempts: number }> {
  for (let i = 1; ; i++) {
    const adapter = await gpu.requestAdapter(opts);
    if (adapter || i >= tries) return { adapter, attempts: i };
    await new Promise((r) => setTimeout(r, delayMs * i));
  }
}

/** Acquires an adapter and a device with the adapter's maximum limits and the useful features. */
export async function acquireDevice(opts: DeviceOptions = {}): Promise<AcquiredDevice> {
  const gpu = await getGpu(opts.dawnFlags ?? []);
  const tries = Math.max(1, opts.adapterAttempts ?? 3);
  const { adapter, attempts } = await requestAdapterWithRetry(gpu, { powerPreference: opts.powerPreference ?? 'high-performance' }, tries, 100);
  if (!adapter) throw new NoAdapterError(`${NO_ADAPTER_HELP}\n(requestAdapter() answered null ${attempts} time${attempts > 1 ? 's' : ''}.)`);
  const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  // Ask for everything the adapter offers: the defaults (128 MiB bindings, 8 storage buffers) are too small.
  // cast: GPUSupportedLimits has no index signature, and the loop below reads its fields by name
  const lim = adapter.limits as unknown as Record<string, number>;
  for (const key of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxComputeWorkgroupSizeZ',
    'maxComputeWorkgroupsPerDimension',
    'maxUniformBufferBindingSize',
    'maxBindGroups',
  ]) {
    if (typeof lim[key] === 'number') requiredLimits[key] = lim[key]!;
  }
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  const ai = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  const vendor = ai?.vendor ?? '';
  const architecture = ai?.architecture ?? '';
  const dev = ai?.device ?? '';
  const description = ai?.description ?? '';
  const text = `${vendor} ${architecture} ${dev} ${description}`.toLowerCase();
  const isSoftware = /llvmpipe|lavapipe|swiftshader|software|cpu/.test(text);
  // cast: subgroupMinSize/subgroupMaxSize are not in @webgpu/types' GPUAdapterInfo yet
  const sg = ai as unknown as { subgroupMinSize?: number; subgroupMaxSize?: number } | undefined;
  return {
    device,
    adapter,
    features: new Set(features as string[]),
    limits: device.limits,
    adapterAttempts: attempts,
    info: { vendor, architecture, device: dev, description, isSoftware, subgroupMinSize: sg?.subgroupMinSize ?? 0, subgroupMaxSize: sg?.subgroupMaxSize ?? 0 },
  };
}
