/**
 * Tensor bytes <-> typed arrays for safetensors. Decoding views (or upcasts) the little-endian bytes of
 * one tensor; encoding turns a typed array into those bytes, zero-copy when the array already has the
 * stored type and in bounded chunks when it needs converting. Assumes a little-endian host (every
 * platform WebGPU runs on).
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.js';
import { SAFETENSORS_ITEMSIZE, SafetensorsError, shapeSize, type SafetensorsDtype, type SafetensorsEntry } from './safetensors-format.js';

export type SafetensorsRawArray =
  | Float64Array | Float32Array | Uint16Array | BigInt64Array | BigUint64Array
  | Int32Array | Uint32Array | Int16Array | Int8Array | Uint8Array;

/**
 * 'raw' (default): the stored type (F16/BF16 as their Uint16 bit patterns, I64 as BigInt64Array, BOOL
 * as Uint8Array). 'float32': any dtype upcast to f32. 'int32': integer/BOOL dtypes, an error naming the
 * tensor and index when a value does not fit.
 */
export type SafetensorsReadAs = 'float32' | 'int32' | 'raw';

export interface SafetensorsReadOptions<A extends SafetensorsReadAs = SafetensorsReadAs> {
  as?: A;
}

/** The array type `read` returns for a given `as`. */
export type SafetensorsData<A extends SafetensorsReadAs> = A extends 'float32' ? Float32Array : A extends 'int32' ? Int32Array : SafetensorsRawArray;

export interface SafetensorsTensor<D = SafetensorsRawArray> {
  dtype: SafetensorsDtype;
  shape: number[];
  data: D;
}

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /**
   * The values, C-ordered. An array of the stored type is written as is (zero-copy); for F16/BF16 a
   * Uint16Array is taken as encoded bits. Anything else is converted: floats rounded to nearest even,
   * integers checked (a fraction or out-of-range value is an error), BOOL = value !== 0.
   */
  data: SafetensorsRawArray | readonly number[];
}

function rawView(dtype: SafetensorsDtype, buf: ArrayBuffer, off: number, n: number): SafetensorsRawArray {
  switch (dtype) {
    case 'F64': return new Float64Array(buf, off, n);
    case 'F32': return new Float32Array(buf, off, n);
    case 'F16': case 'BF16': case 'U16': return new Uint16Array(buf, off, n);
    case 'I64': return new BigInt64Array(buf, off, n);
    case 'U64': return new BigUint64Array(buf, off, n);
    case 'I32': return new Int32Array(buf, off, n);
    case 'U32': return new Uint32Array(buf, off, n);
    case 'I16': return new Int16Array(buf, off, n);
    case 'I8': return new Int8Array(buf, off, n);
    case 'U8': case 'BOOL': return new Uint8Array(buf, off, n);
  }
}

/** Values of 64-bit integer data as (lo, hi) 32-bit words, without a BigInt per element. */
function words(raw: BigInt64Array | BigUint64Array): Int32Array {
  return new Int32Array(raw.buffer, raw.byteOffset, raw.length * 2);
}

function toFloat32(entry: SafetensorsEntry, raw: SafetensorsRawArray, n: number): Float32Array {
  switch (entry.dtype) {
    case 'F32': return raw as Float32Array;
    case 'F16': return f16ToF32(raw as Uint16Array);
    case 'BF16': return bf16ToF32(raw as Uint16Array);
    case 'I64': case 'U64': {
      // hi · 2^32 + lo is exact below 2^53 (beyond, rounded twice: far outside f32's precision anyway)
      const w = words(raw as BigInt64Array);
      const unsigned = entry.dtype === 'U64';
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = (unsigned ? w[2 * i + 1]! >>> 0 : w[2 * i + 1]!) * 4294967296 + (w[2 * i]! >>> 0);
      return out;
    }
    default:
      return Float32Array.from(raw as Exclude<SafetensorsRawArray, BigInt64Array | BigUint64Array>);
  }
}

