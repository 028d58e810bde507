import type { Tensor } from '../../tensor.js';
import type { IndexCheckAttrs } from './index.js';
import { tidy } from '../../scope.js';
import { ew } from '../elementwise/index.js';
import { contiguous, unsqueeze } from '../views.js';
import { arange } from '../creation.js';

/**
 * Refuses ids outside [0, size) (except `ignore`, when given) with a RangeError naming `op`, the bad
 * value and the range: the CPU throws here; WebGPU checks on the device, and the runtime throws at the next readback or sync.
 */
export function checkIndices(ids: Tensor, size: number, op: string, what: string, ignore?: number): void {
  if (ids.dtype !== 'int32') throw new TypeError(`${op}: ${what} values must be int32, got ${ids.dtype}`);
  if (ids.size === 0) return;
  const c = ids.isContiguous ? ids : contiguous(ids);
  const attrs: IndexCheckAttrs = { n: c.size, size, op, what, ...(ignore !== undefined ? { ignore } : {}) };
  ids.backend.run('index_check', [c], attrs);
  if (c !== ids) c.dispose();
}

/** One-hot float32 of int32 ids already checked: [...] -> [..., numClasses] (an id outside the range: a zero row). */
export function oneHotChecked(ids: Tensor, numClasses: number): Tensor {
  return tidy(() => ew('eq', [unsqueeze(ids, -1), arange(0, numClasses, 1, { dtype: 'int32', backend: ids.backend })]));
}
