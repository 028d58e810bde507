import { Tensor } from '../../tensor.js';
import type { Storage } from '../../backend.js';
import { fmtShape } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { contiguous } from '../views.js';
import { pair, type Size2 } from '../conv/index.js';

export interface MaxPool2dOptions {
  kernelSize: Size2;
  /** Default: kernelSize. */
  stride?: Size2;
  padding?: Size2;
  dilation?: Size2;
  ceilMode?: boolean;
}

export interface AvgPool2dOptions {
  kernelSize: Size2;
  stride?: Size2;
  padding?: Size2;
  ceilMode?: boolean;
  /** Default true (PyTorch). */
  countIncludePad?: boolean;
  divisorOverride?: number;
}

export interface InterpolateOptions {
  size?: Size2;
  scaleFactor?: number | readonly [number, number];
  /** Only PyTorch's legacy 'nearest' for now. */
  mode?: 'nearest';
}

function check4d(x: Tensor, op: string): [number, number, number, number] {
  if (x.dtype !== 'float32') throw new TypeError(`${op}: expected a float32 input, got ${x.dtype}`);
  if (x.rank !== 4) throw new RangeError(`${op}: expected a 4-D input [N, C, H, W], got ${fmtShape(x.shape)}`);
  return x.shape as [number, number, number, number];
}

function contig(t: Tensor): Tensor {
  return noGrad(() => (t.isContiguous ? t.detach() : contiguous(t)));
}

/** PyTorch's pooling output size, including the ceil-mode rule that the last window must start inside the input or left padding. */
function poolOut(size: number, k: number, s: number, p: number, d: number, ceil: boolean): number {
  const span = size + 2 * p - d * (k - 1) - 1;
  let o = Math.floor((ceil ? span + s - 1 : span) / s) + 1;
  if (ceil && (o - 1) * s >= size + p) o--;
  return o;
}

function poolAttrs(op: string, x: Tensor, mode: 'max' | 'avg', k: Size2, stride: Size2 | undefined, padding: Size2 | undefined, dilation: Size2 | undefined, ceil: boolean): Pool2dAttrs {
  const [N, C, H, W] = check4d(x, op);
  const [kh, kw] = pair(k, 1, op, 'kernelSize');
  const [sh, sw] = stride === undefined ? [kh, kw] : pair(stride, 1, op, 'stride');
  const [ph, pw] = pair(padding, 0, op, 'padding', 0);
  const [dh, dw] = pair(dilation, 1, op, 'dilation');
  const ekh = (kh - 1) * dh + 1, ekw = (kw - 1) * dw + 1;
  if (ph > ekh / 2 || pw > ekw / 2) throw new RangeError(`${op}: padding ${ph}x${pw} must be at most half the (dilated) kernel ${ekh}x${ekw}`);
  const ho = poolOut(H, kh, sh, ph, dh, ceil), wo = poolOut(W, kw, sw, pw, dw, ceil);
  if (ho <= 0 || wo <= 0) throw new RangeError(`${op}: kernel ${kh}x${kw} does not fit the input ${fmtShape(x.shape)} (output ${ho}x${wo})`);
  return {
    mode, planes: N * C, h: H, w: W, ho, wo, kh, kw, strideH: sh, strideW: sw, padH: ph, padW: pw, dilH: dh, dilW: dw,
    countIncludePad: true, divisorOverride: 0,
  };
}

function runPool(op: string, x: Tensor, a: Pool2dAttrs): Tensor {
  const [N, C] = x.shape as [number, number];
  const xc = contig(x);
  const res = x.backend.run('pool2d', [xc], a);
  xc.dispose();
  const y = new Tensor(res[0]!, [N, C, a.ho, a.wo]);
  const idx = res[1] ? new Tensor(res[1], [N, C, a.ho, a.wo]) : null;
  const out = record(
    y,
    op,
    [x],
    (g, saved) => {
      const gc = g.isContiguous ? g : contiguous(g);
      return [new Tensor(g.backend.run('pool2d_backward', [gc, ...saved], a), [...x.shape])];
    },
    idx ? [idx] : [],
  );
  idx?.dispose();
  return out;
}

