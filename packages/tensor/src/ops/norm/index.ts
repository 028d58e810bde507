import { Tensor } from '../../tensor.js';
import type { Storage, View } from '../../backend.js';
import { fmtShape, numel, shapesEqual } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { ew, ewInto } from '../elementwise/index.js';
import { contiguous } from '../views.js';

/**
 * GroupNorm, LayerNorm and BatchNorm share three fused kernels: a forward that computes the
 * statistics of each row (two passes in f32, never E[x²]−E[x]²) and writes y, a backward for x
 * per row, and a per-channel reduction for weight and bias. They differ only in how rows and
 * affine indices map onto x, described by a NormLayout.
 */
interface NormPlan {
  layout: NormLayout;
  affine: Omit<NormAffineGradAttrs, 'size'>;
  affineShape: readonly number[];
}

function checkFloat(x: Tensor, op: string): void {
  if (x.dtype !== 'float32') throw new TypeError(`${op}: expected a float32 input, got ${x.dtype}`);
}

function checkParam(p: Tensor | null | undefined, shape: readonly number[], op: string, what: string, x: Tensor): void {
  if (!p) return;
  if (p.size !== numel(shape) || (p.rank !== shape.length && p.rank !== 1)) {
    throw new RangeError(`${op}: ${what} has shape ${fmtShape(p.shape)}, expected ${fmtShape(shape)} for input ${fmtShape(x.shape)}`);
  }
  if (p.backend !== x.backend) throw new Error(`${op}: ${what} is on ${p.backend.name}, the input on ${x.backend.name}`);
  // affine params may be stored as float16 (read in place by the kernels; issue 16)
  if (p.dtype !== 'float16') checkFloat(p, `${op} (${what})`);
}

function contig(t: Tensor): Tensor {
  return noGrad(() => (t.isContiguous ? t.detach() : contiguous(t)));
}

/** Runs the fused forward, attaches the backward. `stats` given: constant statistics (eval BatchNorm). */
function normCore(
  op: string,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  plan: NormPlan,
  opts: { eps: number; stats?: Tensor; running?: [Tensor, Tensor]; momentum?: number; activation?: NormActivation },
): Tensor {
  const act = opts.activation;
  const xc = contig(x);
  const wc = weight ? contig(weight) : null;
  const bc = bias ? contig(bias) : null;
  const L = plan.layout;
  const attrs: NormForwardAttrs = {
    ...L,
    eps: opts.eps,
    hasWeight: !!wc,
    hasBias: !!bc,
    computeStats: !opts.stats,
    updateRunning: !!opts.running,
    momentum: opts.momentum ?? 0,
    ...(act ? { activation: act } : {}),
  };
  const views: View[] = [xc];
  if (wc) views.push(wc);
  if (bc) views.push(bc);
  if (opts.stats) views.push(opts.stats);
  if (opts.running) views.push(...opts.running);
  const res = x.backend.run('norm_forward', views, attrs);
  const y = new Tensor(res[0]!, x.shape);
  const stats = opts.stats ? opts.stats.alias() : new Tensor(res[1]!, [L.rows, 2]);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const out = record(
    y,
    op,
    inputs,
    (g, saved, take) => {
      const [sx, sst] = saved as Tensor[];
      // weight (and, with an activation, bias: the backward recomputes the pre-activation) follow
      const sw = wc ? saved[2]! : null;
      const sb = act && bc ? saved[wc ? 3 : 2]! : null;
      const gc = g.isContiguous ? g : contiguous(g);
      const actAttrs = act ? { activation: act, hasBias: !!sb } : {};
      const needAffine = !!(weight?.requiresGrad || bias?.requiresGrad);
      const aattrs: NormAffineGradAttrs = { size: numel(plan.affineShape), ...plan.affine, ...(act ? { ...actAttrs, hasWeight: !!sw } : {}) };
      const affineOut = (w: Storage, b: Storage): [Tensor, Tensor] => [new Tensor(w, weight ? weight.shape : [aattrs.size]), new Tensor(b, bias ? bias.shape : [aattrs.size])];
      let dx: Tensor | null = null;
      let dw: Tensor | null = null, db: Tensor | null = null;
      if (x.requiresGrad) {
        // x's gradient from its other uses so far (a residual connection) is added in the kernel
        const acc = take(0);
        const accC = acc && !acc.isContiguous ? contiguous(acc) : acc;
        const battrs: NormBackwardAttrs = { ...L, hasWeight: !!sw, constStats: !!opts.stats, ...actAttrs, ...(accC ? { accumulate: true } : {}) };
        const bviews: View[] = [sx!, gc, sst!];
        if (sw) bviews.push(sw);
        if (sb) bviews.push(sb);
        if (accC) bviews.push(accC);
        if (needAffine) {
          // dx and the affine gradients from one call (one dispatch on WebGPU)
          const [sdx, sdw, sdb] = g.backend.run('norm_backward_affine', bviews, { ...battrs, affine: aattrs });
          dx = new Tensor(sdx!, x.shape);
          [dw, db] = affineOut(sdw!, sdb!);
        } else dx = new Tensor(g.backend.run('norm_backward', bviews, battrs), x.shape);
        if (accC && accC !== acc) accC.dispose();
      } else if (needAffine) {
        const aviews: View[] = [sx!, gc, sst!];
        if (act && sw) aviews.push(sw);
        if (sb) aviews.push(sb);
        const [w, b] = g.backend.run('norm_affine_grad', aviews, aattrs);
        [dw, db] = affineOut(w!, b!);
      }
      if (gc !== g) gc.dispose();
      return [dx, ...(weight ? [dw] : []), ...(bias ? [db] : [])];
    },
    [xc, stats, ...(wc ? [wc] : []), ...(act && bc ? [bc] : [])],
  );
  xc.dispose();
  wc?.dispose();
  bc?.dispose();
  stats.dispose();
  return out;
}

