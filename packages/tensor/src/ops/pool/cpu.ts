// pool kernels (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';
import type { Pool2dAttrs, AdaptivePool2dAttrs, UpsampleNearestAttrs } from './index.js';

/** PyTorch's average-pool divisor for the window starting at (y0, x0) (before clipping). */
export function avgDivisor(a: Pool2dAttrs, y0: number, x0: number): number {
  if (a.divisorOverride) return a.divisorOverride;
  let y1 = Math.min(y0 + a.kh, a.h + a.padH), x1 = Math.min(x0 + a.kw, a.w + a.padW);
  const padded = (y1 - y0) * (x1 - x0);
  if (a.countIncludePad) return padded;
  y1 = Math.min(y1, a.h);
  x1 = Math.min(x1, a.w);
  return (y1 - Math.max(y0, 0)) * (x1 - Math.max(x0, 0));
}

export const pool2d: KernelFn<CpuBackend, 'pool2d'> = (be, [x], attrs) => {
  const a = attrs;
  const X = dataOf(x!);
  const n = a.planes * a.ho * a.wo;
  const y = be.alloc('float32', n) as CpuStorage;
  const idx = a.mode === 'max' ? (be.alloc('int32', n) as CpuStorage) : null;
  for (let p = 0; p < a.planes; p++) {
    const base = x!.offset + p * a.h * a.w;
    for (let oy = 0; oy < a.ho; oy++) {
      for (let ox = 0; ox < a.wo; ox++) {
        const y0 = oy * a.strideH - a.padH, x0 = ox * a.strideW - a.padW;
        const o = (p * a.ho + oy) * a.wo + ox;
        if (a.mode === 'max') {
          // first maximum wins (strict >); NaN propagates and the last NaN takes the index (PyTorch: val > max || isnan(val)); an all -inf window points at its first tap
          let best = -Infinity, bi = -1, first = -1;
          for (let r = 0; r < a.kh; r++) {
            const iy = y0 + r * a.dilH;
            if (iy < 0 || iy >= a.h) continue;
            for (let s = 0; s < a.kw; s++) {
              const ix = x0 + s * a.dilW;
              if (ix < 0 || ix >= a.w) continue;
              const v = X[base + iy * a.w + ix]!;
              if (first < 0) first = iy * a.w + ix;
              if (v > best || Number.isNaN(v)) {
                best = v;
                bi = iy * a.w + ix;
              }
            }
          }
          y.data[o] = best;
          idx!.data[o] = bi >= 0 ? bi : Math.max(first, 0);
        } else {
          let s0 = 0;
          for (let iy = Math.max(y0, 0); iy < Math.min(y0 + a.kh, a.h); iy++) {
            for (let ix = Math.max(x0, 0); ix < Math.min(x0 + a.kw, a.w); ix++) s0 += X[base + iy * a.w + ix]!;
          }
          y.data[o] = s0 / avgDivisor(a, y0, x0);
        }
      }
    }
  }
  return idx ? [y, idx] : [y];
};

export const pool2d_backward: KernelFn<CpuBackend, 'pool2d_backward'> = (be, inputs, attrs) => {
  const a = attrs;
  const g = inputs[0]!, G = dataOf(g);
  const dx = new Float64Array(a.planes * a.h * a.w);
  const I = a.mode === 'max' ? dataOf(inputs[1]!) : null;
  for (let p = 0; p < a.planes; p++) {
    for (let oy = 0; oy < a.ho; oy++) {
      for (let ox = 0; ox < a.wo; ox++) {
        const o = (p * a.ho + oy) * a.wo + ox;
        const gv = G[g.offset + o]!;
        if (I) {
          dx[p * a.h * a.w + I[inputs[1]!.offset + o]!] += gv;
          continue;
        }
        const y0 = oy * a.strideH - a.padH, x0 = ox * a.strideW - a.padW;
        const share = gv / avgDivisor(a, y0, x0);
        for (let iy = Math.max(y0, 0); iy < Math.min(y0 + a.kh, a.h); iy++) {
          for (let ix = Math.max(x0, 0); ix < Math.min(x0 + a.kw, a.w); ix++) dx[(p * a.h + iy) * a.w + ix] += share;
        }
      }
    }
  }
  const out = be.alloc('float32', dx.length) as CpuStorage;
  (out.data as Float32Array).set(dx);
  return out;
};

