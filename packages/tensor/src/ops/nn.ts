import { Tensor } from '../tensor.js';
import { normalizeDim, fmtShape, numel } from '../shape.js';
import { record } from '../autograd/record.js';
import { noGrad } from '../autograd/grad-mode.js';
import { tidy } from '../scope.js';
import { add, mul, ew, sumToShape } from './elementwise/index.js';
import { mean, sum } from './reduce/index.js';
import { contiguous, transpose, reshape, permute, flatten, unsqueeze } from './views.js';
import { matmul, matmulWith } from './matmul/index.js';
import { indexSelect } from './indexing/index.js';
import { checkIndices, oneHotChecked } from './indexing/check.js';
import { full } from './creation.js';
import { rand } from './random/index.js';
import type { Generator } from '../random/generator.js';
import { logSoftmax } from './softmax/index.js';

/** Float-only ops refuse other dtypes as PyTorch does (their kernels would read int bits as floats). */
function requireFloat(x: Tensor, op: string, what = 'input'): void {
  if (x.dtype !== 'float32') throw new TypeError(`${op}: expected a float32 ${what}, got ${x.dtype} (cast it with .toFloat())`);
}

export type Reduction = 'mean' | 'sum' | 'none';

/**
 * torch.nn.functional.mse_loss (operands broadcast). One op: (input - target)² in one kernel, its
 * mean or sum in one reduction, and the backward 2·(input - target)·g, scaled, in one kernel, where
 * sub / square / sum / scale took four forward and four backward dispatches.
 */
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  requireFloat(input, 'mseLoss');
  requireFloat(target, 'mseLoss', 'target');
  const d = ew('sq_diff', [input, target]);
  const n = d.size;
  let y = d;
  if (reduction !== 'none') {
    y = noGrad(() => (reduction === 'mean' ? mean(d) : sum(d)));
    d.dispose();
  }
  const k = reduction === 'mean' ? 2 / n : 2;
  return record(
    y,
    'mse_loss',
    [input, target],
    (g, [a, b]) => {
      const ga = ew('mse_dinput', [g, a!, b!], [k]);
      const gb = target.requiresGrad ? sumToShape(ew('neg', [ga]), target.shape) : null;
      return [input.requiresGrad ? sumToShape(ga, input.shape) : null, gb];
    },
    [input, target],
  );
}

export interface CrossEntropyOptions {
  /** Per-class weights [C]. */
  weight?: Tensor;
  labelSmoothing?: number;
  reduction?: Reduction;
  /**
   * Targets equal to this are ignored (PyTorch's ignore_index, default -100): their rows contribute
   * 0 (reduction 'none' gives 0 there) and the mean is over the other rows (weighted: over their
   * Σ w[y]); all rows ignored gives NaN, as PyTorch. Any other target outside [0, C) is an error.
   */
  ignoreIndex?: number;
}