/** An activation applied to the normalised (and affine) output inside the norm kernels. */
export type NormActivation = 'silu' | 'relu';
const ACTIVATIONS: readonly NormActivation[] = ['silu', 'relu'];

function checkActivation(act: NormActivation | undefined, op: string): void {
  if (act !== undefined && !ACTIVATIONS.includes(act)) throw new TypeError(`${op}: unknown activation '${String(act)}' (${ACTIVATIONS.join(', ')})`);
}

/**
 * silu(group_norm(x)): the ResNet blocks' GN → SiLU in one kernel each way. The backward recomputes
 * the pre-activation from x and the statistics, so nothing more is stored than for the norm alone.
 */
export function groupNormSilu(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return groupNorm(x, numGroups, weight, bias, eps, { activation: 'silu' });
}

/** torch.nn.functional.group_norm: x [N, C, ...], statistics over each group of C / numGroups channels. */
export function groupNorm(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5, opts: { activation?: NormActivation } = {}): Tensor {
  checkFloat(x, 'groupNorm');
  if (x.rank < 2) throw new RangeError(`groupNorm: expected an input [N, C, ...], got ${fmtShape(x.shape)}`);
  const [N, C] = x.shape as [number, number];
  if (!Number.isInteger(numGroups) || numGroups <= 0 || C % numGroups !== 0) {
    throw new RangeError(`groupNorm: ${C} channels of ${fmtShape(x.shape)} cannot be split into ${numGroups} groups`);
  }
  checkParam(weight, [C], 'groupNorm', 'weight', x);
  checkParam(bias, [C], 'groupNorm', 'bias', x);
  const S = numel(x.shape.slice(2));
  const cpg = C / numGroups;
  const plan: NormPlan = {
    layout: {
      rows: N * numGroups, count: cpg * S, inner: S, rowDiv: numGroups, rowStrideHi: C * S, rowStrideLo: cpg * S,
      outerStride: S, affRow: cpg, affOuter: 1, affInner: 0,
    },
    affine: { outer: N, inner: S, pStride: C * S, aStride: S, rowP: numGroups, aDiv: cpg },
    affineShape: [C],
  };
  checkActivation(opts.activation, 'groupNorm');
  return normCore(opts.activation ? `group_norm_${opts.activation}` : 'group_norm', x, weight ?? null, bias ?? null, plan, { eps, activation: opts.activation });
}

