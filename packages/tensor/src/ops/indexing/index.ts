import { Tensor } from '../../tensor.js';
import { normalizeDim, numel, fmtShape } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { tidy } from '../../scope.js';
import { mul } from '../elementwise/index.js';
import { sum } from '../reduce/index.js';
import { contiguous, transpose, unsqueeze } from '../views.js';
import { checkIndices, oneHotChecked } from './check.js';

function intIndex(index: Tensor, what: string): Tensor {
  if (index.dtype !== 'int32') throw new TypeError(`${what}: indices must be int32, got ${index.dtype}`);
  return index.isContiguous ? index : contiguous(index);
}

/**
 * x.index_select(dim, index): rows of `dim` picked by an int32 1-D index. Backward scatter-adds.
 * Ids outside [0, size) are refused (CPU: here; WebGPU: at the next readback). `op` names the caller.
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor, op = 'indexSelect'): Tensor {
  const d = normalizeDim(dim, x.rank);
  if (index.rank > 1) throw new RangeError(`${op}: index must be 1-D, got ${fmtShape(index.shape)}`);
  const idx = intIndex(index, op);
  const xc = x.isContiguous ? x : contiguous(x);
  const attrs: IndexSelectAttrs = {
    outer: numel(x.shape.slice(0, d)),
    size: x.shape[d]!,
    inner: numel(x.shape.slice(d + 1)),
    n: idx.size,
    op,
    ...(op === 'indexSelect' ? { dim: d } : {}),
  };
  const storage = x.backend.run('index_select', [xc, idx], attrs);
  const shape = [...x.shape];
  shape[d] = idx.size;
  const y = new Tensor(storage, shape);
  if (xc !== x) xc.dispose();
  const out = record(
    y,
    'index_select',
    [x],
    (g, [si]) => {
      const gc = g.isContiguous ? g : contiguous(g);
      return [new Tensor(g.backend.run('index_add', [gc, si!], attrs), [...x.shape])];
    },
    [idx],
  );
  if (idx !== index) idx.dispose();
  return out;
}

/** One-hot float32 encoding of int32 class ids: [...] -> [..., numClasses]; ids outside [0, numClasses) are refused. */
export function oneHot(ids: Tensor, numClasses: number): Tensor {
  if (ids.dtype !== 'int32') throw new TypeError(`oneHot: ids must be int32, got ${ids.dtype}`);
  checkIndices(ids, numClasses, 'oneHot', 'class index');
  return oneHotChecked(ids, numClasses);
}

/**
 * torch.gather along `dim`. Composed as a one-hot contraction (O(index · size of dim) work), which
 * suits the class-dimension uses in losses; autograd follows from the composition.
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normalizeDim(dim, x.rank);
  if (index.rank !== x.rank) throw new RangeError(`gather: index rank ${index.rank} differs from input rank ${x.rank}`);
  checkIndices(index, x.shape[d]!, 'gather', 'index');
  return tidy(() => {
    const last = x.rank - 1;
    const xm = d === last ? x : transpose(x, d, last); // [..., C]
    const im = d === last ? index : transpose(index, d, last); // [..., K]
    const C = x.shape[d]!;
    const hot = oneHotChecked(im, C); // [..., K, C]
    const picked = sum(mul(unsqueeze(xm, -2), hot), -1); // [..., K]
    return d === last ? picked : contiguous(transpose(picked, d, last));
  });
}

// The kernel contract of this op (index_select, index_add, index_check in Kernels, backends/kernel-attrs.ts).

/**
 * x contiguous [outer, size, inner], idx int32 [n] -> [outer, n, inner] (index_add: the reverse, summed).
 * index_select refuses ids outside [0, size) (see index_check); `op` and `dim` name them in the error.
 */
export interface IndexSelectAttrs {
  outer: number;
  size: number;
  inner: number;
  n: number;
  op?: string;
  dim?: number;
}

/**
 * index_check: input [ids] (contiguous int32, n elements); refuses any id outside [0, size) (but `ignore`) with
 * indexOutOfRange(op, what, id, size): the CPU throws at once, WebGPU flags it on the device and the
 * runtime throws at the next readback or sync (WebGPURuntime.boundsCheck).
 */
export interface IndexCheckAttrs {
  n: number;
  size: number;
  op: string;
  what: string;
  /** An id that is allowed besides [0, size) (crossEntropy's ignoreIndex); absent: none. */
  ignore?: number;
}