/** torch.nn.functional.max_pool2d (implicit −inf padding); the gradient goes to the first maximum of each window. */
export function maxPool2d(x: Tensor, opts: MaxPool2dOptions): Tensor {
  const a = poolAttrs('maxPool2d', x, 'max', opts.kernelSize, opts.stride, opts.padding, opts.dilation, opts.ceilMode ?? false);
  return runPool('max_pool2d', x, a);
}

/** torch.nn.functional.avg_pool2d. */
export function avgPool2d(x: Tensor, opts: AvgPool2dOptions): Tensor {
  const a = poolAttrs('avgPool2d', x, 'avg', opts.kernelSize, opts.stride, opts.padding, undefined, opts.ceilMode ?? false);
  a.countIncludePad = opts.countIncludePad ?? true;
  if (opts.divisorOverride !== undefined) {
    if (!Number.isInteger(opts.divisorOverride) || opts.divisorOverride <= 0) {
      throw new RangeError(`avgPool2d: divisorOverride must be a positive integer, got ${opts.divisorOverride}`);
    }
    a.divisorOverride = opts.divisorOverride;
  }
  return runPool('avg_pool2d', x, a);
}

/** torch.nn.functional.adaptive_avg_pool2d; a null output size keeps that input size. */
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | readonly [number | null, number | null]): Tensor {
  const op = 'adaptiveAvgPool2d';
  const [N, C, H, W] = check4d(x, op);
  const [oh, ow] = typeof outputSize === 'number' ? [outputSize, outputSize] : [outputSize[0] ?? H, outputSize[1] ?? W];
  if (!Number.isInteger(oh) || !Number.isInteger(ow) || oh < 1 || ow < 1) {
    throw new RangeError(`${op}: output size must be positive integers, got ${JSON.stringify(outputSize)}`);
  }
  if (H === 0 || W === 0) throw new RangeError(`${op}: empty spatial input ${fmtShape(x.shape)}`);
  const a: AdaptivePool2dAttrs = { planes: N * C, h: H, w: W, ho: oh, wo: ow };
  const xc = contig(x);
  const y = new Tensor(x.backend.run('adaptive_avg_pool2d', [xc], a), [N, C, oh, ow]);
  xc.dispose();
  return record(y, 'adaptive_avg_pool2d', [x], (g) => {
    const gc = g.isContiguous ? g : contiguous(g);
    return [new Tensor(g.backend.run('adaptive_avg_pool2d_backward', [gc], a), [...x.shape])];
  });
}

/**
 * PyTorch's legacy 'nearest' source index: floor(dst · scale) in f32, scale = 1 / scaleFactor when a
 * factor was given, else in / out; clamped to the last input index.
 */
export function nearestIndices(inSize: number, outSize: number, scaleFactor?: number): Int32Array {
  const scale = Math.fround(scaleFactor !== undefined ? 1 / scaleFactor : inSize / outSize);
  const idx = new Int32Array(outSize);
  for (let o = 0; o < outSize; o++) idx[o] = Math.min(Math.floor(Math.fround(o * scale)), inSize - 1);
  return idx;
}

