// attention kernels (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';
import type { AttentionAttrs, RowStrides } from './index.js';

/** Where row i of head bh starts: views through their strides, outputs through attrs.outStrides (or contiguous). */
const rowAt = (off: number, s: RowStrides, heads: number, bh: number, i: number): number => off + Math.floor(bh / heads) * s[0] + (bh % heads) * s[1] + i * s[2];
const viewRows = (v: View): RowStrides => [v.strides[0]!, v.strides[1]!, v.strides[2]!];
const dense = (heads: number, l: number, d: number): RowStrides => [heads * l * d, l * d, d];

/**
 * Row-at-a-time reference: one row of scores (length Lk) at a time, so memory stays linear in the
 * sequence length like the fused GPU kernels. Accumulates in f64.
 */
function scoresRow(a: AttentionAttrs, Q: ArrayLike<number>, q: View, K: ArrayLike<number>, k: View, mask: View | null, bh: number, i: number, out: Float64Array): void {
  const M = mask ? dataOf(mask) : null;
  const b = Math.floor(bh / a.heads), h = bh % a.heads;
  const ms = a.maskStrides ?? [0, 0, 0, 0];
  for (let j = 0; j < a.lk; j++) {
    if (a.mask === 'causal' && j > i) {
      out[j] = -Infinity;
      continue;
    }
    let s = 0;
    const qb = rowAt(q.offset, viewRows(q), a.heads, bh, i), kb = rowAt(k.offset, viewRows(k), a.heads, bh, j);
    for (let c = 0; c < a.d; c++) s += Q[qb + c]! * K[kb + c]!;
    s *= a.scale;
    if (M) s += M[mask!.offset + b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]]!;
    out[j] = s;
  }
}

export const attention_forward: KernelFn<CpuBackend, 'attention_forward'> = (be, inputs, attrs) => {
  const a = attrs;
  const [q, k, v] = [inputs[0]!, inputs[1]!, inputs[2]!];
  const mask = a.mask === 'add' ? inputs[3]! : null;
  const Q = dataOf(q), K = dataOf(k), V = dataOf(v);
  const out = be.alloc('float32', a.bh * a.lq * a.dv) as CpuStorage;
  const lse = be.alloc('float32', a.bh * a.lq) as CpuStorage;
  const s = new Float64Array(a.lk);
  const acc = new Float64Array(a.dv);
  for (let bh = 0; bh < a.bh; bh++) {
    for (let i = 0; i < a.lq; i++) {
      scoresRow(a, Q, q, K, k, mask, bh, i, s);
      let mx = -Infinity;
      for (let j = 0; j < a.lk; j++) mx = Math.max(mx, s[j]!);
      let l = 0;
      acc.fill(0);
      for (let j = 0; j < a.lk; j++) {
        const p = Math.exp(s[j]! - mx);
        l += p;
        const vb = rowAt(v.offset, viewRows(v), a.heads, bh, j);
        for (let c = 0; c < a.dv; c++) acc[c]! += p * V[vb + c]!;
      }
      const ob = rowAt(0, a.outStrides?.o ?? dense(a.heads, a.lq, a.dv), a.heads, bh, i);
      for (let c = 0; c < a.dv; c++) out.data[ob + c] = acc[c]! / l;
      lse.data[bh * a.lq + i] = mx + Math.log(l);
    }
  }
  return [out, lse];
};

export const attention_backward: KernelFn<CpuBackend, 'attention_backward'> = (be, inputs, attrs) => {
  const a = attrs;
  const [q, k, v, o, lse, g] = inputs as View[];
  const mask = a.mask === 'add' ? inputs[6]! : null;
  const Q = dataOf(q!), K = dataOf(k!), V = dataOf(v!), O = dataOf(o!), LSE = dataOf(lse!), G = dataOf(g!);
  const dq = be.alloc('float32', a.bh * a.lq * a.d) as CpuStorage;
  const dkAcc = new Float64Array(a.bh * a.lk * a.d);
  const dvAcc = new Float64Array(a.bh * a.lk * a.dv);
  const s = new Float64Array(a.lk);
  const dqRow = new Float64Array(a.d);
  for (let bh = 0; bh < a.bh; bh++) {
    for (let i = 0; i < a.lq; i++) {
      scoresRow(a, Q, q!, K, k!, mask, bh, i, s);
      const gb = rowAt(g!.offset, viewRows(g!), a.heads, bh, i), ob = rowAt(o!.offset, viewRows(o!), a.heads, bh, i);
      let Di = 0;
      for (let c = 0; c < a.dv; c++) Di += G[gb + c]! * O[ob + c]!;
      const li = LSE[lse!.offset + bh * a.lq + i]!;
      const qb = rowAt(q!.offset, viewRows(q!), a.heads, bh, i);
      dqRow.fill(0);
      for (let j = 0; j < a.lk; j++) {
        const p = Math.exp(s[j]! - li);
        if (p === 0) continue;
        const vb = rowAt(v!.offset, viewRows(v!), a.heads, bh, j), kb = rowAt(k!.offset, viewRows(k!), a.heads, bh, j);
        let dp = 0;
        for (let c = 0; c < a.dv; c++) dp += G[gb + c]! * V[vb + c]!;
        const ds = p * (dp - Di) * a.scale;
        const dkb = (bh * a.lk + j) * a.d, dvb = (bh * a.lk + j) * a.dv;
        for (let c = 0; c < a.d; c++) {
          dqRow[c]! += ds * K[kb + c]!;
          dkAcc[dkb + c]! += ds * Q[qb + c]!;
        }
        for (let c = 0; c < a.dv; c++) dvAcc[dvb + c]! += p * G[gb + c]!;
      }
      dq.data.set(dqRow, rowAt(0, a.outStrides?.dq ?? dense(a.heads, a.lq, a.d), a.heads, bh, i));
    }
  }
  // the accumulators are contiguous; the outputs go to their layouts row by row
  const dk = be.alloc('float32', dkAcc.length) as CpuStorage;
  const dv = be.alloc('float32', dvAcc.length) as CpuStorage;
  const sk = a.outStrides?.dk ?? dense(a.heads, a.lk, a.d), sv = a.outStrides?.dv ?? dense(a.heads, a.lk, a.dv);
  for (let bh = 0; bh < a.bh; bh++) {
    for (let j = 0; j < a.lk; j++) {
      dk.data.set(dkAcc.subarray((bh * a.lk + j) * a.d, (bh * a.lk + j + 1) * a.d), rowAt(0, sk, a.heads, bh, j));
      dv.data.set(dvAcc.subarray((bh * a.lk + j) * a.dv, (bh * a.lk + j + 1) * a.dv), rowAt(0, sv, a.heads, bh, j));
    }
  }
  return [dq, dk, dv];
};