/** torch.nn.functional.layer_norm: statistics over the last normalizedShape.length dims. */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  checkFloat(x, 'layerNorm');
  const k = normalizedShape.length;
  if (k === 0 || k > x.rank || !shapesEqual(x.shape.slice(x.rank - k), normalizedShape)) {
    throw new RangeError(`layerNorm: normalized shape ${fmtShape(normalizedShape)} does not match the trailing dims of ${fmtShape(x.shape)}`);
  }
  checkParam(weight, normalizedShape, 'layerNorm', 'weight', x);
  checkParam(bias, normalizedShape, 'layerNorm', 'bias', x);
  const M = numel(normalizedShape);
  const R = M === 0 ? 0 : x.size / M;
  const plan: NormPlan = {
    layout: { rows: R, count: M, inner: M, rowDiv: 1, rowStrideHi: M, rowStrideLo: 0, outerStride: 0, affRow: 0, affOuter: 0, affInner: 1 },
    affine: { outer: R, inner: 1, pStride: M, aStride: 1, rowP: 1, aDiv: Math.max(M, 1) },
    affineShape: normalizedShape,
  };
  return normCore('layer_norm', x, weight ?? null, bias ?? null, plan, { eps });
}

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
  /**
   * An activation applied inside the norm's kernels (ResNet's BN → ReLU): one kernel each way instead of
   * the norm and the activation, and the backward recomputes the pre-activation instead of storing it.
   */
  activation?: NormActivation;
}

/**
 * torch.nn.functional.batch_norm over x [N, C, ...]. Training: batch statistics, and the running
 * stats (when given) are updated in place with the unbiased batch variance. Eval: running stats.
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight?: Tensor | null,
  bias?: Tensor | null,
  opts: BatchNormOptions = { training: false },
): Tensor {
  checkFloat(x, 'batchNorm');
  if (x.rank < 2) throw new RangeError(`batchNorm: expected an input [N, C, ...], got ${fmtShape(x.shape)}`);
  const [N, C] = x.shape as [number, number];
  const S = numel(x.shape.slice(2));
  const eps = opts.eps ?? 1e-5;
  const momentum = opts.momentum ?? 0.1;
  const activation = opts.activation;
  checkActivation(activation, 'batchNorm');
  const op = activation ? `batch_norm_${activation}` : 'batch_norm';
  checkParam(weight, [C], 'batchNorm', 'weight', x);
  checkParam(bias, [C], 'batchNorm', 'bias', x);
  for (const [t, what] of [[runningMean, 'runningMean'], [runningVar, 'runningVar']] as const) {
    checkParam(t, [C], 'batchNorm', what, x);
    if (t && !t.isContiguous) throw new Error(`batchNorm: ${what} must be contiguous (it is updated in place)`);
  }
  if ((runningMean === null) !== (runningVar === null)) throw new Error('batchNorm: give both running stats or neither');
  const plan: NormPlan = {
    layout: { rows: C, count: N * S, inner: S, rowDiv: C, rowStrideHi: 0, rowStrideLo: S, outerStride: C * S, affRow: 1, affOuter: 0, affInner: 0 },
    affine: { outer: N, inner: S, pStride: C * S, aStride: S, rowP: 0, aDiv: 1 },
    affineShape: [C],
  };
  if (opts.training) {
    if (N * S <= 1) throw new RangeError(`batchNorm: expected more than 1 value per channel when training, got input ${fmtShape(x.shape)}`);
    const running = runningMean && runningVar ? ([runningMean, runningVar] as [Tensor, Tensor]) : undefined;
    return normCore(op, x, weight ?? null, bias ?? null, plan, { eps, running, momentum, activation });
  }
  if (!runningMean || !runningVar) throw new Error('batchNorm: eval mode needs runningMean and runningVar');
  // Constant statistics [C, 2] = (mean, 1/sqrt(var + eps)), interleaved like the kernel's own.
  const stats = noGrad(() => {
    const s = new Tensor(x.backend.alloc('float32', C * 2), [C, 2]);
    if (C > 0) {
      ewInto({ storage: s.storage, shape: [C], strides: [2], offset: 0, dtype: 'float32' }, 'copy', [runningMean]);
      const ve = ew('add_scalar', [runningVar], [eps]);
      ewInto({ storage: s.storage, shape: [C], strides: [2], offset: 1, dtype: 'float32' }, 'rsqrt', [ve]);
      ve.dispose();
    }
    return s;
  });
  const y = normCore(op, x, weight ?? null, bias ?? null, plan, { eps, stats, activation });
  stats.dispose();
  return y;
}

// The kernel contract of this op (entries of Kernels in backends/kernel-attrs.ts).

/**
 * Normalisation over statistic rows of a contiguous x. Element j of row r lives at
 * (r / rowDiv) * rowStrideHi + (r % rowDiv) * rowStrideLo + (j / inner) * outerStride + j % inner,
 * and uses affine parameter (r % rowDiv) * affRow + (j / inner) * affOuter + (j % inner) * affInner.
 * GroupNorm [N, C, S]: rows N*G; LayerNorm [R, M]: rows R, inner M; BatchNorm [N, C, S]: rows C.
 */