/**
 * torch.nn.functional.cross_entropy for class-index targets (int32 [N] or [N, d1, …] with logits
 * [N, C, d1, …]), including label smoothing and class weights with PyTorch's normalisation.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const eps = opts.labelSmoothing ?? 0;
  const reduction = opts.reduction ?? 'mean';
  if (logits.rank < 1) throw new RangeError('crossEntropy: logits need a class dimension');
  requireFloat(logits, 'crossEntropy', 'logits tensor');
  if (target.dtype !== 'int32') throw new TypeError(`crossEntropy: targets must be int32 class indices, got ${target.dtype}`);
  const ignore = opts.ignoreIndex ?? -100;
  if (!Number.isInteger(ignore)) throw new TypeError(`crossEntropy: ignoreIndex must be an integer, got ${ignore}`);
  return tidy(() => {
    // move classes last: [N, C, ...] -> [N*..., C]
    const C = logits.rank === 1 ? logits.shape[0]! : logits.shape[1]!;
    let lg = logits.rank === 1 ? reshape(logits, [1, C]) : logits;
    if (lg.rank > 2) lg = reshape(permute(lg, [0, ...Array.from({ length: lg.rank - 2 }, (_, i) => i + 2), 1]), [-1, C]);
    const tg = flatten(target);
    if (tg.size !== lg.shape[0]) throw new RangeError(`crossEntropy: ${tg.size} targets for ${lg.shape[0]} rows of logits ${fmtShape(logits.shape)}`);
    const ignoring = ignore < 0 || ignore >= C; // an ignoreIndex inside [0, C) would ignore a class (PyTorch allows it)
    checkIndices(tg, C, 'crossEntropy', 'target', ignore);
    const logp = logSoftmax(lg, 1);
    // ignored rows: an ignoreIndex outside [0, C) one-hots to a zero row; one inside is masked out
    let hot = oneHotChecked(tg, C);
    let keep: Tensor | null = null; // [N] 1 for counted rows, 0 for ignored ones
    if (!ignoring) {
      keep = ew('ne', [tg, full([1], ignore, { dtype: 'int32', backend: tg.backend })]);
      hot = mul(hot, unsqueeze(keep, 1));
    } else keep = sum(hot, 1);
    let w: Tensor | null = null; // per-row weight w[y_i] (0 for ignored rows)
    let nllTerms = mul(logp, hot); // [N, C]
    if (opts.weight) {
      w = sum(mul(hot, opts.weight), 1); // [N]
      nllTerms = mul(nllTerms, opts.weight);
    }
    let perRow = mul(sum(nllTerms, 1), -(1 - eps));
    if (eps > 0) {
      const smooth = opts.weight ? mul(logp, opts.weight) : logp;
      perRow = add(perRow, mul(mul(sum(smooth, 1), keep), -eps / C));
    }
    if (reduction === 'none') return reshape(perRow, [...target.shape]);
    if (reduction === 'sum') return sum(perRow);
    return divByTensor(sum(perRow), sum(w ?? keep));
  });
}

function divByTensor(a: Tensor, b: Tensor): Tensor {
  return mul(a, reciprocalNoGrad(b));
}
function reciprocalNoGrad(b: Tensor): Tensor {
  return ew('reciprocal', [b]);
}

/**
 * F.linear: x @ weight.T + bias (weight [out, in]), plus `addend` when given (a residual of the
 * output's shape, added in the product's store instead of by a separate add; its gradient is the
 * incoming one).
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, addend?: Tensor | null): Tensor {
  if (x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new RangeError(`linear: input ${fmtShape(x.shape)} does not match weight ${fmtShape(weight.shape)} (in_features ${weight.shape[1]})`);
  }
  // a float16 weight (and bias) is read in place by the matmul kernel (issue 16)
  const fusable = x.rank >= 2 && weight.rank === 2 && x.isContiguous && weight.isContiguous && x.dtype === 'float32' && (weight.dtype === 'float32' || weight.dtype === 'float16') && (!bias || (bias.rank === 1 && bias.shape[0] === weight.shape[0]));
  const addOk = !addend || (addend !== x && addend.dtype === 'float32' && addend.backend === x.backend && addend.rank === x.rank && addend.shape.every((d, i) => d === (i === x.rank - 1 ? weight.shape[0] : x.shape[i])));
  if (fusable && addOk) return linear2d(x, weight, bias ?? null, addend ?? null);
  const wt = transpose(weight, 0, 1);
  const y = matmul(x, wt);
  wt.dispose();
  let out = y;
  if (bias) {
    out = add(y, bias);
    y.dispose();
  }
  if (!addend) return out;
  const r = add(out, addend);
  out.dispose();
  return r;
}

/**
 * linear over the leading dims flattened to rows (x contiguous): one node whose backward is one matmul
 * per operand and one row sum for the bias. Composed of matmul(x, Wᵀ) on [B, L, C], the weight's
 * gradient came out batched, was summed over the batch (a copy and a reduce) and transposed (a copy when
 * accumulated); here dW = g2ᵀ·x2 is a single [out, in] product, already in the weight's layout.
 */
function linear2d(x: Tensor, weight: Tensor, bias: Tensor | null, addend: Tensor | null): Tensor {
  const [outF, inF] = weight.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  const rows = numel(lead);
  const y = noGrad(() =>
    tidy(() => {
      // the bias and the addend are added in the matmul's store (one kernel, not a product and adds)
      const y2 = matmulWith(reshape(x, [rows, inF]), transpose(weight, 0, 1), { bias, addend: addend ? reshape(addend, [rows, outF]) : null });
      return reshape(y2, [...lead, outF]);
    }),
  );
  const inputs = [x, weight, ...(bias ? [bias] : []), ...(addend ? [addend] : [])];
  return record(
    y,
    'linear',
    inputs,
    (g, [sx, sw], take) => {
      const g2 = reshape(g, [rows, outF]);
      // x's gradient from its other uses so far (q, k and v share their input) is added in the product
      const acc = x.requiresGrad ? take(0) : null;
      const acc2 = acc ? reshape(acc, [rows, inF]) : null;
      // the bias gradient Σ_rows g2 comes out of the weight-gradient product (the row sums of g2ᵀ)
      const db = bias?.requiresGrad && weight.requiresGrad ? new Tensor(bias.backend.alloc('float32', outF), [outF]) : null;
      const dw = weight.requiresGrad ? matmulWith(transpose(g2, 0, 1), reshape(sx!, [rows, inF]), { rowSumsInto: db }) : null;
      return [
        x.requiresGrad ? reshape(matmulWith(g2, sw!, { addend: acc2 }), [...x.shape]) : null,
        dw,
        ...(bias ? [bias.requiresGrad ? (db ?? sum(g2, 0)) : null] : []),
        ...(addend ? [addend.requiresGrad ? g : null] : []),
      ];
    },
    [x, weight],
  );
}

/**
 * Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p). In eval mode or with
 * p = 0 it is the identity and returns `x` itself (as torch does): no kernel, no new handle.
 */
export function dropout(x: Tensor, p = 0.5, training = true, generator?: Generator): Tensor {
  if (!training || p === 0) return x;
  if (p >= 1) return mul(x, 0);
  return tidy(() => {
    const keepMask = ew('lt', [rand([...x.shape], { generator, backend: x.backend }), ew('fill', [x], [1 - p])]);
    return mul(x, mul(keepMask, 1 / (1 - p)));
  });
}

/** Embedding lookup: weight [V, D], ids int32 [...] -> [..., D]; backward scatter-adds rows. */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  return tidy(() => {
    const flat = flatten(ids);
    return reshape(indexSelect(weight, 0, flat, 'embedding'), [...ids.shape, weight.shape[1]!]);
  });
}
