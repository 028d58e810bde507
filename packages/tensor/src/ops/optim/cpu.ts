// optim kernels (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { CpuBackend, dataOf } from '../../backends/cpu/cpu-backend.js';
import type { AdamStepAttrs, SgdStepAttrs, SumSquaresAttrs, ClipScaleAttrs } from './index.js';

// f32 arithmetic step by step, in torch's order of operations (single-tensor code path).
const f = Math.fround;

export const adam_step: KernelFn<CpuBackend, 'adam_step'> = (_be, views, attrs) => {
  const a = attrs;
  const w1 = f(1 - a.beta1), b2 = f(a.beta2), w2 = f(1 - a.beta2), eps = f(a.eps);
  const decay = f(a.decay), l2 = f(a.l2);
  a.tensors.forEach((t, k) => {
    const [p, g, m, v] = [views[4 * k]!, views[4 * k + 1]!, views[4 * k + 2]!, views[4 * k + 3]!];
    const P = dataOf(p), G = dataOf(g), M = dataOf(m), V = dataOf(v);
    const step = f(t.stepSize), bc2 = f(t.bc2Sqrt);
    for (let i = 0; i < t.n; i++) {
      const pi = p.offset + i, mi = m.offset + i, vi = v.offset + i;
      let gr = G[g.offset + i]!;
      if (a.maximize) gr = -gr;
      if (a.l2 !== 0) gr = f(gr + f(l2 * P[pi]!));
      if (a.decay !== 1) P[pi] = f(P[pi]! * decay);
      // exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
      M[mi] = f(M[mi]! + f(w1 * f(gr - M[mi]!)));
      V[vi] = f(f(V[vi]! * b2) + f(f(w2 * gr) * gr));
      const denom = f(f(f(Math.sqrt(V[vi]!)) / bc2) + eps);
      P[pi] = f(P[pi]! + f(-step * f(M[mi]! / denom)));
    }
  });
};

export const sgd_step: KernelFn<CpuBackend, 'sgd_step'> = (_be, inputs, attrs) => {
  const a = attrs;
  const per = a.momentum !== 0 ? 3 : 2;
  const wd = f(a.weightDecay), mom = f(a.momentum), damp = f(1 - a.dampening), lr = f(a.lr);
  a.tensors.forEach((t, k) => {
    const [p, g] = [inputs[per * k]!, inputs[per * k + 1]!];
    const b = per === 3 ? inputs[per * k + 2]! : null;
    const P = dataOf(p), G = dataOf(g), B = b ? dataOf(b) : null;
    for (let i = 0; i < t.n; i++) {
      const pi = p.offset + i;
      let gr = G[g.offset + i]!;
      if (a.maximize) gr = -gr;
      if (a.weightDecay !== 0) gr = f(gr + f(wd * P[pi]!));
      if (B) {
        const bi = b!.offset + i;
        B[bi] = t.first ? gr : f(f(B[bi]! * mom) + f(damp * gr));
        gr = a.nesterov ? f(gr + f(mom * B[bi]!)) : B[bi]!;
      }
      P[pi] = f(P[pi]! + f(-lr * gr));
    }
  });
};

export const sum_squares: KernelFn<CpuBackend, 'sum_squares'> = (_be, [x], attrs) => {
  const a = attrs;
  const X = dataOf(x!), O = dataOf(a.out);
  const chunk = Math.ceil(a.n / a.parts);
  for (let p = 0; p < a.parts; p++) {
    let s = 0;
    for (let i = p * chunk; i < Math.min((p + 1) * chunk, a.n); i++) s += X[x!.offset + i]! ** 2;
    O[a.out.offset + p] = s;
  }
};

export const clip_scale: KernelFn<CpuBackend, 'clip_scale'> = (_be, [g, norm], attrs) => {
  const a = attrs;
  const G = dataOf(g!);
  const coef = Math.min(f(f(a.maxNorm) / f(dataOf(norm!)[norm!.offset]! + f(1e-6))), 1);
  for (let i = 0; i < a.n; i++) G[g!.offset + i] = f(G[g!.offset + i]! * coef);
};