export interface NormLayout {
  rows: number;
  /** Elements per row (outer count * inner). */
  count: number;
  inner: number;
  rowDiv: number;
  rowStrideHi: number;
  rowStrideLo: number;
  outerStride: number;
  affRow: number;
  affOuter: number;
  affInner: number;
}

/**
 * norm_forward: inputs [x, weight?, bias?, stats?, runningMean?, runningVar?] → [y, stats].
 * stats is [rows, 2] = (mean, rstd); with `computeStats` false it is an input (e.g. eval BatchNorm).
 * With `updateRunning`, running stats (length rows) are updated in place: r = (1-m) r + m batch
 * (variance unbiased).
 */
export interface NormForwardAttrs extends NormLayout {
  eps: number;
  hasWeight: boolean;
  hasBias: boolean;
  computeStats: boolean;
  updateRunning: boolean;
  momentum: number;
  /** Applied to the output: y = act(norm(x) · w + b). */
  activation?: NormActivation;
}

/**
 * norm_backward: inputs [x, g, stats, weight?] → dx. With `constStats` (stats did not depend on x)
 * dx = g * w * rstd; else dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) per row.
 */
export interface NormBackwardAttrs extends NormLayout {
  hasWeight: boolean;
  constStats: boolean;
  /**
   * The forward's activation: g is then the gradient of act(z), z = xhat · w + b recomputed per
   * element, with the bias as input 4 (after the weight) when `hasBias`.
   */
  activation?: NormActivation;
  hasBias?: boolean;
  /** A last input (contiguous, x's layout) is added to dx: x's gradient accumulated from other uses. */
  accumulate?: boolean;
}

/**
 * norm_backward_affine: norm_backward's inputs → [dx, dweight, dbias]: both kernels' results from one
 * call (the WebGPU kernel runs them in one dispatch). `affine`'s weight and bias flags follow the
 * activation as in norm_affine_grad.
 */
export interface NormBackwardAffineAttrs extends NormBackwardAttrs {
  affine: NormAffineGradAttrs;
}

/**
 * norm_affine_grad: inputs [x, g, stats] → [dweight, dbias] (each [size]). Affine index a sums the
 * elements p * pStride + a * aStride + s (p < outer, s < inner) whose statistic row is
 * p * rowP + floor(a / aDiv).
 */
export interface NormAffineGradAttrs {
  size: number;
  outer: number;
  inner: number;
  pStride: number;
  aStride: number;
  rowP: number;
  aDiv: number;
  /** As in NormBackwardAttrs; inputs [x, g, stats, weight?, bias?] (weight per affine index). */
  activation?: NormActivation;
  hasWeight?: boolean;
  hasBias?: boolean;
}