/**
 * torch.nn.functional.interpolate(mode='nearest') on [N, C, H, W]: two index selects (rows, then
 * columns), whose backward sums the gradient of every copy back onto its source.
 */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  const op = 'interpolate';
  const [, , H, W] = check4d(x, op);
  if ((opts.mode ?? 'nearest') !== 'nearest') throw new RangeError(`${op}: mode '${opts.mode}' is not supported (only 'nearest')`);
  if ((opts.size === undefined) === (opts.scaleFactor === undefined)) throw new RangeError(`${op}: give exactly one of size and scaleFactor`);
  let oh: number, ow: number, sh: number | undefined, sw: number | undefined;
  if (opts.size !== undefined) {
    [oh, ow] = pair(opts.size, 1, op, 'size');
  } else {
    const sf = opts.scaleFactor!;
    [sh, sw] = typeof sf === 'number' ? [sf, sf] : [sf[0], sf[1]];
    if (!(sh > 0) || !(sw > 0)) throw new RangeError(`${op}: scaleFactor must be positive, got ${JSON.stringify(sf)}`);
    oh = Math.floor(H * sh);
    ow = Math.floor(W * sw);
    if (oh < 1 || ow < 1) throw new RangeError(`${op}: scaleFactor ${JSON.stringify(sf)} gives an empty output for ${fmtShape(x.shape)}`);
  }
  // no source pixel for an output to copy (PyTorch refuses it too)
  if (H === 0 || W === 0) throw new RangeError(`${op}: empty spatial input ${fmtShape(x.shape)}`);
  const be = x.backend;
  const N = x.shape[0]!, C = x.shape[1]!;
  const a: UpsampleNearestAttrs = { planes: N * C, h: H, w: W, ho: oh, wo: ow };
  // one table serves both directions (kernel contract below); the backward keeps it
  const table = new Tensor(be.upload(nearestTable(nearestIndices(H, oh, sh), H, nearestIndices(W, ow, sw), W)), [oh + ow + H + W + 2]);
  const xc = contig(x);
  const y = new Tensor(be.run('upsample_nearest', [xc, table], a), [N, C, oh, ow]);
  xc.dispose();
  const out = record(
    y,
    op,
    [x],
    (g, saved) => {
      const gc = g.isContiguous ? g : contiguous(g);
      return [new Tensor(g.backend.run('upsample_nearest_backward', [gc, saved[0]!], a), [...x.shape])];
    },
    [table],
  );
  table.dispose();
  return out;
}

/**
 * The nearest-upsampling table: the source row of every output row, the source column of every
 * output column, then for every input row i the first output row whose source is i or later (and
 * one past the last), the same for columns. Sources never decrease, so the outputs that read input
 * row i are the rows from start[i] to start[i + 1] - 1: the backward gathers them (no atomics).
 */
export function nearestTable(iy: Int32Array, h: number, ix: Int32Array, w: number): Int32Array {
  const starts = (src: Int32Array, n: number): Int32Array => {
    const s = new Int32Array(n + 1);
    let o = 0;
    for (let i = 0; i <= n; i++) {
      while (o < src.length && src[o]! < i) o++;
      s[i] = o;
    }
    return s;
  };
  const t = new Int32Array(iy.length + ix.length + h + w + 2);
  t.set(iy, 0);
  t.set(ix, iy.length);
  t.set(starts(iy, h), iy.length + ix.length);
  t.set(starts(ix, w), iy.length + ix.length + h + 1);
  return t;
}

// The kernel contract of this op (entries of Kernels in backends/kernel-attrs.ts).

/**
 * Max / average pooling over planes [planes, h, w] → [planes, ho, wo]; window of output (oy, ox) starts at
 * (oy·strideH − padH, ox·strideW − padW) with taps every dil (avg: dil 1). Kernels: pool2d [x] → max: [y, argmax
 * (int32 index into the plane)], avg: [y]; pool2d_backward [g, argmax?] → dx. Average divisor as PyTorch:
 * divisorOverride, else the window clipped to the padded input (countIncludePad) or to the input.
 */
export interface Pool2dAttrs {
  mode: 'max' | 'avg';
  planes: number;
  h: number;
  w: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilH: number;
  dilW: number;
  countIncludePad: boolean;
  /** 0: none. */
  divisorOverride: number;
}

/**
 * adaptive_avg_pool2d [x planes, h, w] → [planes, ho, wo] (and its _backward [g] → dx): output oy averages rows
 * floor(oy·h/ho) .. ceil((oy+1)·h/ho) − 1, likewise columns.
 */
export interface AdaptivePool2dAttrs {
  planes: number;
  h: number;
  w: number;
  ho: number;
  wo: number;
}

/**
 * Nearest upsampling of planes [planes, h, w] → [planes, ho, wo]. Kernels: upsample_nearest [x, table]
 * → y, upsample_nearest_backward [g, table] → dx; the int32 table is nearestTable's layout.
 */
export interface UpsampleNearestAttrs {
  planes: number;
  h: number;
  w: number;
  ho: number;
  wo: number;
}
