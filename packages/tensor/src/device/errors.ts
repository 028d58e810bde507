/** Errors raised by the WebGPU runtime, each naming what failed. */
export class NoAdapterError extends Error {
  override name = 'NoAdapterError';
}
export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
}
export class GpuValidationError extends Error {
  override name = 'GpuValidationError';
}
export class GpuOutOfMemoryError extends Error {
  override name = 'GpuOutOfMemoryError';
}

export const NO_ADAPTER_HELP = [
  'No WebGPU adapter was found.',
  '  - Linux without a GPU: install Mesa >= 24 (lavapipe); on Debian bookworm run `npm run setup`',
  '    (it runs scripts/setup-vulkan.sh: mesa-vulkan-drivers from bookworm-backports).',
  '  - Linux with a GPU: install the vendor Vulkan driver (`vulkaninfo` should list it).',
  '  - macOS / Windows: Metal / D3D12 work out of the box; update the `webgpu` package.',
  '  - Or run on the CPU reference backend: FOLIAR_BACKEND=cpu.',
].join('\n');