/** PyTorch's adaptive window [start, end) of output o for an axis of `size` into `out` bins. */
export function adaptiveRange(o: number, size: number, out: number): [number, number] {
  return [Math.floor((o * size) / out), Math.ceil(((o + 1) * size) / out)];
}

function adaptive(be: CpuBackend, a: AdaptivePool2dAttrs, fn: (plane: number, o: number, iy: number, ix: number, count: number) => void): void {
  for (let p = 0; p < a.planes; p++) {
    for (let oy = 0; oy < a.ho; oy++) {
      const [y0, y1] = adaptiveRange(oy, a.h, a.ho);
      for (let ox = 0; ox < a.wo; ox++) {
        const [x0, x1] = adaptiveRange(ox, a.w, a.wo);
        const count = (y1 - y0) * (x1 - x0);
        for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) fn(p, (p * a.ho + oy) * a.wo + ox, iy, ix, count);
      }
    }
  }
  void be;
}

export const adaptive_avg_pool2d: KernelFn<CpuBackend, 'adaptive_avg_pool2d'> = (be, [x], attrs) => {
  const a = attrs;
  const X = dataOf(x!);
  const acc = new Float64Array(a.planes * a.ho * a.wo);
  adaptive(be, a, (p, o, iy, ix, count) => {
    acc[o] += X[x!.offset + (p * a.h + iy) * a.w + ix]! / count;
  });
  const y = be.alloc('float32', acc.length) as CpuStorage;
  (y.data as Float32Array).set(acc);
  return y;
};

export const adaptive_avg_pool2d_backward: KernelFn<CpuBackend, 'adaptive_avg_pool2d_backward'> = (be, [g], attrs) => {
  const a = attrs;
  const G = dataOf(g!);
  const acc = new Float64Array(a.planes * a.h * a.w);
  adaptive(be, a, (p, o, iy, ix, count) => {
    acc[(p * a.h + iy) * a.w + ix] += G[g!.offset + o]! / count;
  });
  const y = be.alloc('float32', acc.length) as CpuStorage;
  (y.data as Float32Array).set(acc);
  return y;
};

/** Table offsets of nearestTable's four parts: source rows, source columns, row starts, column starts. */
export function upsampleTableParts(a: UpsampleNearestAttrs): [number, number, number, number] {
  return [0, a.ho, a.ho + a.wo, a.ho + a.wo + a.h + 1];
}

export const upsample_nearest: KernelFn<CpuBackend, 'upsample_nearest'> = (be, [x, t], attrs) => {
  const a = attrs;
  const X = dataOf(x!), T = dataOf(t!);
  const [iy0, ix0] = upsampleTableParts(a);
  const y = be.alloc('float32', a.planes * a.ho * a.wo) as CpuStorage;
  const Y = y.data as Float32Array;
  for (let p = 0; p < a.planes; p++)
    for (let oy = 0; oy < a.ho; oy++) {
      const row = x!.offset + (p * a.h + T[t!.offset + iy0 + oy]!) * a.w;
      for (let ox = 0; ox < a.wo; ox++) Y[(p * a.ho + oy) * a.wo + ox] = X[row + T[t!.offset + ix0 + ox]!]!;
    }
  return y;
};

export const upsample_nearest_backward: KernelFn<CpuBackend, 'upsample_nearest_backward'> = (be, [g, t], attrs) => {
  const a = attrs;
  const G = dataOf(g!), T = dataOf(t!);
  const [iy0, ix0] = upsampleTableParts(a);
  const acc = new Float64Array(a.planes * a.h * a.w);
  for (let p = 0; p < a.planes; p++)
    for (let oy = 0; oy < a.ho; oy++) {
      const row = (p * a.h + T[t!.offset + iy0 + oy]!) * a.w;
      for (let ox = 0; ox < a.wo; ox++) acc[row + T[t!.offset + ix0 + ox]!] += G[g!.offset + (p * a.ho + oy) * a.wo + ox]!;
    }
  const y = be.alloc('float32', acc.length) as CpuStorage;
  (y.data as Float32Array).set(acc);
  void be;
  return y;
};

