// norm kernels (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';
import type { NormLayout, NormForwardAttrs, NormBackwardAttrs, NormAffineGradAttrs, NormActivation } from './index.js';

/** Offset (relative to x.offset) of element j of statistic row r, and its affine index. */
function addr(L: NormLayout, r: number, j: number): number {
  const hi = Math.floor(r / L.rowDiv), lo = r % L.rowDiv;
  return hi * L.rowStrideHi + lo * L.rowStrideLo + Math.floor(j / L.inner) * L.outerStride + (j % L.inner);
}
function affine(L: NormLayout, r: number, j: number): number {
  return (r % L.rowDiv) * L.affRow + Math.floor(j / L.inner) * L.affOuter + (j % L.inner) * L.affInner;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
/** The fused activation at z, and g · act'(z) (its gradient at the pre-activation z). */
const ACT: Record<NormActivation, { f: (z: number) => number; grad: (g: number, z: number) => number }> = {
  silu: {
    f: (z) => z * sigmoid(z),
    grad: (g, z) => {
      const s = sigmoid(z);
      return g * s * (1 + z * (1 - s));
    },
  },
  // PyTorch's threshold_backward: no gradient at z = 0
  relu: { f: (z) => (z > 0 ? z : 0), grad: (g, z) => (z > 0 ? g : 0) },
};

function optional(inputs: readonly View[], flags: boolean[]): (View | null)[] {
  let k = 1;
  return flags.map((f) => (f ? inputs[k++]! : null));
}

export const norm_forward: KernelFn<CpuBackend, 'norm_forward'> = (be, inputs, attrs) => {
  const a = attrs;
  const x = inputs[0]!;
  const [w, b, statsIn, rm, rv] = optional(inputs, [a.hasWeight, a.hasBias, !a.computeStats, a.updateRunning, a.updateRunning]);
  const X = dataOf(x);
  const total = a.rows * a.count;
  const y = be.alloc('float32', total) as CpuStorage;
  const stats = (statsIn ? null : be.alloc('float32', a.rows * 2)) as CpuStorage | null;
  const S = statsIn ? dataOf(statsIn) : stats!.data;
  const so = statsIn ? statsIn.offset : 0;
  for (let r = 0; r < a.rows; r++) {
    let mean: number, rstd: number;
    if (a.computeStats) {
      // two passes in f64: mean, then squared deviations
      let s = 0;
      for (let j = 0; j < a.count; j++) s += X[x.offset + addr(a, r, j)]!;
      mean = s / a.count;
      let q = 0;
      for (let j = 0; j < a.count; j++) {
        const d = X[x.offset + addr(a, r, j)]! - mean;
        q += d * d;
      }
      const v = q / a.count;
      rstd = 1 / Math.sqrt(v + a.eps);
      S[2 * r] = mean;
      S[2 * r + 1] = rstd;
      if (rm && rv) {
        const RM = dataOf(rm), RV = dataOf(rv);
        const unbiased = a.count > 1 ? q / (a.count - 1) : NaN;
        RM[rm.offset + r] = (1 - a.momentum) * RM[rm.offset + r]! + a.momentum * mean;
        RV[rv.offset + r] = (1 - a.momentum) * RV[rv.offset + r]! + a.momentum * unbiased;
      }
    } else {
      mean = S[so + 2 * r]!;
      rstd = S[so + 2 * r + 1]!;
    }
    const W = w ? dataOf(w) : null, B = b ? dataOf(b) : null;
    for (let j = 0; j < a.count; j++) {
      const o = addr(a, r, j);
      const ai = affine(a, r, j);
      let v = (X[x.offset + o]! - mean) * rstd;
      if (W) v *= W[w!.offset + ai]!;
      if (B) v += B[b!.offset + ai]!;
      if (a.activation) v = ACT[a.activation].f(v);
      y.data[o] = v;
    }
  }
  return stats ? [y, stats] : [y];
};

export const norm_backward: KernelFn<CpuBackend, 'norm_backward'> = (be, inputs, attrs) => {
  const a = attrs;
  const [x, g, st, w] = [inputs[0]!, inputs[1]!, inputs[2]!, a.hasWeight ? inputs[3]! : null];
  const b = a.activation && a.hasBias ? inputs[a.hasWeight ? 4 : 3]! : null;
  const X = dataOf(x), G = dataOf(g), S = dataOf(st), W = w ? dataOf(w) : null, B = b ? dataOf(b) : null;
  const acc = a.accumulate ? inputs[inputs.length - 1]! : null;
  const ACC = acc ? dataOf(acc) : null;
  const dx = be.alloc('float32', a.rows * a.count) as CpuStorage;
  for (let r = 0; r < a.rows; r++) {
    const mean = S[st.offset + 2 * r]!, rstd = S[st.offset + 2 * r + 1]!;
    const dxhat = (j: number): number => {
      const o = addr(a, r, j), ai = affine(a, r, j);
      const wv = W ? W[w!.offset + ai]! : 1;
      let gv = G[g.offset + o]!;
      // through the activation first: its input is the recomputed affine output
      if (a.activation) gv = ACT[a.activation].grad(gv, (X[x.offset + o]! - mean) * rstd * wv + (B ? B[b!.offset + ai]! : 0));
      return gv * wv;
    };
    let m1 = 0, m2 = 0;
    if (!a.constStats) {
      for (let j = 0; j < a.count; j++) {
        const dh = dxhat(j);
        m1 += dh;
        m2 += dh * (X[x.offset + addr(a, r, j)]! - mean) * rstd;
      }
      m1 /= a.count;
      m2 /= a.count;
    }
    for (let j = 0; j < a.count; j++) {
      const o = addr(a, r, j);
      const xhat = (X[x.offset + o]! - mean) * rstd;
      dx.data[o] = rstd * (dxhat(j) - m1 - xhat * m2) + (ACC ? ACC[acc!.offset + o]! : 0);
    }
  }
  return dx;
};

export const norm_affine_grad: KernelFn<CpuBackend, 'norm_affine_grad'> = (be, inputs, attrs) => {
  const a = attrs;
  const [x, g, st] = inputs;
  const w = a.activation && a.hasWeight ? inputs[3]! : null;
  const b = a.activation && a.hasBias ? inputs[a.hasWeight ? 4 : 3]! : null;
  const X = dataOf(x!), G = dataOf(g!), S = dataOf(st!), W = w ? dataOf(w) : null, B = b ? dataOf(b) : null;
  const dw = be.alloc('float32', a.size) as CpuStorage;
  const db = be.alloc('float32', a.size) as CpuStorage;
  for (let i = 0; i < a.size; i++) {
    let sw = 0, sb = 0;
    for (let p = 0; p < a.outer; p++) {
      const row = p * a.rowP + Math.floor(i / a.aDiv);
      const mean = S[st!.offset + 2 * row]!, rstd = S[st!.offset + 2 * row + 1]!;
      for (let s = 0; s < a.inner; s++) {
        const o = p * a.pStride + i * a.aStride + s;
        const xhat = (X[x!.offset + o]! - mean) * rstd;
        let gv = G[g!.offset + o]!;
        if (a.activation) gv = ACT[a.activation].grad(gv, xhat * (W ? W[w!.offset + i]! : 1) + (B ? B[b!.offset + i]! : 0));
        sw += gv * xhat;
        sb += gv;
      }
    }
    dw.data[i] = sw;
    db.data[i] = sb;
  }
  return [dw, db];
};

/** The CPU reference of the fused call: the two kernels above. */
export const norm_backward_affine: KernelFn<CpuBackend, 'norm_backward_affine'> = (be, inputs, attrs) => {
  const a = attrs;
  const dx = norm_backward(be, inputs, a) as CpuStorage;
  const act = !!a.activation;
  const aff = [inputs[0]!, inputs[1]!, inputs[2]!, ...(act && a.hasWeight ? [inputs[3]!] : []), ...(act && a.hasBias ? [inputs[a.hasWeight ? 4 : 3]!] : [])];
  return [dx, ...(norm_affine_grad(be, aff, a.affine) as CpuStorage[])];
};
