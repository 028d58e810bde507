import { Tensor } from '../../tensor.js';
import type { Storage, View } from '../../backend.js';
import { broadcastShapes, broadcastStrides, fmtShape, shapesEqual } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { contiguous, transpose } from '../views.js';
import { matmulWith, isDensePermutation } from '../matmul/index.js';
import { softmax } from '../softmax/index.js';
import { add } from '../elementwise/index.js';
import { tensor } from '../creation.js';
import { tidy } from '../../scope.js';
import { env } from '../../env.js';
import { fusedAttentionPreferred } from './preference.js';

/**
 * How attention is computed. 'fused': one online-softmax kernel (flash-attention style), memory linear
 * in the sequence length. 'math': softmax(QKᵀ·scale + mask)·V with the library's matmul and softmax,
 * which keeps the [Lq, Lk] probabilities (PyTorch's math backend): several times faster on the fast
 * matmul kernels, but quadratic in memory. 'auto' (default) takes 'math' on WebGPU while the score
 * matrix stays under `attentionMathMaxBytes` and the mask is none or causal, else 'fused'; and 'fused' where the
 * backend says its fused kernel is faster for the head dims (WebGPU on adapters that want subgroup
 * broadcasts, heads up to 16 wide).
 */
export type AttentionImplementation = 'auto' | 'fused' | 'math';

export interface AttentionOptions {
  /** 'causal' (query i sees keys j <= i, top-left aligned like PyTorch) or an additive float mask broadcastable to [B, H, Lq, Lk]. */
  mask?: 'causal' | Tensor | null;
  /** Defaults to 1 / sqrt(D). */
  scale?: number;
  /** Default: FOLIAR_ATTENTION (auto | fused | math), else 'auto'. */
  implementation?: AttentionImplementation;
}

const attentionConfig = {
  implementation: (['auto', 'fused', 'math'].includes(env('FOLIAR_ATTENTION') ?? '') ? env('FOLIAR_ATTENTION') : 'auto') as AttentionImplementation,
  // scores of this size also appear as their gradient and the softmax's during backward (~3x)
  mathMaxBytes: 32 * 2 ** 20,
};

/** Sets the default attention implementation and the largest score matrix (bytes) 'auto' computes with 'math'. */
export function setAttentionImplementation(implementation: AttentionImplementation, opts: { mathMaxBytes?: number } = {}): void {
  if (!['auto', 'fused', 'math'].includes(implementation)) throw new TypeError(`attention implementation must be auto, fused or math, got '${implementation}'`);
  attentionConfig.implementation = implementation;
  if (opts.mathMaxBytes !== undefined) attentionConfig.mathMaxBytes = opts.mathMaxBytes;
}

/** softmax(QKᵀ·scale [+ causal mask])·V from differentiable ops: the backward derives from theirs. */
function mathAttention(q: Tensor, k: Tensor, v: Tensor, scale: number, mask: 'causal' | Tensor | null): Tensor {
  const [, , lq] = q.shape as [number, number, number, number];
  const lk = k.shape[2]!;
  return tidy(() => {
    // the scale is folded into the product's store (no separate multiply either way)
    let s = matmulWith(q, transpose(k, -1, -2), { alpha: scale });
    if (mask instanceof Tensor) s = add(s, mask);
    else if (mask === 'causal') {
      // top-left aligned like PyTorch's is_causal: query i sees keys j <= i
      const m = new Float32Array(lq * lk);
      for (let i = 0; i < lq; i++) for (let j = i + 1; j < lk; j++) m[i * lk + j] = -Infinity;
      s = add(s, tensor(m, { shape: [lq, lk], backend: q.backend }));
    }
    // the output in q's layout: heads split from [B, L, H·D] are merged back by a view, no copy
    const D = q.shape[3]!;
    const Dv = v.shape[3]!;
    const qLike = Dv === D && !q.isContiguous && q.strides[3] === 1 && isDensePermutation(q.shape, q.strides);
    return matmulWith(softmax(s, -1), v, qLike ? { outStrides: [...q.strides] } : {});
  });
}

function contig(t: Tensor): Tensor {
  return noGrad(() => (t.isContiguous ? t.detach() : contiguous(t)));
}

