import type { View } from '../../backend.js';
import { ELEMENTWISE } from './table.js';
import type { ElementwisePair } from './index.js';

/**
 * A paired row (ElementwiseAttrs.pair) stores into the output's own storage, `offset` elements past
 * each output element: it needs an output view, a known row and a positive shift that keeps every
 * paired store inside the storage. Keeping the two views apart is the caller's (GEGLU: two halves).
 */
export function checkPair(pair: ElementwisePair, out: View | undefined): void {
  if (!(pair.op in ELEMENTWISE)) throw new Error(`elementwise: unknown paired op '${pair.op}'`);
  if (!out) throw new Error(`elementwise: a paired op ('${pair.op}') needs an output view`);
  // an f16 output runs through an f32 temporary of the view's own size (cast/boundary.ts): no room for the pair
  if (out.dtype !== 'float32') throw new TypeError(`elementwise: a paired op ('${pair.op}') writes float32 outputs, got ${out.dtype}`);
  if (!Number.isInteger(pair.offset) || pair.offset <= 0) throw new RangeError(`elementwise: paired op '${pair.op}' needs a positive integer offset, got ${pair.offset}`);
  let last = out.offset;
  out.shape.forEach((s, d) => { last += (s - 1) * Math.max(0, out.strides[d]!); });
  if (out.shape.every((s) => s > 0) && last + pair.offset >= out.storage.size) {
    throw new RangeError(`elementwise: paired op '${pair.op}' at offset ${pair.offset} would write element ${last + pair.offset} of a ${out.storage.size}-element storage`);
  }
}
