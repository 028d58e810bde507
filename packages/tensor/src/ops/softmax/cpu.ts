// softmax kernels (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';

export const softmax: KernelFn<CpuBackend, 'softmax'> = (be, [x], attrs) => {
  const { rows, cols, log } = attrs;
  const X = dataOf(x!);
  const out = be.alloc('float32', rows * cols) as CpuStorage;
  for (let r = 0; r < rows; r++) {
    const o = x!.offset + r * cols;
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) mx = Math.max(mx, X[o + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(X[o + c]! - mx);
    const ls = Math.log(s);
    for (let c = 0; c < cols; c++) {
      out.data[r * cols + c] = log ? X[o + c]! - mx - ls : Math.exp(X[o + c]! - mx) / s;
    }
  }
  return out;
};

export const softmax_backward: KernelFn<CpuBackend, 'softmax_backward'> = (be, [y, g], attrs) => {
  const { rows, cols, log } = attrs;
  const Y = dataOf(y!), G = dataOf(g!);
  const out = be.alloc('float32', rows * cols) as CpuStorage;
  for (let r = 0; r < rows; r++) {
    const yo = y!.offset + r * cols, go = g!.offset + r * cols;
    let s = 0;
    for (let c = 0; c < cols; c++) s += log ? G[go + c]! : G[go + c]! * Y[yo + c]!;
    for (let c = 0; c < cols; c++) {
      out.data[r * cols + c] = log ? G[go + c]! - Math.exp(Y[yo + c]!) * s : Y[yo + c]! * (G[go + c]! - s);
    }
  }
  return out;
};
