import { Tensor } from '../../tensor.js';
import { normalizeDim } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { contiguous, transpose } from '../views.js';

/** Float-only: the kernels would read int bits as floats (PyTorch refuses too). */
function requireFloat(x: Tensor, op: string): void {
  if (x.dtype !== 'float32') throw new TypeError(`${op}: expected a float32 input, got ${x.dtype} (cast it with .toFloat())`);
}

function rowwise(x: Tensor, dim: number, log: boolean): Tensor {
  requireFloat(x, log ? 'logSoftmax' : 'softmax');
  const d = normalizeDim(dim, x.rank);
  const last = x.rank - 1;
  const moved = d === last ? x : transpose(x, d, last);
  const c = moved.isContiguous ? moved : contiguous(moved);
  const cols = x.rank === 0 ? 1 : c.shape[last]!;
  const rows = cols === 0 ? 0 : c.size / cols;
  const storage = c.backend.run('softmax', [c], { rows, cols, log });
  const yMoved = new Tensor(storage, c.shape);
  if (c !== moved) c.dispose();
  if (moved !== x) moved.dispose();
  const y = yMoved.rank && d !== last ? contiguousTransposed(yMoved, d, last) : yMoved;
  return record(
    y,
    log ? 'log_softmax' : 'softmax',
    [x],
    (g, [sy]) => {
      const gm = d === last ? g : transpose(g, d, last);
      const ym = d === last ? sy! : transpose(sy!, d, last);
      const gc = gm.isContiguous ? gm : contiguous(gm);
      const yc = ym.isContiguous ? ym : contiguous(ym);
      const dx = new Tensor(g.backend.run('softmax_backward', [yc, gc], { rows, cols, log }), yc.shape);
      return [d === last ? dx : transpose(dx, d, last)];
    },
    [y],
  );
}

function contiguousTransposed(t: Tensor, d: number, last: number): Tensor {
  const v = transpose(t, d, last);
  const c = contiguous(v);
  v.dispose();
  t.dispose();
  return c;
}

/** Softmax along `dim` (one fused, max-subtracted kernel per row). */
export function softmax(x: Tensor, dim = -1): Tensor {
  return rowwise(x, dim, false);
}
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return rowwise(x, dim, true);
}

// The kernel contract of this op (its entries softmax and softmax_backward of Kernels in backends/kernel-attrs.ts).

export interface SoftmaxAttrs {
  rows: number;
  cols: number;
  log: boolean;
}