function toInt32(entry: SafetensorsEntry, raw: SafetensorsRawArray, n: number, source: string): Int32Array {
  const d = entry.dtype;
  const bad = (i: number): never => {
    throw new SafetensorsError(source, `tensor '${entry.name}': ${d} value ${String(raw[i])} at index ${i} does not fit in int32`);
  };
  if (d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16') throw new SafetensorsError(source, `tensor '${entry.name}' is ${d}, not an integer tensor (read it as float32)`);
  if (d === 'I32') return raw as Int32Array;
  const out = new Int32Array(n);
  if (d === 'I64' || d === 'U64') {
    const w = words(raw as BigInt64Array);
    for (let i = 0; i < n; i++) {
      const lo = w[2 * i]!, hi = w[2 * i + 1]!;
      // fits iff the high word is the sign extension of the low one (and, unsigned, that sign is +)
      if (hi !== lo >> 31 || (d === 'U64' && lo < 0)) bad(i);
      out[i] = lo;
    }
    return out;
  }
  if (d === 'U32') {
    const u = raw as Uint32Array;
    for (let i = 0; i < n; i++) {
      if (u[i]! > 0x7fffffff) bad(i);
      out[i] = u[i]!;
    }
    return out;
  }
  out.set(raw as Int16Array | Uint16Array | Int8Array | Uint8Array);
  return out;
}

/**
 * Decodes one tensor. `bytes` (entry.byteLength long) must belong to the caller alone: an aligned
 * buffer is viewed, not copied, so the result may share memory with it.
 */
export function decodeSafetensorsData<A extends SafetensorsReadAs = 'raw'>(
  entry: SafetensorsEntry,
  bytes: Uint8Array,
  as: A | undefined,
  source: string,
): SafetensorsTensor<SafetensorsData<A>> {
  const size = SAFETENSORS_ITEMSIZE[entry.dtype];
  const n = shapeSize(entry.shape);
  if (bytes.byteLength !== n * size) throw new SafetensorsError(source, `tensor '${entry.name}': got ${bytes.byteLength} bytes, expected ${n * size}`);
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const raw = rawView(entry.dtype, aligned.buffer as ArrayBuffer, aligned.byteOffset, n);
  const mode: SafetensorsReadAs = as ?? 'raw';
  const data = mode === 'raw' ? raw : mode === 'float32' ? toFloat32(entry, raw, n) : toInt32(entry, raw, n, source);
  return { dtype: entry.dtype, shape: [...entry.shape], data: data as SafetensorsData<A> };
}

// ---------------------------------------------------------------- encoding

/** Elements converted per chunk: bounds the extra memory of converting a huge tensor. */
const CHUNK = 1 << 20;

function isNative(dtype: SafetensorsDtype, d: TensorToWrite['data']): boolean {
  switch (dtype) {
    case 'F64': return d instanceof Float64Array;
    case 'F32': return d instanceof Float32Array;
    case 'F16': case 'BF16': case 'U16': return d instanceof Uint16Array;
    case 'I64': return d instanceof BigInt64Array;
    case 'U64': return d instanceof BigUint64Array;
    case 'I32': return d instanceof Int32Array;
    case 'U32': return d instanceof Uint32Array;
    case 'I16': return d instanceof Int16Array;
    case 'I8': return d instanceof Int8Array;
    case 'U8': case 'BOOL': return d instanceof Uint8Array;
  }
}

const INT_RANGE: Partial<Record<SafetensorsDtype, [new (n: number) => Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array, number, number]>> = {
  I32: [Int32Array, -0x80000000, 0x7fffffff],
  U32: [Uint32Array, 0, 0xffffffff],
  I16: [Int16Array, -0x8000, 0x7fff],
  U16: [Uint16Array, 0, 0xffff],
  I8: [Int8Array, -0x80, 0x7f],
  U8: [Uint8Array, 0, 0xff],
};

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function convertChunk(name: string, dtype: SafetensorsDtype, d: ArrayLike<number | bigint>, s: number, e: number): Uint8Array {
  const len = e - s;
  const bad = (i: number, why: string): never => {
    throw new Error(`safetensors: tensor '${name}': value ${String(d[i])} at index ${i} ${why} for ${dtype}`);
  };
  switch (dtype) {
    case 'F32': case 'F16': case 'BF16': {
      const f = new Float32Array(len);
      for (let i = s; i < e; i++) f[i - s] = Number(d[i]);
      return bytesOf(dtype === 'F32' ? f : dtype === 'F16' ? f32ToF16(f) : f32ToBf16(f));
    }
    case 'F64': {
      const f = new Float64Array(len);
      for (let i = s; i < e; i++) f[i - s] = Number(d[i]);
      return bytesOf(f);
    }
    case 'BOOL': {
      const b = new Uint8Array(len);
      for (let i = s; i < e; i++) b[i - s] = Number(d[i]) !== 0 ? 1 : 0;
      return b;
    }
    case 'I64': case 'U64': {
      const w = new Uint32Array(2 * len);
      const unsigned = dtype === 'U64';
      if (d instanceof Int32Array && !unsigned) {
        for (let i = s; i < e; i++) {
          w[2 * (i - s)] = d[i]!;
          w[2 * (i - s) + 1] = d[i]! >> 31;
        }
      } else if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
        const out = unsigned ? new BigUint64Array(w.buffer) : new BigInt64Array(w.buffer);
        const [lo, hi] = unsigned ? [0n, (1n << 64n) - 1n] : [-(1n << 63n), (1n << 63n) - 1n];
        for (let i = s; i < e; i++) {
          const v = d[i]!;
          if (v < lo || v > hi) bad(i, 'is out of range');
          out[i - s] = v;
        }
      } else {
        for (let i = s; i < e; i++) {
          const v = Number(d[i]);
          if (!Number.isSafeInteger(v)) bad(i, 'is not an exactly representable integer');
          if (unsigned && v < 0) bad(i, 'is out of range');
          const hi = Math.floor(v / 4294967296);
          w[2 * (i - s)] = v - hi * 4294967296;
          w[2 * (i - s) + 1] = hi >>> 0;
        }
      }
      return bytesOf(w);
    }
    default: {
      const [Ctor, min, max] = INT_RANGE[dtype]!;
      const out = new Ctor(len);
      for (let i = s; i < e; i++) {
        const v = Number(d[i]);
        if (!Number.isInteger(v)) bad(i, 'is not an integer');
        if (v < min || v > max) bad(i, 'is out of range');
        out[i - s] = v;
      }
      return bytesOf(out);
    }
  }
}

/** Checks that a tensor's data array matches its shape (before anything is written). */
export function checkTensorData(name: string, t: TensorToWrite): void {
  const n = shapeSize(t.shape);
  const d = t.data as { length?: unknown } | null | undefined;
  if (!d || typeof d.length !== 'number') throw new Error(`safetensors: tensor '${name}' has no data array`);
  if (d.length !== n) throw new Error(`safetensors: tensor '${name}' has ${d.length} values for shape [${t.shape.join(', ')}] (${n})`);
}

/** The bytes of one tensor, as one zero-copy view or as converted chunks. */
export function* encodeSafetensorsData(name: string, t: TensorToWrite): Generator<Uint8Array> {
  checkTensorData(name, t);
  const n = shapeSize(t.shape);
  const d = t.data;
  if (isNative(t.dtype, d)) {
    yield bytesOf(d as ArrayBufferView);
    return;
  }
  for (let s = 0; s < n; s += CHUNK) yield convertChunk(name, t.dtype, d as ArrayLike<number | bigint>, s, Math.min(n, s + CHUNK));
}
