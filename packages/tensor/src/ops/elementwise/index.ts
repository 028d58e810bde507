import { Tensor, type TensorLike } from '../../tensor.js';
import type { View } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { broadcastShapes, broadcastStrides, broadcastsTo, shapesEqual, fmtShape } from '../../shape.js';
import type { ElementwiseName, WithGrad } from './table.js';
import { record } from '../../autograd/record.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { castTo } from '../cast/index.js';

function sameBackend(ts: readonly Tensor[], op: string): void {
  for (let i = 1; i < ts.length; i++) {
    if (ts[i]!.backend !== ts[0]!.backend) {
      throw new Error(`${op}: operands live on different backends (${ts[0]!.backend.name} and ${ts[i]!.backend.name}); move one with .to()`);
    }
  }
}

/** Runs a table op over broadcast inputs (no autograd). */
export function ew(op: ElementwiseName, inputs: readonly Tensor[], params: number[] = [], outDtype: DType = 'float32'): Tensor {
  sameBackend(inputs, op);
  let shape: number[];
  try {
    shape = broadcastShapes(...inputs.map((t) => t.shape));
  } catch (e) {
    throw new RangeError(`${op}: ${(e as Error).message}`);
  }
  const views: View[] = inputs.map((t) => ({
    storage: t.storage,
    shape,
    strides: broadcastStrides(t.shape, t.strides, shape),
    offset: t.offset,
    dtype: t.dtype,
  }));
  const backend = inputs[0]!.backend;
  const storage = backend.run('elementwise', views, { op, params, shape, outDtype });
  if (!storage) throw new Error(`${op}: the elementwise kernel returned no output`);
  return new Tensor(storage, shape);
}

/**
 * Writes op(inputs) into an existing view (no autograd): the primitive behind cat, pad, fill. With
 * `pair`, also pair.op(inputs) at pair.offset elements past each output element, in the same kernel.
 */
export function ewInto(out: View, op: ElementwiseName, inputs: readonly Tensor[], params: number[] = [], pair?: { op: ElementwiseName; offset: number }): void {
  const shape = [...out.shape];
  const views: View[] = inputs.map((t) => {
    // a source that does not broadcast to the output would be read out of bounds
    if (!broadcastsTo(t.shape, shape)) throw new RangeError(`${op}: source ${fmtShape(t.shape)} cannot be broadcast to the destination ${fmtShape(shape)}`);
    const lead = Math.max(0, t.rank - shape.length); // extra leading size-1 dims
    return {
      storage: t.storage,
      shape,
      strides: broadcastStrides(t.shape.slice(lead), t.strides.slice(lead), shape),
      offset: t.offset,
      dtype: t.dtype,
    };
  });
  for (const v of views) {
    if (v.storage === out.storage) throw new Error(`${op}: the output view aliases an input; write into a fresh tensor`);
  }
  out.storage.backend.run('elementwise', views, { op, params, shape, out, ...(pair ? { pair } : {}) });
}

/** Sums a broadcast gradient back to `shape`. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0) throw new Error(`cannot reduce gradient ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
  const dims: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) dims.push(i);
  }
  // through the methods (tensor-methods.ts), not imports: reduce and views import this module
  const s = dims.length ? g.sum(dims, true) : g;
  return s.reshape([...shape]);
}

function scalarLike(v: number, like: Tensor): Tensor {
  return new Tensor(like.backend.upload(new Float32Array([v])), []);
}

function asTensor(v: TensorLike, like: Tensor): Tensor {
  return typeof v === 'number' ? scalarLike(v, like) : v;
}

type Unary = (x: Tensor) => Tensor;

function unary(op: ElementwiseName, grad: (g: Tensor, x: Tensor, y: Tensor) => Tensor, saveOut = false): Unary {
  return (x) => {
    const y = ew(op, [x]);
    return record(y, op, [x], (g, [sx, sy]) => [grad(g, sx!, sy!)], saveOut ? [x, y] : [x]);
  };
}

/**
 * The op of a table row that carries its gradient: forward kernel `op`, backward kernel `<op>_grad`
 * over (g, x), both generated from the row. Adding such an op is its row (and a test).
 */
export function rowOp(op: WithGrad, x: Tensor, params: number[] = []): Tensor {
  const y = ew(op, [x], params);
  return record(y, op, [x], (g, [sx]) => [ew(`${op}_grad`, [g, sx!], params)], [x]);
}

// Rows with their gradient in the table.
export const tanh: Unary = (x) => rowOp('tanh', x);
export const sigmoid: Unary = (x) => rowOp('sigmoid', x);
export const relu: Unary = (x) => rowOp('relu', x);
export const silu: Unary = (x) => rowOp('silu', x);
export const quickGelu: Unary = (x) => rowOp('quick_gelu', x);
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return rowOp(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}
/** clamp(x, min, max); a missing bound is infinite, so ±Inf inputs pass through it as in PyTorch. */
export function clamp(x: Tensor, min = -Infinity, max = Infinity): Tensor {
  return rowOp('clamp', x, [min, max]);
}

