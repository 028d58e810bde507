/**
 * conv2d forward and input gradient as an explicit im2col + matmul, for the layers where the
 * implicit kernels are weakest: few output pixels per image and many channels (ResNet18's last two
 * stages: 2x2 and 4x4 outputs with 256-512 channels). There the column matrix is small (its size is
 * the input's times the taps over the stride²), and one row-major product runs the matmul kernel's
 * fast form: on lavapipe, [32,512,2,2] 3x3 forward 70 -> ~35 ms.
 *
 *   fwd:   cols[(c,r,s), (n,oy,ox)] = x[n, c, oy·sh − pt + r·dh, ox·sw − pl + s·dw] (0 outside)
 *          C[k, (n,p)] = W[k, (c,r,s)] · cols;  y[n, k, p] = C[k, n·P + p] (+ bias[k])
 *   dgrad: dyP[k, (n,p)] = dy[n, k, p];  dcols = Wᵀ · dyP;  dx[n, c, iy, ix] = Σ over the taps
 *          (r, s) that reach (iy, ix) of dcols[(c,r,s), (n,oy,ox)]  (a gather: no atomics)
 *   wgrad: dW[k, (c,r,s)] = dyP · colsᵀ
 *
 * The gather kernels take the geometry as WGSL constants (divisions by constants compile to
 * multiplies; by uniforms they are scalarised per lane on CPU adapters).
 */
import type { View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid, type GpuStorage } from '../../backends/webgpu/webgpu-backend.js';
import type { Conv2dAttrs } from './index.js';
import type { MatmulAttrs } from '../matmul/index.js';
import { env } from '../../env.js';

const WG = 256;
/**
 * Output pixels per image at or below which the explicit path is taken: forward and input gradient
 * up to 4x4 (ResNet18 at 64²: stages 3 and 4; 1.1-2.8x less CPU time than the implicit kernels
 * there, 0.6-0.9x at 8x8 and 16x16), the weight gradient up to 2x2 (1.3x at 2x2, 0.8x at 4x4).
 */
const MAX_PIXELS = 16;
const MAX_PIXELS_WGRAD = 4;
/** The product's depth (C·R·S) and rows (K) from which the matmul's fast form pays for the copies. */
const MIN_DEPTH = 256;
const MIN_ROWS = 64;

/** Whether conv2d `mode` of `a` runs as im2col + matmul on this backend (FOLIAR_CONV_IM2COL: 0 never, force wherever legal). */
export function im2colApplies(be: WebGPUBackend, mode: 'fwd' | 'dgrad' | 'wgrad', a: Conv2dAttrs, w: View): boolean {
  const knob = env('FOLIAR_CONV_IM2COL');
  if (knob === '0') return false;
  // the weight gradient's bias sums would need the product written into a larger buffer: those stay implicit
  if (a.groups !== 1 || w.dtype !== 'float32' || (mode === 'wgrad' && a.biasGrad)) return false;
  const depth = a.c * a.kh * a.kw, np = a.n * a.ho * a.wo;
  // the column matrix and the product are single bindings
  if (depth * np * 4 > be.maxBindingBytes || a.k * np * 4 > be.maxBindingBytes) return false;
  if (knob === 'force') return true;
  // kernels wider than 4 (ResNet's 7x7 stem) have no window kernel; the implicit GEMM's gradients
  // are slow there (stem at 64²: weight gradient 1.4x, input gradient 12x less CPU time as a product)
  if (mode !== 'fwd' && (a.kh > 4 || a.kw > 4)) return true;
  if (a.ho * a.wo > (mode === 'wgrad' ? MAX_PIXELS_WGRAD : MAX_PIXELS) || depth < MIN_DEPTH || a.k < MIN_ROWS) return false;
  return mode !== 'dgrad' || a.c >= MIN_ROWS;
}

