import type { View } from '../../backend.js';
import { Tensor } from '../../tensor.js';
import type { Storage } from '../../backend.js';
import { fmtShape, shapesEqual } from '../../shape.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { ew } from '../elementwise/index.js';
import { contiguous } from '../views.js';
import type { ReduceAttrs } from '../../backends/kernel-attrs.js';

export { ParamArena, packParameters } from './arena.js';

/**
 * Fused optimizer updates, writing the parameter and its state in place (no autograd): several tensors
 * per dispatch (`adamSteps`, `sgdSteps`); with the parameters and state packed in a ParamArena
 * (arena.ts) one binding serves all of them. Scalars are computed in double exactly as torch.optim's single-tensor code
 * computes them, then used in f32.
 */

function checkState(op: string, param: Tensor, t: Tensor, what: string): void {
  if (t.backend !== param.backend) throw new Error(`${op}: ${what} is on ${t.backend.name}, the parameter on ${param.backend.name}`);
  if (!shapesEqual(t.shape, param.shape)) throw new RangeError(`${op}: ${what} has shape ${fmtShape(t.shape)}, the parameter ${fmtShape(param.shape)}`);
  if (t.dtype !== 'float32') throw new TypeError(`${op}: ${what} must be float32, got ${t.dtype}`);
}
function overlaps(a: Tensor, b: Tensor): boolean {
  return a.storage === b.storage && a.offset < b.offset + b.size && b.offset < a.offset + a.size;
}
/** The tensors updated in place must be contiguous and disjoint (they may be views of one arena storage). */
function checkInPlace(op: string, ts: [Tensor, string][]): void {
  for (const [t, what] of ts) {
    if (!t.isContiguous) throw new Error(`${op}: ${what} ${fmtShape(t.shape)} must be contiguous (it is updated in place)`);
  }
  for (let i = 0; i < ts.length; i++)
    for (let j = i + 1; j < ts.length; j++) {
      if (overlaps(ts[i]![0], ts[j]![0])) throw new Error(`${op}: ${ts[i]![1]} and ${ts[j]![1]} share storage`);
    }
}
/** The gradient as a contiguous tensor on the parameter's backend (a handle to release afterwards). */
function gradView(op: string, param: Tensor, grad: Tensor): Tensor {
  checkState(op, param, grad, 'grad');
  if (overlaps(grad, param)) throw new Error(`${op}: grad and param share storage`);
  return noGrad(() => (grad.isContiguous ? grad.detach() : contiguous(grad)));
}

export interface AdamStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** AdamW: param *= 1 - lr * weightDecay; otherwise weightDecay * param is added to the grad (Adam). */
  decoupled: boolean;
  /** 1-based step count, after incrementing (as torch's state['step']). */
  step: number;
  maximize?: boolean;
}

/** One torch.optim.Adam / AdamW step (amsgrad off) for one parameter, in place. */
export function adamStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, o: AdamStepOptions): void {
  adamSteps([{ param, grad, expAvg, expAvgSq, step: o.step }], o);
}

/** One parameter of a multi-tensor Adam step: its gradient, its state and its own step count. */
export interface AdamStepItem {
  param: Tensor;
  grad: Tensor;
  expAvg: Tensor;
  expAvgSq: Tensor;
  /** 1-based step count of this parameter, after incrementing. */
  step: number;
}

/**
 * torch.optim.Adam / AdamW over many parameters that share the hyper-parameters (a parameter group),
 * in place: the same arithmetic as `adamStep` per element, but the WebGPU kernel updates several
 * tensors per dispatch (multi-tensor apply), so a model's optimizer step is a few dozen dispatches, not
 * one per parameter. `o.step` is ignored: each item carries its own.
 */
