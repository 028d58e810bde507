// The WebGPU kernel table: one implementation per kernel of the contract (Kernels, backends/kernel-attrs.ts).
// The type makes a missing kernel a compile error; context.ts hands the table to the backend.
import type { KernelTable } from '../../../backend.js';
import type { WebGPUBackend } from '../webgpu-backend.js';
import * as elementwise from '../../../ops/elementwise/webgpu.js';
import * as reduce from '../../../ops/reduce/webgpu.js';
import * as matmul from '../../../ops/matmul/webgpu.js';
import * as indexing from '../../../ops/indexing/webgpu.js';
import * as softmax from '../../../ops/softmax/webgpu.js';
import * as random from '../../../ops/random/webgpu.js';
import * as conv from '../../../ops/conv/webgpu.js';
import * as pool from '../../../ops/pool/webgpu.js';
import * as norm from '../../../ops/norm/webgpu.js';
import * as attention from '../../../ops/attention/webgpu.js';
import * as optim from '../../../ops/optim/webgpu.js';
import * as cast from '../../../ops/cast/webgpu.js';
import * as concat from '../../../ops/concat/webgpu.js';

export const webgpuKernels: KernelTable<WebGPUBackend> = {
  elementwise: elementwise.elementwise,
  cast: cast.cast,
  reduce: reduce.reduce,
  concat: concat.concat,
  matmul: matmul.matmul,
  index_check: indexing.index_check,
  index_select: indexing.index_select,
  index_add: indexing.index_add,
  softmax: softmax.softmax,
  softmax_backward: softmax.softmax_backward,
  random: random.random,
  conv2d: conv.conv2d,
  conv2d_grad_input: conv.conv2d_grad_input,
  conv2d_grad_weight: conv.conv2d_grad_weight,
  pool2d: pool.pool2d,
  pool2d_backward: pool.pool2d_backward,
  adaptive_avg_pool2d: pool.adaptive_avg_pool2d,
  adaptive_avg_pool2d_backward: pool.adaptive_avg_pool2d_backward,
  upsample_nearest: pool.upsample_nearest,
  upsample_nearest_backward: pool.upsample_nearest_backward,
  norm_forward: norm.norm_forward,
  norm_backward: norm.norm_backward,
  norm_affine_grad: norm.norm_affine_grad,
  norm_backward_affine: norm.norm_backward_affine,
  attention_forward: attention.attention_forward,
  attention_backward: attention.attention_backward,
  adam_step: optim.adam_step,
  sgd_step: optim.sgd_step,
  sum_squares: optim.sum_squares,
  clip_scale: optim.clip_scale,
};
