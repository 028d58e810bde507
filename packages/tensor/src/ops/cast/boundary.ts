import type { Backend, Storage, View } from '../../backend.js';
import type { Kernels, KernelName, ElementwiseAttrs } from '../../backends/kernel-attrs.js';
import { contiguousStrides } from '../../shape.js';
import type { DType } from '../../dtype.js';

/**
 * Per kernel, the inputs a backend's implementation reads as float16 where they lie (f32
 * accumulation): a function of the attrs, since input positions depend on them (a bias present or
 * not). A kernel missing here reads f32 only.
 */
export type F16Inputs = { readonly [K in KernelName]?: (attrs: Kernels[K]['attrs']) => readonly number[] };

const TRAINING_KERNELS: ReadonlySet<KernelName> = new Set<KernelName>(['adam_step', 'sgd_step', 'clip_scale']);

function isFloat(d: string): boolean {
  return d === 'float32' || d === 'float16';
}

function isElementwise(kernel: KernelName, attrs: unknown): attrs is ElementwiseAttrs {
  return kernel === 'elementwise' && !!attrs;
}

/**
 * The float16 boundary of a backend's `run` (issue 16), one place for every kernel:
 * - an f16 input the kernel does not declare in `accepts` is cast to a temporary f32 copy first
 *   (broadcast dims are not materialised) and released after the dispatch;
 * - an elementwise kernel asked for an f16 result (contiguous / clone / cat / pad of f16 tensors:
 *   data movement keeps the dtype) runs in f32 and its result is cast to f16;
 * - the in-place optimizer kernels refuse f16 operands: an update written into a temporary f32 copy
 *   would be lost (keep f32 parameters for training, or freeze the f16 ones).
 * Without any f16 operand the call goes straight through (one dtype check per input).
 */
export function runAtF16Boundary<K extends KernelName>(
  be: Backend,
  kernel: K,
  inputs: readonly View[],
  attrs: Kernels[K]['attrs'],
  accepts: F16Inputs,
  call: (inputs: readonly View[], attrs: Kernels[K]['attrs']) => Kernels[K]['out'],
): Kernels[K]['out'] {
  if (kernel === 'cast') return call(inputs, attrs);
  const ew = isElementwise(kernel, attrs) ? attrs : null;
  const outH = !!ew && (ew.out ? ew.out.dtype === 'float16' : ew.outDtype === 'float16');
  let anyH = outH;
  for (const v of inputs) if (v.dtype === 'float16') anyH = true;
  if (!anyH) return call(inputs, attrs);
  if (TRAINING_KERNELS.has(kernel)) {
    throw new TypeError(
      `${kernel}: float16 tensors cannot be updated in place (the optimizers keep no f32 master copy). ` +
        `Train float32 parameters (module.to({ dtype: 'float32' })), or freeze the float16 weights and train float32 adapters (LoRA).`,
    );
  }
  // a plain copy involving f16 (contiguous / clone / cat / pad of f16, f32 → f16 fills of views) is
  // one pass of the cast kernel instead of cast → copy → cast
  if (ew && ew.op === 'copy' && inputs.length === 1) {
    const src = inputs[0]!;
    const to = ew.out ? ew.out.dtype : (ew.outDtype ?? 'float32');
    if (isFloat(src.dtype) && isFloat(to)) {
      const v: View = { ...src, shape: ew.shape };
      if (ew.out) {
        castInto(ew.out, v);
        return undefined as Kernels[K]['out'];
      }
      return castView(v, to) as Kernels[K]['out'];
    }
  }
  const ok = (accepts[kernel] as ((a: Kernels[K]['attrs']) => readonly number[]) | undefined)?.(attrs) ?? [];
  const temps: Storage[] = [];
  const ins = inputs.map((v, i) => (v.dtype === 'float16' && !ok.includes(i) ? toF32(v, temps) : v));
  try {
    if (!ew || !outH) return call(ins, attrs);
    // f16 result: compute into a fresh f32 tensor of the output's shape, then convert
    const { out, ...rest } = ew;
    const f32Attrs: ElementwiseAttrs = { ...rest, outDtype: 'float32' };
    const r = call(ins, f32Attrs as Kernels[K]['attrs']) as Storage;
    const rv: View = { storage: r, shape: ew.shape, strides: contiguousStrides(ew.shape), offset: 0, dtype: 'float32' };
    try {
      if (out) {
        castInto(out, rv);
        return undefined as Kernels[K]['out'];
      }
      return castView(rv, 'float16') as Kernels[K]['out'];
    } finally {
      r.release();
    }
  } finally {
    for (const t of temps) t.release();
  }
}

/**
 * An f32 copy of the storage range an f16 view reaches, addressed exactly as before (same strides,
 * the offset moved by the range's start): kernel attrs describe the operand's layout (matmul's
 * transposes and leading dims, broadcast strides), so the copy must keep it. Broadcast dims are not
 * materialised and a slice copies only its span.
 */
function toF32(v: View, temps: Storage[]): View {
  let lo = v.offset, hi = v.offset;
  for (let i = 0; i < v.shape.length; i++) {
    const d = v.shape[i]!, st = v.strides[i]!;
    if (d === 0) return { ...v, storage: keepEmpty(v, temps), offset: 0, dtype: 'float32' };
    if (st >= 0) hi += (d - 1) * st;
    else lo += (d - 1) * st;
  }
  const n = hi - lo + 1;
  const s = castView({ storage: v.storage, shape: [n], strides: [1], offset: lo, dtype: 'float16' }, 'float32');
  temps.push(s);
  return { storage: s, shape: v.shape, strides: v.strides, offset: v.offset - lo, dtype: 'float32' };
}

function keepEmpty(v: View, temps: Storage[]): Storage {
  const s = v.storage.backend.alloc('float32', 0);
  temps.push(s);
  return s;
}

/** The kernel on a view: a fresh contiguous storage of `dtype`. No autograd. */
export function castView(v: View, dtype: DType): Storage {
  const out = v.storage.backend.run('cast', [v], { dtype, shape: [...v.shape] });
  if (!out) throw new Error('cast: the kernel returned no output');
  return out;
}

/** Converts `src` into an existing view `out` (any strides; its dtype is the target). No autograd. */
export function castInto(out: View, src: View): void {
  out.storage.backend.run('cast', [src], { dtype: out.dtype, shape: [...out.shape], out });
}

