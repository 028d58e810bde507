import type { F16Inputs } from './boundary.js';

/**
 * The inputs the WebGPU kernels read as float16 directly (issue 16): weights and their biases, the
 * operands a model stores. Each entry must match its kernel's WGSL (ops/cast/wgsl.ts loaders);
 * every other f16 input is cast to f32 at the boundary. The CPU reference declares none: its loops
 * read f32 copies (the same values: f16 → f32 is exact).
 */
export const WEBGPU_F16_INPUTS: F16Inputs = {
  // B (a linear layer's weight, forward and input gradient) and the bias
  matmul: (a) => (a.hasBias ? [1, 2] : [1]),
  conv2d: (a) => (a.hasBias ? [1, 2] : [1]),
  // dgrad reads the weights (input 1); wgrad reads x and dy only
  conv2d_grad_input: () => [1],
  // the table (an embedding's weight: f32 rows out, ops/indexing/webgpu.ts)
  index_select: () => [0],
  // [x, weight?, bias?, ...]
  norm_forward: (a) => {
    const r: number[] = [];
    let k = 1;
    if (a.hasWeight) r.push(k++);
    if (a.hasBias) r.push(k++);
    return r;
  },
  // [x, g, stats, weight?, bias? (with an activation), gacc?]
  norm_backward: (a) => {
    const r: number[] = [];
    let k = 3;
    if (a.hasWeight) r.push(k++);
    if (a.activation && a.hasBias) r.push(k++);
    return r;
  },
  // [x, g, stats, weight?, bias?] (weight and bias only with an activation)
  norm_affine_grad: (a) => {
    const r: number[] = [];
    let k = 3;
    if (a.activation && a.hasWeight) r.push(k++);
    if (a.activation && a.hasBias) r.push(k++);
    return r;
  },
};