function geometry(a: Conv2dAttrs): string {
  const c = (name: string, v: number) => `const ${name} = ${v}u;`;
  return [c('N', a.n), c('C', a.c), c('H', a.h), c('W', a.w), c('HO', a.ho), c('WO', a.wo), c('KH', a.kh), c('KW', a.kw),
    c('SH', a.strideH), c('SW', a.strideW), c('DH', a.dilH), c('DW', a.dilW), c('PT', a.padTop), c('PL', a.padLeft),
    c('P', a.ho * a.wo), c('NP', a.n * a.ho * a.wo)].join('\n');
}
const geometryKey = (a: Conv2dAttrs): string =>
  [a.n, a.c, a.h, a.w, a.ho, a.wo, a.kh, a.kw, a.strideH, a.strideW, a.dilH, a.dilW, a.padTop, a.padLeft].join(',');

const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.total) { return; }`;

/** cols[(c,r,s), (n,oy,ox)]: one invocation per element, zero outside the (padded) input. */
function im2colWgsl(a: Conv2dAttrs): string {
  return `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;
struct U { total: u32, xoff: u32 };
@group(0) @binding(2) var<uniform> u: U;
${geometry(a)}
${ENTRY}
  let row = t / NP;
  let col = t % NP;
  let s = row % KW;
  let r = (row / KW) % KH;
  let c = row / (KW * KH);
  let ox = col % WO;
  let oy = (col / WO) % HO;
  let n = col / P;
  let iy = i32(oy * SH + r * DH) - i32(PT);
  let ix = i32(ox * SW + s * DW) - i32(PL);
  let inside = iy >= 0 && iy < i32(H) && ix >= 0 && ix < i32(W);
  let at = u.xoff + ((n * C + c) * H + u32(clamp(iy, 0, i32(H) - 1))) * W + u32(clamp(ix, 0, i32(W) - 1));
  cols[t] = select(0.0, x[at], inside);
}`;
}

/** dx[n, c, iy, ix] = Σ over the taps reaching it of dcols[(c,r,s), (n,oy,ox)]; reads at clamped addresses, masked. */
function col2imWgsl(a: Conv2dAttrs): string {
  return `
