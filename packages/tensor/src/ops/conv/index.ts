import { Tensor } from '../../tensor.js';
import type { Storage, View } from '../../backend.js';
import { fmtShape, isContiguousFrom, shapesEqual } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { ew } from '../elementwise/index.js';
import { sum } from '../reduce/index.js';
import { contiguous, reshape } from '../views.js';

/** A pair (height, width) or one value for both. */
export type Size2 = number | readonly [number, number];
/** number, [ph, pw], [top, bottom, left, right] (asymmetric), or PyTorch's 'valid' / 'same' (stride 1). */
export type Padding2d = number | readonly [number, number] | readonly [number, number, number, number] | 'valid' | 'same';

export interface Conv2dOptions {
  stride?: Size2;
  padding?: Padding2d;
  dilation?: Size2;
  groups?: number;
}

/** conv2d's call options: the geometry, and a residual added in the convolution's store. */
export interface Conv2dCallOptions extends Conv2dOptions {
  /**
   * Added to the output ([N, K, Ho, Wo], float32): conv2d(x, w, b, { addend: r }) equals
   * conv2d(x, w, b) + r, computed in one kernel; r's gradient is the output's.
   */
  addend?: Tensor | null;
}

export interface ConvTranspose2dOptions {
  stride?: Size2;
  padding?: Size2;
  outputPadding?: Size2;
  dilation?: Size2;
  groups?: number;
}

