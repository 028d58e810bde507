// Shared by the conv test files: run a body with one conv2d kernel variant forced.
import { WebGPUBackend } from '@foliar/tensor';
import { setConvVariant, setConvWindowLanes, type ConvVariant } from '../../packages/tensor/src/ops/conv/webgpu.js';
import { requireGpu } from '../helpers.js';

/** Runs `body` with the variant (and the window variant's broadcast width) forced; restores both. */
export async function withVariant(v: ConvVariant, lanes: 4 | 8 | undefined, body: () => Promise<void>): Promise<void> {
  const gpu = requireGpu(`the conv2d '${v}' variant`);
  if (!(gpu instanceof WebGPUBackend)) throw new Error(`the WebGPU backend is a ${gpu.constructor.name}`);
  setConvVariant(gpu, v);
  setConvWindowLanes(gpu, lanes);
  try {
    await body();
  } finally {
    setConvVariant(gpu, undefined);
    setConvWindowLanes(gpu, undefined);
  }
}
