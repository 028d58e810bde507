import type { KernelFn } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../../backends/webgpu/webgpu-backend.js';
import type { SoftmaxAttrs } from './index.js';

const WG = 64;
const U = `struct U { rows: u32, cols: u32, xoff: u32, goff: u32 };`;

/** One invocation per row: max, sum of exp, write (stable for large logits). */
export const softmax: KernelFn<WebGPUBackend, 'softmax'> = (be, [x], attrs) => {
  const { rows, cols, log } = attrs;
  const out = be.alloc('float32', rows * cols);
  if (rows * cols === 0) return out;
  be.rt.dispatch({
    name: log ? 'log_softmax' : 'softmax',
    key: `softmax:${log}`,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${U}
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * ${WG}u;
  if (r >= u.rows) { return; }
  let b = u.xoff + r * u.cols;
  var mx = -3.4028234e38;
  for (var c = 0u; c < u.cols; c++) { mx = max(mx, x[b + c]); }
  var s = 0.0;
  for (var c = 0u; c < u.cols; c++) { s += exp(x[b + c] - mx); }
  ${log ? 'let ls = log(s);' : 'let inv = 1.0 / s;'}
  for (var c = 0u; c < u.cols; c++) { y[r * u.cols + c] = ${log ? 'x[b + c] - mx - ls' : 'exp(x[b + c] - mx) * inv'}; }
}`,
    buffers: [bufferOf(x!), out.buffer],
    uniforms: new UniformWriter().u32(rows, cols, x!.offset, 0).build(),
    workgroups: grid(rows, WG),
  });
  return out;
};

export const softmax_backward: KernelFn<WebGPUBackend, 'softmax_backward'> = (be, [y, g], attrs) => {
  const { rows, cols, log } = attrs;
  const out = be.alloc('float32', rows * cols);
  if (rows * cols === 0) return out;
  be.rt.dispatch({
    name: log ? 'log_softmax_backward' : 'softmax_backward',
    key: `softmax_bw:${log}`,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
${U}
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * ${WG}u;
  if (r >= u.rows) { return; }
  let yb = u.xoff + r * u.cols; let gb = u.goff + r * u.cols;
  var s = 0.0;
  for (var c = 0u; c < u.cols; c++) { s += ${log ? 'g[gb + c]' : 'g[gb + c] * y[yb + c]'}; }
  for (var c = 0u; c < u.cols; c++) {
    dx[r * u.cols + c] = ${log ? 'g[gb + c] - exp(y[yb + c]) * s' : 'y[yb + c] * (g[gb + c] - s)'};
  }
}`,
    buffers: [bufferOf(y!), bufferOf(g!), out.buffer],
    uniforms: new UniformWriter().u32(rows, cols, y!.offset, g!.offset).build(),
    workgroups: grid(rows, WG),
  });
  return out;
};