// Unary ops whose backward reuses the output or other rows: forward from the table, backward composed.
export const neg: Unary = unary('neg', (g) => ew('neg', [g]));
export const exp: Unary = unary('exp', (g, _x, y) => ew('mul', [g, y]), true);
export const log: Unary = unary('log', (g, x) => ew('div', [g, x]));
export const sqrt: Unary = unary('sqrt', (g, _x, y) => ew('div', [ew('mul_scalar', [g], [0.5]), y]), true);
export const rsqrt: Unary = unary('rsqrt', (g, _x, y) => ew('mul', [g, ew('mul_scalar', [ew('pow_scalar', [y], [3])], [-0.5])]), true);
export const abs: Unary = unary('abs', (g, x) => ew('mul', [g, ew('sign', [x])]));
export const sin: Unary = unary('sin', (g, x) => ew('mul', [g, ew('cos', [x])]));
export const cos: Unary = unary('cos', (g, x) => ew('mul', [g, ew('neg', [ew('sin', [x])])]));
export const square: Unary = unary('square', (g, x) => ew('mul', [g, ew('mul_scalar', [x], [2])]));

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x.detach();
  // float16 ↔ float32 is the cast op's (bit-exact rounding, autograd); ints reach f16 through f32
  if (x.dtype === 'float16' || dtype === 'float16') {
    if (x.dtype === 'float32' || x.dtype === 'float16') return noGrad(() => castTo(x, dtype));
    const f = ew('copy', [x], [], 'float32');
    const h = noGrad(() => castTo(f, dtype));
    f.dispose();
    return h;
  }
  return ew('copy', [x], [], dtype);
}

// Binary ops with broadcasting; numbers use the scalar rows (no upload).
export function add(a: Tensor, b: TensorLike): Tensor {
  if (typeof b === 'number') {
    const y = ew('add_scalar', [a], [b]);
    return record(y, 'add', [a], (g) => [g]);
  }
  const y = ew('add', [a, b]);
  return record(y, 'add', [a, b], (g) => [sumToShape(g, a.shape), sumToShape(g, b.shape)]);
}

export function sub(a: Tensor, b: TensorLike): Tensor {
  if (typeof b === 'number') return add(a, -b);
  const y = ew('sub', [a, b]);
  // no negated copy for an operand without a gradient (a loss's target)
  return record(y, 'sub', [a, b], (g) => [a.requiresGrad ? sumToShape(g, a.shape) : null, b.requiresGrad ? sumToShape(ew('neg', [g]), b.shape) : null]);
}

export function mul(a: Tensor, b: TensorLike): Tensor {
  if (typeof b === 'number') {
    const y = ew('mul_scalar', [a], [b]);
    return record(y, 'mul', [a], (g) => [ew('mul_scalar', [g], [b])]);
  }
  const y = ew('mul', [a, b]);
  return record(
    y,
    'mul',
    [a, b],
    (g, [sa, sb]) => [a.requiresGrad ? sumToShape(ew('mul', [g, sb!]), a.shape) : null, b.requiresGrad ? sumToShape(ew('mul', [g, sa!]), b.shape) : null],
    [a, b],
  );
}

export function div(a: Tensor, b: TensorLike): Tensor {
  if (typeof b === 'number') return mul(a, 1 / b);
  const y = ew('div', [a, b]);
  return record(
    y,
    'div',
    [a, b],
    (g, [sa, sb]) => [
      a.requiresGrad ? sumToShape(ew('div', [g, sb!]), a.shape) : null,
      b.requiresGrad ? sumToShape(ew('neg', [ew('div', [ew('mul', [g, sa!]), ew('square', [sb!])])]), b.shape) : null,
    ],
    [a, b],
  );
}

export function pow(a: Tensor, b: TensorLike): Tensor {
  if (typeof b === 'number') {
    const y = ew('pow_scalar', [a], [b]);
    return record(y, 'pow', [a], (g, [sa]) => [ew('mul', [g, ew('mul_scalar', [ew('pow_scalar', [sa!], [b - 1])], [b])])], [a]);
  }
  const y = ew('pow', [a, b]);
  return record(
    y,
    'pow',
    [a, b],
    (g, [sa, sb, sy]) => [
      a.requiresGrad ? sumToShape(ew('mul', [g, ew('mul', [sb!, ew('pow', [sa!, ew('add_scalar', [sb!], [-1])])])]), a.shape) : null,
      b.requiresGrad ? sumToShape(ew('mul', [g, ew('mul', [sy!, ew('log', [sa!])])]), b.shape) : null,
    ],
    [a, b, y],
  );
}

