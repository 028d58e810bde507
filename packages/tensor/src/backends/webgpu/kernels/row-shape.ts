import type { WebGPUBackend } from '../webgpu-backend.js';
import { env } from '../../../env.js';

/**
 * How a row-wise kernel (norms, softmax) maps rows onto invocations. Where the adapter has
 * subgroups of one fixed size, a workgroup is exactly one subgroup owning one row: its lanes read
 * consecutive elements and reduce with subgroupAdd/subgroupMax, with no barrier (barriers are what
 * costs on lavapipe). FOLIAR_ROW_SUBGROUPS=0 turns this off (the fallbacks stay tested with it).
 */
export function rowSubgroupSize(be: WebGPUBackend): number {
  const sg = be.rt.subgroups ? be.rt.subgroupSize : 0;
  return sg >= 4 && sg <= 128 && env('FOLIAR_ROW_SUBGROUPS') !== '0' ? sg : 0;
}