/** The kernels read rows through strides: only a last dim that is not contiguous needs a copy. */
function rowsView(t: Tensor): Tensor {
  return noGrad(() => (t.shape[3]! <= 1 || t.strides[3] === 1 ? t.detach() : contiguous(t)));
}

/** Write layout for an output shaped like t: t's own when it is a dense permutation with contiguous rows, else contiguous. */
function likeStrides(t: Tensor, d: number): RowStrides {
  const [B, H, L] = t.shape as [number, number, number, number];
  if (d === t.shape[3] && t.strides[3] === 1 && isDensePermutation(t.shape, t.strides)) return [t.strides[0]!, t.strides[1]!, t.strides[2]!];
  return [H * L * d, L * d, d];
}

/**
 * torch.nn.functional.scaled_dot_product_attention for q [B, H, Lq, D], k [B, H, Lk, D],
 * v [B, H, Lk, Dv]. The fused implementation is one online-softmax kernel: the [Lq, Lk] score matrix
 * is never stored, only each row's logsumexp, from which the fused backward recomputes the
 * probabilities. Small problems take the faster math path instead (see AttentionImplementation).
 * The mask receives no gradient.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const op = 'scaledDotProductAttention';
  for (const [t, n] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
    if (t.rank !== 4) throw new RangeError(`${op}: ${n} must be [B, H, L, D], got ${fmtShape(t.shape)}`);
    if (t.dtype !== 'float32') throw new TypeError(`${op}: ${n} must be float32, got ${t.dtype}`);
    if (t.backend !== q.backend) throw new Error(`${op}: ${n} is on ${t.backend.name}, q on ${q.backend.name}`);
  }
  const [B, H, Lq, D] = q.shape as [number, number, number, number];
  const [, , Lk, Dv] = v.shape as [number, number, number, number];
  if (!shapesEqual(k.shape, [B, H, Lk, D])) {
    throw new RangeError(`${op}: k ${fmtShape(k.shape)} does not fit q ${fmtShape(q.shape)} and v ${fmtShape(v.shape)} (expected [${B}, ${H}, ${Lk}, ${D}])`);
  }
  if (!shapesEqual(v.shape.slice(0, 2), [B, H])) throw new RangeError(`${op}: v ${fmtShape(v.shape)} does not match q ${fmtShape(q.shape)} in batch and heads`);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const impl = opts.implementation ?? attentionConfig.implementation;
  if (!['auto', 'fused', 'math'].includes(impl)) throw new TypeError(`${op}: implementation must be auto, fused or math, got '${String(impl)}'`);
  const full = [B, H, Lq, Lk];
  let maskView: View | null = null;
  let maskStrides: [number, number, number, number] | undefined;
  const m = opts.mask;
  if (m instanceof Tensor) {
    if (m.dtype !== 'float32') throw new TypeError(`${op}: the mask must be an additive float32 tensor, got ${m.dtype}`);
    if (m.backend !== q.backend) throw new Error(`${op}: the mask is on ${m.backend.name}, q on ${q.backend.name}`);
    let ok = m.rank <= 4;
    try {
      ok = ok && shapesEqual(broadcastShapes(m.shape, full), full);
    } catch {
      ok = false;
    }
    if (!ok) throw new RangeError(`${op}: mask ${fmtShape(m.shape)} does not broadcast to [B, H, Lq, Lk] = ${fmtShape(full)}`);
    maskStrides = broadcastStrides(m.shape, m.strides, full) as [number, number, number, number];
    maskView = m;
  } else if (m !== undefined && m !== null && m !== 'causal') {
    throw new TypeError(`${op}: mask must be 'causal', a Tensor or null`);
  }
  // an additive mask may block whole rows (-inf everywhere): the fused kernel defines those, the math
  // path gives NaN as PyTorch's does, so 'auto' keeps such masks on the fused kernel
  const autoMath =
    impl === 'auto' && !maskView && q.backend.name === 'webgpu' && B * H * Lq * Lk * 4 <= Math.min(attentionConfig.mathMaxBytes, q.backend.maxBindingBytes) &&
    !fusedAttentionPreferred(q.backend, D, Dv);
  if (impl === 'math' || autoMath) return mathAttention(q, k, v, scale, maskView ? (maskView as Tensor) : m === 'causal' ? 'causal' : null);
  const attrs: AttentionAttrs = {
    bh: B * H, heads: H, lq: Lq, lk: Lk, d: D, dv: Dv, scale,
    mask: maskView ? 'add' : m === 'causal' ? 'causal' : 'none',
    maskStrides,
  };
  // rows are read in place (heads split from [B, L, H·D] by a view need no copy) while every tensor fits
  // one binding; larger ones run in chunks of whole heads, which needs the contiguous layout
  const fits = [q, k, v].every((t) => t.storage.size * 4 <= q.backend.maxBindingBytes) && B * H * Math.max(Lq, Lk) * Math.max(D, Dv) * 4 <= q.backend.maxBindingBytes;
  const qc = fits ? rowsView(q) : contig(q), kc = fits ? rowsView(k) : contig(k), vc = fits ? rowsView(v) : contig(v);
  if (fits) attrs.outStrides = { o: likeStrides(q, Dv), dq: likeStrides(q, D), dk: likeStrides(k, D), dv: likeStrides(v, Dv) };
  const layout = attrs.outStrides;
  const views: View[] = [qc, kc, vc];
  if (maskView) views.push(maskView);
  const [os, ls] = q.backend.run('attention_forward', views, attrs);
  const out = new Tensor(os!, [B, H, Lq, Dv], layout ? [...layout.o, 1] : undefined);
  const lse = new Tensor(ls!, [B, H, Lq]);
  const mk = maskView ? (maskView as Tensor) : null;
  const y = record(
    out,
    'scaled_dot_product_attention',
    [q, k, v],
    (g, saved) => {
      const [sq, sk, sv, so, sl, sm] = saved as Tensor[];
      const gc = !layout ? (g.isContiguous ? g : contiguous(g)) : g.shape[3]! <= 1 || g.strides[3] === 1 ? g : contiguous(g);
      const bviews: View[] = [sq!, sk!, sv!, so!, sl!, gc];
      if (sm) bviews.push(sm);
      const [dq, dk, dv] = g.backend.run('attention_backward', bviews, attrs);
      const st = (r: RowStrides | undefined): number[] | undefined => (r ? [...r, 1] : undefined);
      return [new Tensor(dq!, [B, H, Lq, D], st(layout?.dq)), new Tensor(dk!, [B, H, Lk, D], st(layout?.dk)), new Tensor(dv!, [B, H, Lk, Dv], st(layout?.dv))];
    },
    [qc, kc, vc, out, lse, ...(mk ? [mk] : [])],
  );
  qc.dispose();
  kc.dispose();
  vc.dispose();
  lse.dispose();
  return y;
}

// The kernel contract of this op (entries of Kernels in backends/kernel-attrs.ts).

/**
 * Fused attention over q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] views whose last dim is
 * contiguous (rows found through their strides; bh = b·H + h). mask: 'none', 'causal' (key j visible to query i when j <= i) or 'add' (an additive view,
 * input 3, read through its strides [bStride, hStride, iStride, jStride] with H heads).
 */
export interface AttentionAttrs {
  bh: number;
  heads: number;
  lq: number;
  lk: number;
  d: number;
  dv: number;
  scale: number;
  mask: 'none' | 'causal' | 'add';
  maskStrides?: [number, number, number, number];
  /**
   * [batch, head, row] strides (elements) the kernels write o (forward) and dq, dk, dv (backward) at,
   * each a dense layout of its [B, H, L, D] (e.g. heads interleaved as [B, L, H, D], so that merging
   * the heads back is a view); absent: contiguous. The inputs' rows are read through their views'
   * strides (the last dim contiguous).
   */
  outStrides?: { o: RowStrides; dq: RowStrides; dk: RowStrides; dv: RowStrides };
}

/** [batch, head, row] strides (elements) of a [B, H, L, D] tensor whose rows are contiguous. */
export type RowStrides = readonly [number, number, number];

/** attention_forward: inputs [q, k, v, mask?] → [out [BH, Lq, Dv], lse [BH, Lq]]. */
export type AttentionForwardAttrs = AttentionAttrs;

/** attention_backward: inputs [q, k, v, out, lse, dout, mask?] → [dq, dk, dv]. */
export type AttentionBackwardAttrs = AttentionAttrs;
