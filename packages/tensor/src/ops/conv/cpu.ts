// conv kernels (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';
import type { Conv2dAttrs } from './index.js';
import { isContiguous } from '../../shape.js';

/**
 * Direct loops over the definition in Conv2dAttrs, accumulating in f64. Each kernel calls
 * `taps` for every (output position, weight tap) pair that lands inside the input, so the three
 * kernels share one statement of the geometry.
 */
type TapFn = (xi: number, wi: number, yi: number) => void;

function taps(a: Conv2dAttrs, fn: TapFn): void {
  const cg = a.c / a.groups, kg = a.k / a.groups;
  const hw = a.h * a.w, howo = a.ho * a.wo, khkw = a.kh * a.kw;
  for (let b = 0; b < a.n; b++) {
    for (let o = 0; o < a.k; o++) {
      const g = Math.floor(o / kg);
      for (let ci = 0; ci < cg; ci++) {
        const xPlane = (b * a.c + g * cg + ci) * hw;
        const wBase = (o * cg + ci) * khkw;
        const yPlane = (b * a.k + o) * howo;
        for (let r = 0; r < a.kh; r++) {
          for (let oy = 0; oy < a.ho; oy++) {
            const iy = oy * a.strideH - a.padTop + r * a.dilH;
            if (iy < 0 || iy >= a.h) continue;
            for (let s = 0; s < a.kw; s++) {
              const wi = wBase + r * a.kw + s;
              for (let ox = 0; ox < a.wo; ox++) {
                const ix = ox * a.strideW - a.padLeft + s * a.dilW;
                if (ix < 0 || ix >= a.w) continue;
                fn(xPlane + iy * a.w + ix, wi, yPlane + oy * a.wo + ox);
              }
            }
          }
        }
      }
    }
  }
}

function toStorage(be: CpuBackend, acc: Float64Array): CpuStorage {
  const out = be.alloc('float32', acc.length) as CpuStorage;
  (out.data as Float32Array).set(acc);
  return out;
}

export const conv2d: KernelFn<CpuBackend, 'conv2d'> = (be, inputs, attrs) => {
  const a = attrs;
  const [x, w] = [inputs[0]!, inputs[1]!];
  const X = dataOf(x), Wt = dataOf(w);
  const acc = new Float64Array(a.n * a.k * a.ho * a.wo);
  if (a.hasBias) {
    const bv = inputs[2]!, B = dataOf(bv);
    const howo = a.ho * a.wo;
    for (let i = 0; i < acc.length; i++) acc[i] = B[bv.offset + (Math.floor(i / howo) % a.k)]!;
  }
  taps(a, (xi, wi, yi) => {
    acc[yi] += X[x.offset + xi]! * Wt[w.offset + wi]!;
  });
  if (a.hasAddend) addView(acc, inputs[a.hasBias ? 3 : 2]!);
  return toStorage(be, acc);
};

/** acc += the view (of acc's shape, any strides), element by element in row-major order. */
function addView(acc: Float64Array, v: View): void {
  const D = dataOf(v);
  const idx = new Array<number>(v.shape.length).fill(0);
  for (let i = 0; i < acc.length; i++) {
    let off = v.offset;
    for (let d = 0; d < idx.length; d++) off += idx[d]! * v.strides[d]!;
    acc[i] += D[off]!;
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d]! < v.shape[d]!) break;
      idx[d] = 0;
    }
  }
}

/** A view's values in row-major order from index 0 (dy may come with any image stride). */
function dense(v: View): { data: ArrayLike<number>; offset: number } {
  if (isContiguous(v.shape, v.strides)) return { data: dataOf(v), offset: v.offset };
  const acc = new Float64Array(v.shape.reduce((p, d) => p * d, 1));
  addView(acc, v);
  return { data: acc, offset: 0 };
}

export const conv2d_grad_input: KernelFn<CpuBackend, 'conv2d_grad_input'> = (be, [dyIn, w, addend], attrs) => {
  const a = attrs;
  const { data: G, offset: gOff } = dense(dyIn!);
  const dy = { offset: gOff };
  const Wt = dataOf(w!);
  const acc = new Float64Array(a.n * a.c * a.h * a.w);
  taps(a, (xi, wi, yi) => {
    acc[xi] += G[dy!.offset + yi]! * Wt[w!.offset + wi]!;
  });
  if (a.hasAddend) addView(acc, addend!);
  return toStorage(be, acc);
};

export const conv2d_grad_weight: KernelFn<CpuBackend, 'conv2d_grad_weight'> = (be, [x, dyIn], attrs) => {
  const a = attrs;
  const { data: G, offset: gOff } = dense(dyIn!);
  const dy = { offset: gOff };
  const X = dataOf(x!);
  const nw = a.k * (a.c / a.groups) * a.kh * a.kw;
  const acc = new Float64Array(nw + (a.biasGrad ? a.k : 0));
  taps(a, (xi, wi, yi) => {
    acc[wi] += X[x!.offset + xi]! * G[dy!.offset + yi]!;
  });
  if (a.biasGrad) {
    const howo = a.ho * a.wo;
    for (let b = 0; b < a.n; b++) for (let o = 0; o < a.k; o++) {
      const base = dy!.offset + (b * a.k + o) * howo;
      for (let p = 0; p < howo; p++) acc[nw + o] += G[base + p]!;
    }
  }
  return toStorage(be, acc);
};