export function adamSteps(items: AdamStepItem[], o: Omit<AdamStepOptions, 'step'> & { step?: number }): void {
  const op = 'adamStep';
  if (items.length === 0) return;
  const be = items[0]!.param.backend;
  const grads: Tensor[] = [];
  const tensors: AdamStepAttrs['tensors'] = [];
  const views: Tensor[] = [];
  try {
    for (const it of items) {
      const { param, expAvg, expAvgSq, step } = it;
      if (!(step >= 1) || !Number.isInteger(step)) throw new RangeError(`${op}: step must be an integer >= 1, got ${step}`);
      if (param.backend !== be) throw new Error(`${op}: parameters on ${param.backend.name} and ${be.name} in one call`);
      checkState(op, param, expAvg, 'expAvg');
      checkState(op, param, expAvgSq, 'expAvgSq');
      checkInPlace(op, [[param, 'param'], [expAvg, 'expAvg'], [expAvgSq, 'expAvgSq']]);
      const g = gradView(op, param, it.grad);
      grads.push(g);
      views.push(param, g, expAvg, expAvgSq);
      // torch computes these scalars in double (per parameter: step counts may differ)
      tensors.push({ n: param.size, stepSize: o.lr / (1 - o.beta1 ** step), bc2Sqrt: Math.sqrt(1 - o.beta2 ** step) });
    }
    const attrs: AdamStepAttrs = {
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      decay: o.decoupled ? 1 - o.lr * o.weightDecay : 1,
      l2: o.decoupled ? 0 : o.weightDecay,
      maximize: o.maximize ?? false,
      tensors,
    };
    be.run('adam_step', views, attrs);
  } finally {
    for (const g of grads) g.dispose();
  }
}

export interface SgdStepOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** 1-based step count: at step 1 the momentum buffer is initialised with the gradient. */
  step: number;
  maximize?: boolean;
}

/** One torch.optim.SGD step for one parameter, in place (momentumBuf is needed when momentum != 0). */
export function sgdStep(param: Tensor, grad: Tensor, momentumBuf: Tensor | null, o: SgdStepOptions): void {
  sgdSteps([{ param, grad, momentumBuf, step: o.step }], o);
}

/** One parameter of a multi-tensor SGD step. */
export interface SgdStepItem {
  param: Tensor;
  grad: Tensor;
  /** Needed when momentum != 0. */
  momentumBuf: Tensor | null;
  /** 1-based step count of this parameter: at step 1 its momentum buffer is initialised with the gradient. */
  step: number;
}

/**
 * torch.optim.SGD over many parameters sharing the hyper-parameters, in place; the WebGPU kernel
 * updates several tensors per dispatch (as adamSteps). `o.step` is ignored: each item carries its own.
 */
export function sgdSteps(items: SgdStepItem[], o: Omit<SgdStepOptions, 'step'> & { step?: number }): void {
  const op = 'sgdStep';
  if (items.length === 0) return;
  if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) throw new Error(`${op}: nesterov needs momentum > 0 and dampening 0`);
  const be = items[0]!.param.backend;
  const grads: Tensor[] = [];
  const views: Tensor[] = [];
  const tensors: SgdStepAttrs['tensors'] = [];
  try {
    for (const it of items) {
      const { param } = it;
      if (param.backend !== be) throw new Error(`${op}: parameters on ${param.backend.name} and ${be.name} in one call`);
      if (o.momentum !== 0 && !it.momentumBuf) throw new Error(`${op}: momentum ${o.momentum} needs a momentum buffer`);
      const buf = o.momentum !== 0 ? it.momentumBuf : null;
      if (buf) checkState(op, param, buf, 'momentumBuf');
      checkInPlace(op, buf ? [[param, 'param'], [buf, 'momentumBuf']] : [[param, 'param']]);
      const g = gradView(op, param, it.grad);
      grads.push(g);
      views.push(param, g, ...(buf ? [buf] : []));
      tensors.push({ n: param.size, first: it.step <= 1 });
    }
    const attrs: SgdStepAttrs = {
      lr: o.lr,
      momentum: o.momentum,
      dampening: o.dampening,
      weightDecay: o.weightDecay,
      nesterov: o.nesterov,
      maximize: o.maximize ?? false,
      tensors,
    };
    be.run('sgd_step', views, attrs);
  } finally {
    for (const g of grads) g.dispose();
  }
}

/** Partial sums per tensor: enough parts for parallelism, each long enough to amortise a workgroup. */
function partsFor(n: number): number {
  return n === 0 ? 0 : Math.min(Math.ceil(n / 4096), 1024);
}

