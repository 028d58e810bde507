// cast kernel (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { contiguousStrides, numel } from '../../shape.js';
import { CpuBackend, dataOf, forEachIndex } from '../../backends/cpu/cpu-backend.js';
import { f16BitsToNumber, numberToF16Bits, f16ToF32, f32ToF16 } from '../../io/half.js';

export const cast: KernelFn<CpuBackend, 'cast'> = (be, inputs, attrs) => {
  const src = inputs[0]!;
  const n = numel(attrs.shape);
  const out: View = attrs.out ?? { storage: be.alloc(attrs.dtype, n), shape: attrs.shape, strides: contiguousStrides(attrs.shape), offset: 0, dtype: attrs.dtype };
  const s = dataOf(src), o = dataOf(out);
  const fromH = src.dtype === 'float16', toH = out.dtype === 'float16';
  const dense = (v: View): boolean => {
    const st = contiguousStrides(v.shape);
    return v.shape.every((d, i) => d === 1 || v.strides[i] === st[i]);
  };
  if (n > 0 && dense(src) && dense(out) && fromH !== toH) {
    // whole-array conversions (Module.to, loading): the table-driven converters of io/half.ts
    if (fromH) f16ToF32((s as Uint16Array).subarray(src.offset, src.offset + n), (o as Float32Array).subarray(out.offset, out.offset + n));
    else f32ToF16((s as Float32Array).subarray(src.offset, src.offset + n), (o as Uint16Array).subarray(out.offset, out.offset + n));
  } else {
    forEachIndex(attrs.shape, [src.strides, out.strides], [src.offset, out.offset], (_i, off) => {
      const raw = s[off[0]!]!;
      const v = fromH ? f16BitsToNumber(raw) : raw;
      o[off[1]!] = toH ? numberToF16Bits(v) : v;
    });
  }
  return attrs.out ? undefined : out.storage;
};
