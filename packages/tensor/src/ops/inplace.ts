import { Tensor } from '../tensor.js';
import type { AnyTypedArray } from '../dtype.js';
import { broadcastsTo, fmtShape, numel, shapesEqual } from '../shape.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { ewInto } from './elementwise/index.js';

/**
 * In-place writes, for parameters, optimizer state and buffers: they keep the tensor's identity
 * (modules and optimizers hold references) and record no autograd history.
 */
function checkTarget(dst: Tensor, op: string): void {
  if (dst.requiresGrad && dst.isLeaf && isGradEnabled()) {
    throw new Error(`${op}: in-place write to a leaf that requires grad; wrap it in noGrad()`);
  }
}

/** dst[...] = src (src must broadcast to dst's shape, as in PyTorch; backends must match). */
export function copy_(dst: Tensor, src: Tensor): Tensor {
  checkTarget(dst, 'copy_');
  if (src.backend !== dst.backend) throw new Error(`copy_: source is on ${src.backend.name}, destination on ${dst.backend.name}`);
  if (!broadcastsTo(src.shape, dst.shape)) {
    throw new RangeError(`copy_: source ${fmtShape(src.shape)} cannot be broadcast to the destination ${fmtShape(dst.shape)}`);
  }
  if (src.storage === dst.storage) {
    const tmp = new Tensor(src.backend.alloc(src.dtype, src.size), src.shape);
    ewInto(tmp, 'copy', [src]);
    ewInto(dst, 'copy', [tmp]);
    tmp.dispose();
  } else ewInto(dst, 'copy', [src]);
  return dst;
}

export function fill_(dst: Tensor, value: number): Tensor {
  checkTarget(dst, 'fill_');
  if (dst.size > 0) ewInto(dst, 'fill', [], [value]);
  return dst;
}

export function zero_(dst: Tensor): Tensor {
  return fill_(dst, 0);
}

/** Overwrites dst with host data of the same number of elements (converted to dst's dtype). */
export function setData_(dst: Tensor, data: AnyTypedArray | readonly number[], shape?: readonly number[]): Tensor {
  checkTarget(dst, 'setData_');
  if (shape && !shapesEqual(shape, dst.shape)) throw new RangeError(`setData_: shape ${fmtShape(shape)} does not match ${fmtShape(dst.shape)}`);
  if (data.length !== numel(dst.shape)) throw new RangeError(`setData_: ${data.length} values for a tensor of shape ${fmtShape(dst.shape)}`);
  const typed = dst.dtype === 'int32' ? Int32Array.from(data as ArrayLike<number>) : data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  const src = new Tensor(dst.backend.upload(typed), dst.shape);
  ewInto(dst, 'copy', [src]);
  src.dispose();
  return dst;
}
