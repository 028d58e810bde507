/**
 * f16 / bf16 <-> f32 conversion of whole arrays. f32 → f16/bf16 rounds to nearest, ties to even, and
 * keeps signed zeros, subnormals, infinities and NaN (NaNs stay NaN: the quiet bit is forced so that a
 * payload living only in the dropped low bits cannot turn into an infinity). The reverse is exact.
 * Everything works on integer views of the arrays: no per-element allocation or boxing.
 */

/** f16 bits → f32 bits for all 65536 patterns (256 KB), built on first use: a lookup beats branching. */
let f16Table: Uint32Array | null = null;

function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // subnormal half (m · 2^-24): normalise so the leading 1 becomes the implicit bit of an f32
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

function table(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

function checkOut(what: string, src: { length: number }, out: { length: number }): void {
  if (out.length < src.length) throw new RangeError(`${what}: output holds ${out.length} values, input has ${src.length}`);
}

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Decodes IEEE binary16 bit patterns to float32 (exact). */
export function f16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  checkOut('f16ToF32', src, out);
  const t = table();
  const o = bitsOf(out);
  for (let i = 0; i < src.length; i++) o[i] = t[src[i]!]!;
  return out;
}

/** f32 bits → f16 bits, round to nearest even. */
function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00; // beyond 65520 even after rounding: infinity
  if (e <= 0) {
    // below 2^-25 (half the smallest subnormal) everything rounds to zero; exactly 2^-25 ties to 0 too
    if (e < -10) return sign;
    // subnormal half: value / 2^-24 = (1.mant) · 2^(e-1+10) → shift the 24-bit significand by 14-e
    const sig = mant | 0x800000;
    const shift = 14 - e;
    const halfway = 1 << (shift - 1);
    const rest = sig & ((1 << shift) - 1);
    let v = sig >>> shift;
    if (rest > halfway || (rest === halfway && (v & 1) !== 0)) v++; // a carry into 0x400 is the smallest normal: correct
    return sign | v;
  }
  let v = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (v & 1) !== 0)) v++; // a carry into the exponent is still correct (up to inf)
  return sign | v;
}

/** Encodes float32 values as IEEE binary16 bit patterns (round to nearest even). */
export function f32ToF16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkOut('f32ToF16', src, out);
  const s = bitsOf(src);
  for (let i = 0; i < s.length; i++) out[i] = f32BitsToF16Bits(s[i]!);
  return out;
}

/** Decodes bfloat16 bit patterns to float32 (exact: bf16 is the top half of an f32). */
export function bf16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  checkOut('bf16ToF32', src, out);
  const o = bitsOf(out);
  for (let i = 0; i < src.length; i++) o[i] = src[i]! << 16;
  return out;
}

/** Encodes float32 values as bfloat16 bit patterns (round to nearest even). */
export function f32ToBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkOut('f32ToBf16', src, out);
  const s = bitsOf(src);
  for (let i = 0; i < s.length; i++) {
    const x = s[i]!;
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = (x >>> 16) | 0x40; // NaN: keep it NaN (quiet)
    // adding 0x7fff plus the lowest kept bit rounds to nearest even; finite values stay < 2^32
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Single-value helpers (for tests and scalars). */
export function f16BitsToNumber(h: number): number {
  return bf32(table()[h & 0xffff]!);
}
export function numberToF16Bits(x: number): number {
  scratchF[0] = x;
  return f32BitsToF16Bits(scratchU[0]!);
}

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);
function bf32(bits: number): number {
  scratchU[0] = bits;
  return scratchF[0]!;
}