function minmax(op: 'maximum' | 'minimum') {
  return (a: Tensor, bIn: TensorLike): Tensor => {
    const b = asTensor(bIn, a);
    const y = ew(op, [a, b]);
    const cmp = op === 'maximum' ? 'gt' : 'lt';
    const out = record(
      y,
      op,
      [a, b],
      (g, [sa, sb]) => {
        // Ties split the gradient evenly, as PyTorch does.
        const wa = ew('add', [ew(cmp, [sa!, sb!]), ew('mul_scalar', [ew('eq', [sa!, sb!])], [0.5])]);
        const wb = ew('axpb', [wa], [-1, 1]);
        return [sumToShape(ew('mul', [g, wa]), a.shape), sumToShape(ew('mul', [g, wb]), b.shape)];
      },
      [a, b],
    );
    if (b !== bIn) b.dispose();
    return out;
  };
}
export const maximum = minmax('maximum');
export const minimum = minmax('minimum');

function compare(op: 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne') {
  return (a: Tensor, bIn: TensorLike): Tensor => {
    const b = asTensor(bIn, a);
    const y = noGrad(() => ew(op, [a, b]));
    if (b !== bIn) b.dispose();
    return y;
  };
}
/** Comparisons return float32 masks (1 where true, 0 where false). */
export const lt = compare('lt');
export const le = compare('le');
export const gt = compare('gt');
export const ge = compare('ge');
export const eq = compare('eq');
export const ne = compare('ne');

/** where(cond, a, b): a where cond != 0, else b (broadcasting). */
export function where(cond: Tensor, aIn: TensorLike, bIn: TensorLike): Tensor {
  const a = asTensor(aIn, cond), b = asTensor(bIn, cond);
  const y = ew('where', [cond, a, b]);
  const out = record(
    y,
    'where',
    [a, b],
    (g, [sc]) => {
      const z = scalarLike(0, g);
      const r = [sumToShape(ew('where', [sc!, g, z]), a.shape), sumToShape(ew('where', [sc!, z, g]), b.shape)];
      z.dispose();
      return r;
    },
    [cond],
  );
  if (a !== aIn) a.dispose();
  if (b !== bIn) b.dispose();
  return out;
}

/**
 * GEGLU: x [..., 2C] → x[..., :C] · gelu(x[..., C:]) (exact gelu, diffusers' feed-forward). One kernel
 * forward; the backward writes both halves of the input's gradient with one kernel (a paired row),
 * where the composed chunk / gelu / mul took eight (two pads of the halves, their fills and their sum).
 */
export function geglu(x: Tensor): Tensor {
  const c2 = x.shape[x.rank - 1];
  if (x.rank === 0 || c2 === undefined || c2 % 2 !== 0) throw new RangeError(`geglu: the last dim of ${fmtShape(x.shape)} must be even`);
  const C = c2 / 2;
  const last = x.strides[x.rank - 1]!;
  const shape = [...x.shape.slice(0, -1), C];
  const half = (t: Tensor, i: number): Tensor => Tensor.view(t, shape, [...t.strides], t.offset + i * C * last);
  const h = half(x, 0), gate = half(x, 1);
  const y = ew('geglu', [h, gate]);
  h.dispose();
  gate.dispose();
  return record(
    y,
    'geglu',
    [x],
    (g, [sx]) => {
      const sh = half(sx!, 0), sg = half(sx!, 1);
      const dx = new Tensor(x.backend.alloc('float32', x.size), [...x.shape]);
      // both halves in one kernel: d hidden at [..., j], d gate C elements on at [..., C + j]
      ewInto({ storage: dx.storage, shape, strides: [...dx.strides], offset: 0, dtype: 'float32' }, 'geglu_dh', [g, sh, sg], [], { op: 'geglu_dgate', offset: C });
      sh.dispose();
      sg.dispose();
      return [dx];
    },
    [x],
  );
}

/** a + value * b * c (torch.addcmul), no autograd: used by optimizers and schedulers. */
export function addcmul(a: Tensor, b: Tensor, c: Tensor, value = 1): Tensor {
  return ew('addcmul', [a, b, c], [value]);
}

/** alpha * a + beta * b in one kernel. */
export function axpby(alpha: number, a: Tensor, beta: number, b: Tensor): Tensor {
  const y = ew('axpby', [a, b], [alpha, beta]);
  return record(y, 'axpby', [a, b], (g) => [sumToShape(ew('mul_scalar', [g], [alpha]), a.shape), sumToShape(ew('mul_scalar', [g], [beta]), b.shape)]);
}

// The kernel contract of this op (its entry of Kernels in backends/kernel-attrs.ts).

/**
 * The contract of each kernel every backend implements. Ops (ops/) prepare the views so that
 * kernels stay simple: inputs of `elementwise` arrive already broadcast (stride 0 on broadcast dims).
 */
export interface ElementwiseAttrs {
  op: string;
  params?: number[];
  /** Output shape; every input view has this shape (broadcast strides). */
  shape: number[];
  /** Write into this view instead of allocating a contiguous output. */
  out?: View;
  outDtype?: DType;
  /**
   * A second row over the same inputs, stored `offset` elements past each output element (same
   * storage and strides): two results of the same elements in one kernel, e.g. the two halves of
   * GEGLU's input gradient. Needs `out`.
   */
  pair?: ElementwisePair;
}

export interface ElementwisePair {
  op: string;
  /** Elements between an output element and its pair (> 0; the pair's view must not overlap the output's). */
  offset: number;
}
