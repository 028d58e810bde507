import { NoAdapterError, NO_ADAPTER_HELP } from './errors.js';

export interface DeviceOptions {
  powerPreference?: GPUPowerPreference;
  /** Extra flags passed to dawn.node's `create()` (Node only), e.g. ['backend=vulkan']. */
  dawnFlags?: string[];
}

export interface AcquiredDevice {
  device: GPUDevice;
  adapter: GPUAdapter;
  features: Set<string>;
  limits: GPUSupportedLimits;
  info: { vendor: string; architecture: string; device: string; description: string; isSoftware: boolean; subgroupMinSize: number; subgroupMaxSize: number };
}

const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];

async function getGpu(flags: string[]): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu; // browsers (and Deno)
  // Node: dawn.node. Kept off globalThis.navigator: a global `gpu` object keeps the process alive.
  // cast: the `webgpu` package (dawn.node) ships no TypeScript types for its module
  const mod = (await import('webgpu')) as unknown as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  // GPUBufferUsage & co. are needed as globals by code written for browsers.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  // Cached, and so kept reachable: dawn.node destroys its native instance when this object is
  // garbage-collected, while mapAsync/onSubmittedWorkDone polls still use it (random crashes in
  // InstanceBase::ProcessEvents).
  const key = flags.join('\n');
  let gpu = nodeGpus.get(key);
  if (!gpu) nodeGpus.set(key, (gpu = mod.create(flags)));
  return gpu;
}

const nodeGpus = new Map<string, GPU>();

/** Acquires an adapter and a device with the adapter's maximum limits and the useful features. */
export async function acquireDevice(opts: DeviceOptions = {}): Promise<AcquiredDevice> {
  const gpu = await getGpu(opts.dawnFlags ?? []);
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) throw new NoAdapterError(NO_ADAPTER_HELP);
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
    info: { vendor, architecture, device: dev, description, isSoftware, subgroupMinSize: sg?.subgroupMinSize ?? 0, subgroupMaxSize: sg?.subgroupMaxSize ?? 0 },
  };
}
