// attention kernels (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';
import type { AttentionAttrs } from './index.js';

/**
 * Row-at-a-time reference: one row of scores (length Lk) at a time, so memory stays linear in the
 * sequence length like the fused GPU kernels. Accumulates in f64.
 */
function scoresRow(a: AttentionAttrs, Q: ArrayLike<number>, qo: number, K: ArrayLike<number>, ko: number, mask: View | null, bh: number, i: number, out: Float64Array): void {
  const M = mask ? dataOf(mask) : null;
  const b = Math.floor(bh / a.heads), h = bh % a.heads;
  const ms = a.maskStrides ?? [0, 0, 0, 0];
  for (let j = 0; j < a.lk; j++) {
    if (a.mask === 'causal' && j > i) {
      out[j] = -Infinity;
      continue;
    }
    let s = 0;
    const qb = qo + (bh * a.lq + i) * a.d, kb = ko + (bh * a.lk + j) * a.d;
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
      scoresRow(a, Q, q.offset, K, k.offset, mask, bh, i, s);
      let mx = -Infinity;
      for (let j = 0; j < a.lk; j++) mx = Math.max(mx, s[j]!);
      let l = 0;
      acc.fill(0);
      for (let j = 0; j < a.lk; j++) {
        const p = Math.exp(s[j]! - mx);
        l += p;
        const vb = v.offset + (bh * a.lk + j) * a.dv;
        for (let c = 0; c < a.dv; c++) acc[c]! += p * V[vb + c]!;
      }
      const ob = (bh * a.lq + i) * a.dv;
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
      scoresRow(a, Q, q!.offset, K, k!.offset, mask, bh, i, s);
      const gb = g!.offset + (bh * a.lq + i) * a.dv, ob = o!.offset + (bh * a.lq + i) * a.dv;
      let Di = 0;
      for (let c = 0; c < a.dv; c++) Di += G[gb + c]! * O[ob + c]!;
      const li = LSE[lse!.offset + bh * a.lq + i]!;
      const qb = q!.offset + (bh * a.lq + i) * a.d;
      dqRow.fill(0);
      for (let j = 0; j < a.lk; j++) {
        const p = Math.exp(s[j]! - li);
        if (p === 0) continue;
        const vb = v!.offset + (bh * a.lk + j) * a.dv, kb = k!.offset + (bh * a.lk + j) * a.d;
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
      dq.data.set(dqRow, (bh * a.lq + i) * a.d);
    }
  }
  const dk = be.alloc('float32', dkAcc.length) as CpuStorage;
  const dv = be.alloc('float32', dvAcc.length) as CpuStorage;
  dk.data.set(dkAcc);
  dv.data.set(dvAcc);
  return [dq, dk, dv];
};