/** Writes sum-of-squares partials of each tensor into one buffer and reduces them: [] tensor. */
function totalSumOfSquares(xs: Tensor[]): Tensor {
  const be = xs[0]!.backend;
  const parts = xs.map((x) => partsFor(x.size));
  const total = parts.reduce((a, b) => a + b, 0);
  const partial = be.alloc('float32', Math.max(total, 1));
  if (total === 0) {
    be.run('elementwise', [], { op: 'fill', params: [0], shape: [1], out: { storage: partial, shape: [1], strides: [1], offset: 0, dtype: 'float32' } });
  }
  let at = 0;
  xs.forEach((x, i) => {
    if (parts[i] === 0) return;
    const xc = noGrad(() => (x.isContiguous ? x.detach() : contiguous(x)));
    const attrs: SumSquaresAttrs = { n: x.size, parts: parts[i]!, out: { storage: partial, shape: [parts[i]!], strides: [1], offset: at, dtype: 'float32' } };
    be.run('sum_squares', [xc], attrs);
    xc.dispose();
    at += parts[i]!;
  });
  const pv = new Tensor(partial, [Math.max(total, 1)]);
  const r: ReduceAttrs = { op: 'sum', outer: 1, size: Math.max(total, 1), inner: 1 };
  const out = new Tensor(be.run('reduce', [pv], r), []);
  pv.dispose();
  return out;
}

/** Σ x² over all elements, fused (one pass plus a short reduction), as a [] tensor; no autograd. */
export function sumOfSquares(x: Tensor): Tensor {
  if (x.dtype !== 'float32') throw new TypeError(`sumOfSquares: expected float32, got ${x.dtype}`);
  return totalSumOfSquares([x]);
}

/**
 * torch.nn.utils.clip_grad_norm_ (2-norm): scales every gradient in place by
 * min(maxNorm / (total + 1e-6), 1) on the device (no readback) and returns the total norm as a [] tensor.
 */
export function clipGradNorm(grads: Tensor[], maxNorm: number): Tensor {
  const op = 'clipGradNorm';
  if (grads.length === 0) throw new RangeError(`${op}: no gradients given`);
  if (!(maxNorm >= 0)) throw new RangeError(`${op}: maxNorm must be >= 0, got ${maxNorm}`);
  const be = grads[0]!.backend;
  grads.forEach((g, i) => {
    if (g.backend !== be) throw new Error(`${op}: gradient ${i} is on ${g.backend.name}, gradient 0 on ${be.name}`);
    if (g.dtype !== 'float32') throw new TypeError(`${op}: gradient ${i} must be float32, got ${g.dtype}`);
    if (!g.isContiguous) throw new Error(`${op}: gradient ${i} ${fmtShape(g.shape)} must be contiguous (it is scaled in place)`);
  });
  const ss = totalSumOfSquares(grads);
  const norm = ew('sqrt', [ss]);
  ss.dispose();
  for (const g of grads) {
    const attrs: ClipScaleAttrs = { n: g.size, maxNorm };
    be.run('clip_scale', [g, norm], attrs);
  }
  return norm;
}

// The kernel contract of this op (entries of Kernels in backends/kernel-attrs.ts).

/**
 * adam_step (in place): inputs [param, grad, expAvg, expAvgSq] for each of `tensors` (4 per tensor,
 * in that order, each `tensors[k].n` elements). Scalars are the ones torch computes in double:
 * stepSize = lr / (1 - beta1^t), bc2Sqrt = sqrt(1 - beta2^t) (per tensor: t may differ),
 * decay = 1 - lr * wd (decoupled) applied to the param first; l2 = wd added as wd * param to the grad.
 * A backend may update several tensors per dispatch.
 */
export interface AdamStepAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  decay: number;
  l2: number;
  maximize: boolean;
  tensors: { n: number; stepSize: number; bc2Sqrt: number }[];
}

/**
 * sgd_step (in place): inputs [param, grad, momentumBuf] for each of `tensors` (momentumBuf only when
 * momentum != 0: 3 inputs per tensor, else 2); `first` initialises that tensor's buffer with its grad.
 * A backend may update several tensors per dispatch.
 */
export interface SgdStepAttrs {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
  tensors: { n: number; first: boolean }[];
}

/**
 * sum_squares: input [x] (n contiguous elements) → writes `parts` partial sums of squares into `out`
 * (a float32 view) starting at out.offset; part p covers [p * ceil(n / parts), (p + 1) * ceil(n / parts)).
 */
export interface SumSquaresAttrs {
  n: number;
  parts: number;
  out: View;
}

/** clip_scale (in place): inputs [grad, totalNorm (1 element)]; grad *= min(maxNorm / (norm + 1e-6), 1). */
export interface ClipScaleAttrs {
  n: number;
  maxNorm: number;
}