@group(0) @binding(0) var<storage, read> dcols: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
struct U { total: u32, pad: u32 };
@group(0) @binding(2) var<uniform> u: U;
${geometry(a)}
${ENTRY}
  let ix = t % W;
  let iy = (t / W) % H;
  let c = (t / (W * H)) % C;
  let n = t / (W * H * C);
  var acc = 0.0;
  for (var r = 0u; r < KH; r++) {
    let ty = i32(iy + PT) - i32(r * DH);
    let oy = u32(max(ty, 0)) / SH;
    let oky = ty >= 0 && u32(ty) % SH == 0u && oy < HO;
    for (var s = 0u; s < KW; s++) {
      let tx = i32(ix + PL) - i32(s * DW);
      let ox = u32(max(tx, 0)) / SW;
      let ok = oky && tx >= 0 && u32(tx) % SW == 0u && ox < WO;
      let at = ((c * KH + r) * KW + s) * NP + (n * HO + min(oy, HO - 1u)) * WO + min(ox, WO - 1u);
      acc += select(0.0, dcols[at], ok);
    }
  }
  dx[t] = acc;
}`;
}

function gather(be: WebGPUBackend, name: string, key: string, wgsl: () => string, src: View, total: number, uniforms: Uint32Array): GpuStorage {
  const out = be.alloc('float32', total);
  be.rt.dispatch({ name, key, wgsl, buffers: [bufferOf(src), out.buffer], uniforms, workgroups: grid(total, WG) });
  return out;
}

const product = (m: number, n: number, k: number, transA: boolean): MatmulAttrs => ({ batch: 1, m, n, k, transA, transB: false, aBatchStride: 0, bBatchStride: 0 });

const viewOf = (s: GpuStorage, shape: number[], strides: number[], offset = 0): View => ({ storage: s, shape, strides, offset, dtype: 'float32' });

/** conv2d forward: y [n, k, ho, wo] (+ bias). */
export function im2colForward(be: WebGPUBackend, a: Conv2dAttrs, x: View, w: View, bias: View | null): GpuStorage {
  const depth = a.c * a.kh * a.kw, P = a.ho * a.wo, np = a.n * P;
  const owned: GpuStorage[] = [];
  try {
    const cols = gather(be, 'conv2d_im2col', `conv2d_im2col:${geometryKey(a)}`, () => im2colWgsl(a), x, depth * np, new UniformWriter().u32(depth * np, x.offset).build());
    owned.push(cols);
    const prod = be.run('matmul', [w, viewOf(cols, [depth * np], [1])], product(a.k, np, depth, false)) as GpuStorage;
    owned.push(prod);
    // C[k, n·P + p] -> y[n, k, p], adding the bias per channel on the way
    const y = be.alloc('float32', a.n * a.k * P);
    const shape = [a.n, a.k, P];
    const srcs: View[] = [viewOf(prod, shape, [P, np, 1])];
    if (bias) srcs.push({ storage: bias.storage, shape, strides: [0, 1, 0], offset: bias.offset, dtype: bias.dtype });
    be.run('elementwise', srcs, { op: bias ? 'add' : 'copy', params: [], shape, out: viewOf(y, shape, [a.k * P, P, 1]) });
    return y;
  } finally {
    for (const o of owned) o.release();
  }
}

/** dy [n, k, p] -> dyP [k, n·P + p] (the product's row-major operand). */
function permuteDy(be: WebGPUBackend, a: Conv2dAttrs, dy: View): GpuStorage {
  const P = a.ho * a.wo, np = a.n * P;
  const dyP = be.alloc('float32', a.k * np);
  const shape = [a.k, a.n, P];
  be.run('elementwise', [{ storage: dy.storage, shape, strides: [P, a.k * P, 1], offset: dy.offset, dtype: 'float32' }], {
    op: 'copy', params: [], shape, out: viewOf(dyP, shape, [np, P, 1]),
  });
  return dyP;
}

/** conv2d weight gradient (without the bias sums): dW [k, c, kh, kw]. */
export function im2colGradWeight(be: WebGPUBackend, a: Conv2dAttrs, x: View, dy: View): GpuStorage {
  const depth = a.c * a.kh * a.kw, np = a.n * a.ho * a.wo;
  const owned: GpuStorage[] = [];
  try {
    const cols = gather(be, 'conv2d_im2col', `conv2d_im2col:${geometryKey(a)}`, () => im2colWgsl(a), x, depth * np, new UniformWriter().u32(depth * np, x.offset).build());
    owned.push(cols);
    const dyP = permuteDy(be, a, dy);
    owned.push(dyP);
    // dW [k, depth] = dyP [k, np] · colsᵀ (cols [depth, np] read transposed; the matmul copies it row-major when that pays)
    return be.run('matmul', [viewOf(dyP, [a.k * np], [1]), viewOf(cols, [depth * np], [1])], { ...product(a.k, depth, np, false), transB: true, ldb: np }) as GpuStorage;
  } finally {
    for (const o of owned) o.release();
  }
}

/** conv2d input gradient: dx [n, c, h, w]. */
export function im2colGradInput(be: WebGPUBackend, a: Conv2dAttrs, dy: View, w: View): GpuStorage {
  const depth = a.c * a.kh * a.kw, P = a.ho * a.wo, np = a.n * P;
  const owned: GpuStorage[] = [];
  try {
    const dyP = permuteDy(be, a, dy);
    owned.push(dyP);
    // dcols [depth, np] = Wᵀ · dyP (W [k, depth] read transposed; the matmul copies it row-major when that pays)
    const dcols = be.run('matmul', [w, viewOf(dyP, [a.k * np], [1])], { ...product(depth, np, a.k, true), lda: depth }) as GpuStorage;
    owned.push(dcols);
    const total = a.n * a.c * a.h * a.w;
    return gather(be, 'conv2d_col2im', `conv2d_col2im:${geometryKey(a)}`, () => col2imWgsl(a), viewOf(dcols, [depth * np], [1]), total, new UniformWriter().u32(total, 0).build());
  } finally {
    for (const o of owned) o.release();
  }
}