export function pair(v: Size2 | undefined, dflt: number, op: string, what: string, min = 1): [number, number] {
  const p: readonly number[] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : v;
  if (p.length !== 2 || !p.every((d) => Number.isInteger(d) && d >= min)) {
    throw new RangeError(`${op}: ${what} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return [p[0]!, p[1]!];
}

/** Activations are float32; weights may be stored as float16 (read in place, f32 accumulation; issue 16). */
function checkInput(x: Tensor, op: string, what = 'input', f16 = false): void {
  if (x.dtype !== 'float32' && !(f16 && x.dtype === 'float16')) throw new TypeError(`${op}: expected a float32${f16 ? ' or float16' : ''} ${what}, got ${x.dtype}`);
  if (x.rank !== 4) throw new RangeError(`${op}: expected a 4-D ${what} [N, C, H, W], got ${fmtShape(x.shape)}`);
}

function checkBackends(op: string, x: Tensor, ...others: (Tensor | null | undefined)[]): void {
  for (const t of others) {
    if (t && t.backend !== x.backend) throw new Error(`${op}: operands live on different backends (${x.backend.name} and ${t.backend.name}); move one with .to()`);
  }
}

/** Each image's [c, h, w] is contiguous (the image stride may be anything). */
const imageContiguous = (t: Tensor): boolean => t.rank === 4 && isContiguousFrom(t.shape, t.strides, 1);

/** Contiguous handle without autograd (an alias when x already is contiguous). */
function contig(t: Tensor): Tensor {
  return noGrad(() => (t.isContiguous ? t.detach() : contiguous(t)));
}

/**
 * Raw kernels (no autograd); operands are made contiguous here, except an addend (last input with
 * hasAddend), which the kernels read through its strides (a broadcast one stays unmaterialised).
 */
function runConv(kernel: 'conv2d' | 'conv2d_grad_input' | 'conv2d_grad_weight', a: Conv2dAttrs, ins: Tensor[], shape: number[]): Tensor {
  // dy keeps any image stride (the gradient of a concatenation arrives as a channel slice)
  const dyAt = kernel === 'conv2d_grad_input' ? 0 : kernel === 'conv2d_grad_weight' ? 1 : -1;
  const views: Tensor[] = ins.map((t, i) => ((a.hasAddend && i === ins.length - 1) || (i === dyAt && imageContiguous(t)) ? t.detach() : contig(t)));
  const s = ins[0]!.backend.run(kernel, views, a);
  for (const v of views) v.dispose();
  return new Tensor(s, shape);
}

export const conv2dForwardRaw = (x: Tensor, w: Tensor, bias: Tensor | null, a: Conv2dAttrs, addend: Tensor | null = null): Tensor =>
  runConv('conv2d', { ...a, hasBias: !!bias, hasAddend: !!addend }, [x, w, ...(bias ? [bias] : []), ...(addend ? [addend] : [])], [a.n, a.k, a.ho, a.wo]);
/** dx, plus `addend` (x's gradient from its other uses) added in the kernel's store when given. */
export const conv2dGradInputRaw = (dy: Tensor, w: Tensor, a: Conv2dAttrs, addend: Tensor | null = null): Tensor =>
  runConv('conv2d_grad_input', { ...a, hasBias: false, hasAddend: !!addend }, addend ? [dy, w, addend] : [dy, w], [a.n, a.c, a.h, a.w]);
export const conv2dGradWeightRaw = (x: Tensor, dy: Tensor, a: Conv2dAttrs): Tensor =>
  runConv('conv2d_grad_weight', { ...a, hasBias: false, biasGrad: false }, [x, dy], [a.k, a.c / a.groups, a.kh, a.kw]);

/**
 * The weight gradient and the bias gradient Σ dy over (n, oy, ox) from one kernel run: the kernel
 * reads every dy value for the weight gradient anyway, so it also sums them per output channel
 * (no separate reduction). Both are views of one storage: dweight at 0, dbias after it.
 */
export function conv2dGradWeightBiasRaw(x: Tensor, dy: Tensor, a: Conv2dAttrs): [Tensor, Tensor] {
  const cg = a.c / a.groups;
  const dw = runConv('conv2d_grad_weight', { ...a, hasBias: false, biasGrad: true }, [x, dy], [a.k, cg, a.kh, a.kw]);
  const db = Tensor.view(dw, [a.k], [1], a.k * cg * a.kh * a.kw);
  return [dw, db];
}

function padding4(p: Padding2d | undefined, op: string, kh: number, kw: number, dil: [number, number], stride: [number, number]): [number, number, number, number] {
  if (p === undefined || p === 'valid') return [0, 0, 0, 0];
  if (p === 'same') {
    if (stride[0] !== 1 || stride[1] !== 1) throw new RangeError(`${op}: padding 'same' needs stride 1, got ${JSON.stringify(stride)}`);
    const th = dil[0] * (kh - 1), tw = dil[1] * (kw - 1);
    // PyTorch puts the odd extra pixel at the bottom/right
    return [th >> 1, th - (th >> 1), tw >> 1, tw - (tw >> 1)];
  }
  const v: readonly number[] = typeof p === 'number' ? [p, p, p, p] : p.length === 2 ? [p[0]!, p[0]!, p[1]!, p[1]!] : p;
  if (v.length !== 4 || !v.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new RangeError(`${op}: padding must be a non-negative integer, [ph, pw] or [top, bottom, left, right], got ${JSON.stringify(p)}`);
  }
  return [v[0]!, v[1]!, v[2]!, v[3]!];
}

/**
 * torch.nn.functional.conv2d: x [N, C, H, W], weight [K, C / groups, kh, kw], bias [K].
 * Padding may be asymmetric ([top, bottom, left, right], e.g. the VAE's Downsample2D).
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dCallOptions = {}): Tensor {
  const op = 'conv2d';
  checkInput(x, op);
  checkInput(weight, op, 'weight', true);
  const addend = opts.addend ?? null;
  checkBackends(op, x, weight, bias, addend);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [K, Cg, kh, kw] = weight.shape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0 || K % groups !== 0) {
    throw new RangeError(`${op}: groups ${groups} must divide both the ${C} input channels of ${fmtShape(x.shape)} and the ${K} output channels of weight ${fmtShape(weight.shape)}`);
  }
  if (Cg * groups !== C) {
    throw new RangeError(`${op}: weight ${fmtShape(weight.shape)} expects ${Cg * groups} input channels (groups ${groups}), input ${fmtShape(x.shape)} has ${C}`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== K)) throw new RangeError(`${op}: bias ${fmtShape(bias.shape)} must be [${K}] for weight ${fmtShape(weight.shape)}`);
  if (bias && bias.dtype !== 'float32' && bias.dtype !== 'float16') throw new TypeError(`${op}: expected a float32 or float16 bias, got ${bias.dtype}`);
  const stride = pair(opts.stride, 1, op, 'stride');
  const dil = pair(opts.dilation, 1, op, 'dilation');
  const [pt, pb, pl, pr] = padding4(opts.padding, op, kh, kw, dil, stride);
  const eh = dil[0] * (kh - 1) + 1, ew_ = dil[1] * (kw - 1) + 1;
  if (H + pt + pb < eh || W + pl + pr < ew_) {
    throw new RangeError(`${op}: kernel ${kh}x${kw} (dilation ${dil.join('x')}) is larger than the padded input ${H + pt + pb}x${W + pl + pr} of ${fmtShape(x.shape)}`);
  }
  const a: Conv2dAttrs = {
    n: N, c: C, h: H, w: W, k: K,
    ho: Math.floor((H + pt + pb - eh) / stride[0]) + 1,
    wo: Math.floor((W + pl + pr - ew_) / stride[1]) + 1,
    kh, kw, strideH: stride[0], strideW: stride[1], dilH: dil[0], dilW: dil[1], padTop: pt, padLeft: pl, groups,
  };
  if (addend) {
    const want = [N, K, a.ho, a.wo];
    if (addend.dtype !== 'float32' || !shapesEqual(addend.shape, want)) {
      throw new RangeError(`${op}: addend ${addend.dtype} ${fmtShape(addend.shape)} must be float32 ${fmtShape(want)} (the output's shape)`);
    }
  }
  const needX = weight.requiresGrad, needW = x.requiresGrad;
  // the contiguous input the kernel reads is also what the weight gradient reads (a permuted x was copied twice)
  const xc = needX && !x.isContiguous ? contig(x) : x;
  const y = conv2dForwardRaw(xc, weight, bias ?? null, a, addend);
  const inputs = [x, weight, ...(bias ? [bias] : []), ...(addend ? [addend] : [])];
  const out = record(
    y,
    op,
    inputs,
    (g, saved, take) => {
      const sx = needX ? saved[0]! : null;
      const sw = needW ? saved[needX ? 1 : 0]! : null;
      // one gradient layout for all three: the kernels read any image stride (a channel slice of a
      // concatenation's gradient); anything else is copied once here, not by each kernel
      const gc = imageContiguous(g) ? g.detach() : contig(g);
      const needB = !!bias?.requiresGrad;
      // the bias gradient comes out of the weight-gradient kernel when that runs (and has columns)
      const [dw, db] = sx && needB && a.c / a.groups > 0 ? conv2dGradWeightBiasRaw(sx, gc, a) : [sx ? conv2dGradWeightRaw(sx, gc, a) : null, needB ? sum(gc, [0, 2, 3]) : null];
      // x's gradient from its other uses so far (a skip connection) is added in the input-gradient kernel
      const acc = sw ? take(0) : null;
      const out = [sw ? conv2dGradInputRaw(gc, sw, a, acc) : null, dw, ...(bias ? [db] : []), ...(addend ? [addend.requiresGrad ? g : null] : [])];
      gc.dispose();
      return out;
    },
    [...(needX ? [xc] : []), ...(needW ? [weight] : [])],
  );
  if (xc !== x) xc.dispose();
  return out;
}

/**
 * torch.nn.functional.conv_transpose2d: x [N, Cin, H, W], weight [Cin, Cout / groups, kh, kw], bias [Cout].
 * It is the input gradient of the conv2d that maps the output back onto x, so it reuses those kernels.
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  checkInput(x, op);
  checkInput(weight, op, 'weight', true);
  checkBackends(op, x, weight, bias);
  const [N, Cin, H, W] = x.shape as [number, number, number, number];
  const [Wi, Cog, kh, kw] = weight.shape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1 || Cin % groups !== 0) {
    throw new RangeError(`${op}: groups ${groups} must divide the ${Cin} input channels of ${fmtShape(x.shape)}`);
  }
  if (Wi !== Cin) throw new RangeError(`${op}: weight ${fmtShape(weight.shape)} expects ${Wi} input channels, input ${fmtShape(x.shape)} has ${Cin}`);
  const Cout = Cog * groups;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== Cout)) throw new RangeError(`${op}: bias ${fmtShape(bias.shape)} must be [${Cout}] for weight ${fmtShape(weight.shape)} and groups ${groups}`);
  const stride = pair(opts.stride, 1, op, 'stride');
  const dil = pair(opts.dilation, 1, op, 'dilation');
  const pad = pair(opts.padding, 0, op, 'padding', 0);
  const opad = pair(opts.outputPadding, 0, op, 'outputPadding', 0);
  for (let i = 0; i < 2; i++) {
    if (opad[i]! >= Math.max(stride[i]!, dil[i]!)) {
      throw new RangeError(`${op}: outputPadding ${opad.join('x')} must be smaller than stride ${stride.join('x')} or dilation ${dil.join('x')}`);
    }
  }
  const Ho = (H - 1) * stride[0] - 2 * pad[0] + dil[0] * (kh - 1) + opad[0] + 1;
  const Wo = (W - 1) * stride[1] - 2 * pad[1] + dil[1] * (kw - 1) + opad[1] + 1;
  if (Ho <= 0 || Wo <= 0) throw new RangeError(`${op}: output size ${Ho}x${Wo} for input ${fmtShape(x.shape)} is not positive`);
  // The adjoint conv2d maps [N, Cout, Ho, Wo] to x's [N, Cin, H, W] with the given weight layout.
  const a: Conv2dAttrs = {
    n: N, c: Cout, h: Ho, w: Wo, k: Cin, ho: H, wo: W, kh, kw,
    strideH: stride[0], strideW: stride[1], dilH: dil[0], dilW: dil[1], padTop: pad[0], padLeft: pad[1], groups,
  };
  const y0 = conv2dGradInputRaw(x, weight, a);
  let y = y0;
  if (bias) {
    y = noGrad(() => {
      const b4 = reshape(bias.detach(), [1, Cout, 1, 1]);
      const r = ew('add', [y0, b4]);
      b4.dispose();
      return r;
    });
    y0.dispose();
  }
  const needX = weight.requiresGrad, needW = x.requiresGrad;
  return record(
    y,
    op,
    bias ? [x, weight, bias] : [x, weight],
    (g, saved) => {
      const sx = needX ? saved[0]! : null;
      const sw = needW ? saved[needX ? 1 : 0]! : null;
      const gc = contig(g);
      const out = [
        sw ? conv2dForwardRaw(gc, sw, null, a) : null,
        sx ? conv2dGradWeightRaw(gc, sx, a) : null,
        bias?.requiresGrad ? sum(gc, [0, 2, 3]) : null,
      ];
      gc.dispose();
      return out;
    },
    [...(needX ? [x] : []), ...(needW ? [weight] : [])],
  );
}

// The kernel contract of this op (entries of Kernels in backends/kernel-attrs.ts).

/**
 * Geometry of a 2-D convolution (NCHW, contiguous operands, offsets from the views; dy of the two
 * gradient kernels may have any image stride, each image's [k, ho, wo] contiguous):
 * x [n, c, h, w], weight [k, c / groups, kh, kw], y [n, k, ho, wo], with
 * y[b, o, oy, ox] = sum over (ci, r, s) of x[b, g·Cg + ci, oy·strideH − padTop + r·dilH, ox·strideW − padLeft + s·dilW] · w[o, ci, r, s]
 * (g = o / (k / groups); out-of-range taps are zero). Padding bottom/right is implied by ho/wo.
 * Kernels: conv2d [x, weight, bias?] → y; conv2d_grad_input [dy, weight] → dx; conv2d_grad_weight [x, dy] → dweight (then dbias with biasGrad).
 */
export interface Conv2dAttrs {
  n: number;
  c: number;
  h: number;
  w: number;
  k: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  dilH: number;
  dilW: number;
  padTop: number;
  padLeft: number;
  groups: number;
  /** conv2d only: input 2 is a bias [k]. */
  hasBias?: boolean;
  /**
   * conv2d and conv2d_grad_input: the last input is a float32 tensor of the output's shape, any
   * strides, that is added in the kernel's store (a residual or an expanded per-image term in the
   * forward, the input's gradient from its other uses in the backward): one kernel instead of a
   * convolution and an add (WebGPU: where its pixels are contiguous or broadcast; else one add after).
   */
  hasAddend?: boolean;
  /**
   * conv2d_grad_weight only: the output holds k more floats after the weight gradient, the bias
   * gradient Σ dy[b, o, oy, ox] over (b, oy, ox) per output channel o.
   */
  biasGrad?: boolean;
}
