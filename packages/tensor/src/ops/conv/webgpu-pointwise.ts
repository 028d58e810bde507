/**
 * 1x1 convolutions (stride 1, no padding, one group) as batched matrix products on the matmul kernel:
 * per image, the input is a [C, H·W] matrix and the weight a [K, C] one, so
 *
 *   fwd:   y[n] = W · x[n] (+ bias[k] per row: MatmulAttrs.biasPerRow) (+ an addend in y's layout)
 *   dgrad: dx[n] = Wᵀ · dy[n] (+ an addend: x's gradient from its other uses)
 *
 * with W broadcast over the batch (batch stride 0). The implicit GEMM (webgpu.ts) computes the pixel
 * addresses of every (column, tap) and gathers one value per lane; here the product's fast form reads
 * rows of x as vec4s. On lavapipe the tiny UNet's 1x1 shapes (C, K 32-128, 8²-32² pixels) ran at
 * 8-15 GFLOP/s on the implicit GEMM (bench/results/latest-speed-s22.md). The weight gradient stays on
 * the convolution kernels: as a product it is a sum over the images (dW = Σ_n dy[n] · x[n]ᵀ) that
 * the matmul kernel would need a reduction for.
 */
import type { View } from '../../backend.js';
import type { WebGPUBackend, GpuStorage } from '../../backends/webgpu/webgpu-backend.js';
import type { Conv2dAttrs } from './index.js';
import type { MatmulAttrs } from '../matmul/index.js';
import { isContiguous, isContiguousFrom } from '../../shape.js';
import { env } from '../../env.js';

/**
 * Whether conv2d `mode` runs as a product here (FOLIAR_CONV_POINTWISE: 0 never, fwd or dgrad only
 * that direction, unset both): a 1x1 kernel with stride 1, no padding, one group, float32 operands
 * (the product reads A as float32), and an addend, if any, dense in the output's layout.
 */
export function pointwiseApplies(mode: 'fwd' | 'dgrad' | 'wgrad', a: Conv2dAttrs, x: View, w: View, addend: View | null): boolean {
  const knob = env('FOLIAR_CONV_POINTWISE');
  if (knob === '0' || mode === 'wgrad' || (knob && knob !== mode)) return false;
  if (a.kh !== 1 || a.kw !== 1 || a.strideH !== 1 || a.strideW !== 1 || a.groups !== 1) return false;
  if (a.padTop !== 0 || a.padLeft !== 0 || a.ho !== a.h || a.wo !== a.w) return false;
  if (w.dtype !== 'float32' || x.dtype !== 'float32') return false;
  // the images' pixels are rows of the product: dense from the channel dim (any image stride)
  if (!isContiguousFrom(x.shape, x.strides, 1)) return false;
  return !addend || (addend.dtype === 'float32' && isContiguous(addend.shape, addend.strides));
}

/** The convolution's output as a batch of products; `src` is x (fwd) or dy (dgrad), `w` the weight. */
export function pointwiseConv(be: WebGPUBackend, mode: 'fwd' | 'dgrad', a: Conv2dAttrs, src: View, w: View, bias: View | null, addend: View | null): GpuStorage {
  const p = a.h * a.w;
  // fwd: [K, C] · [C, P]; dgrad: [K, C]ᵀ · [K, P]
  const [m, k] = mode === 'fwd' ? [a.k, a.c] : [a.c, a.k];
  const attrs: MatmulAttrs = {
    batch: a.n, m, n: p, k, transA: mode === 'dgrad', transB: false,
    aBatchStride: 0, bBatchStride: src.strides[0]!,
    ...(bias ? { hasBias: true, biasPerRow: true } : {}),
    ...(addend ? { hasAddend: true } : {}),
  };
  const inputs: View[] = [w, src, ...(bias ? [bias] : []), ...(addend ? [addend] : [])];
  return be.run('matmul', inputs, attrs) as GpuStorage;
}
