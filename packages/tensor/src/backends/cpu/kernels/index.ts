// The CPU kernel table (reference implementations): one implementation per kernel of the contract (Kernels, backends/kernel-attrs.ts).
// The type makes a missing kernel a compile error; context.ts hands the table to the backend.
import type { KernelTable } from '../../../backend.js';
import type { CpuBackend } from '../cpu-backend.js';
import * as random from '../../../ops/random/cpu.js';
import * as indexing from '../../../ops/indexing/cpu.js';
import * as softmax from '../../../ops/softmax/cpu.js';
import * as elementwise from '../../../ops/elementwise/cpu.js';
import * as reduce from '../../../ops/reduce/cpu.js';
import * as matmul from '../../../ops/matmul/cpu.js';
import * as conv from '../../../ops/conv/cpu.js';
import * as pool from '../../../ops/pool/cpu.js';
import * as norm from '../../../ops/norm/cpu.js';
import * as attention from '../../../ops/attention/cpu.js';
import * as optim from '../../../ops/optim/cpu.js';
import * as cast from '../../../ops/cast/cpu.js';
import * as concat from '../../../ops/concat/cpu.js';

export const cpuKernels: KernelTable<CpuBackend> = {
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
