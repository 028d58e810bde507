/** Element types. float32 and int32 compute; float16 is a storage type for weights (f32 accumulation, issue 16: ops/cast, README 'float16 weights'). */
export type DType = 'float32' | 'int32' | 'uint32' | 'float16';

export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : D extends 'uint32'
      ? Uint32Array
      : Uint16Array;

export type AnyTypedArray = Float32Array | Int32Array | Uint32Array | Uint16Array;

export function bytesPerElement(dtype: DType): number {
  return dtype === 'float16' ? 2 : 4;
}

export function allocTyped(dtype: DType, n: number): AnyTypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'int32': return new Int32Array(n);
    case 'uint32': return new Uint32Array(n);
    case 'float16': return new Uint16Array(n);
  }
}

export function dtypeOfArray(a: AnyTypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint32Array) return 'uint32';
  return 'float16';
}

/** WGSL scalar type for a dtype (storage element). */
export function wgslType(dtype: DType): string {
  switch (dtype) {
    case 'float32': return 'f32';
    case 'int32': return 'i32';
    case 'uint32': return 'u32';
    case 'float16': return 'f16';
  }
}
