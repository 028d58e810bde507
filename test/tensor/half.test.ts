/**
 * f16 / bf16 conversions against independent truth: hand-checked bit patterns, a closed-form decoder
 * for all 65536 halves, and a brute-force "nearest representable, ties to even" search for encoding.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, f16BitsToNumber, numberToF16Bits } from '@foliar/tensor';

const hex = (xs: ArrayLike<number>) => Array.from(xs, (x) => `0x${x.toString(16).padStart(4, '0')}`);
const toF16 = (xs: number[]) => hex(f32ToF16(Float32Array.from(xs)));
const toBf16 = (xs: number[]) => hex(f32ToBf16(Float32Array.from(xs)));
const fromBits = (bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);
const bitsOfF32 = (xs: Float32Array) => Array.from(new Uint32Array(xs.buffer, xs.byteOffset, xs.length));

/** IEEE binary16 value of a bit pattern, by the definition (not by bit manipulation). */
function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

test('f32 -> f16 on known bit patterns', () => {
  assert.equal(toF16([1, -2, 0.5, 65504, -65504]), ['0x3c00', '0xc000', '0x3800', '0x7bff', '0xfbff']);
  assert.equal(toF16([0, -0]), ['0x0000', '0x8000'], 'signed zeros');
  assert.equal(toF16([Infinity, -Infinity]), ['0x7c00', '0xfc00']);
  assert.equal(toF16([2 ** -24, -(2 ** -24)]), ['0x0001', '0x8001'], 'smallest subnormal');
  assert.equal(toF16([1023 * 2 ** -24, 2 ** -14]), ['0x03ff', '0x0400'], 'largest subnormal, smallest normal');
  assert.equal(toF16([0.1, 1 / 3]), ['0x2e66', '0x3555'], '0.1 and 1/3 round to nearest');
  assert.equal(toF16([65519.99, 65520, 1e6]), ['0x7bff', '0x7c00', '0x7c00'], 'overflow rounds to infinity at 65520');
  assert.equal(toF16([1 + 2 ** -11, 1 + 3 * 2 ** -11]), ['0x3c00', '0x3c02'], 'ties to even in the normal range');
  assert.equal(toF16([2 ** -25, 3 * 2 ** -25]), ['0x0000', '0x0002'], 'ties to even in the subnormal range');
  assert.equal(toF16([2 ** -25 * 1.0000001, 2 ** -26, 1e-30]), ['0x0001', '0x0000', '0x0000'], 'underflow');
  assert.equal(toF16([(2 ** -14) * (1 - 2 ** -12)]), ['0x0400'], 'rounding up out of the subnormals');
  const nan = f32ToF16(fromBits([0x7fc00000, 0xffc00000, 0x7f800001]));
  for (const h of nan) assert.ok((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0, `NaN stays NaN (0x${h.toString(16)})`);
  assert.is(nan[1]! & 0x8000, 0x8000, 'NaN sign kept');
  assert.is(numberToF16Bits(0.1), 0x2e66);
});

test('f16 -> f32 is exact for all 65536 bit patterns and round-trips', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = f16ToF32(all);
  for (let h = 0; h < 65536; h++) {
    const want = f16Value(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(f[h]!), `0x${h.toString(16)} is NaN`);
    else if (f[h] !== want || 1 / f[h]! !== 1 / want) assert.unreachable(`0x${h.toString(16)}: got ${f[h]}, want ${want}`);
  }
  const back = f32ToF16(f);
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(f[h]!)) continue;
    if (back[h] !== h) assert.unreachable(`round trip of 0x${h.toString(16)} gave 0x${back[h]!.toString(16)}`);
  }
  assert.is(f16BitsToNumber(0x3c00), 1);
  assert.equal(Array.from(f16ToF32(Uint16Array.from([0x0001, 0x8000]))), [2 ** -24, -0]);
});

test('f32 -> f16 picks the nearest half (ties to even) for random and midpoint inputs', () => {
  // all non-negative finite halves in increasing order (bit order = value order for positive halves)
  const halves = Float64Array.from({ length: 0x7c00 }, (_, h) => f16Value(h));
  const nearest = (x: number): number => {
    const a = Math.abs(x);
    if (a >= 65520) return (x < 0 ? 0x8000 : 0) | 0x7c00; // halfway between 65504 and 2^16: rounds to inf
    let lo = 0, hi = halves.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (halves[mid]! <= a) lo = mid;
      else hi = mid;
    }
    const dl = a - halves[lo]!, dh = halves[hi]! - a;
    const h = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
    return (x < 0 || Object.is(x, -0) ? 0x8000 : 0) | h;
  };
  const xs: number[] = [];
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let i = 0; i < 50000; i++) xs.push((rand() < 0.5 ? -1 : 1) * 2 ** (rand() * 44 - 28) * (1 + rand()));
  for (let h = 0; h < 0x7bff; h += 7) {
    const m = (halves[h]! + halves[h + 1]!) / 2; // exact in f32 (12 significant bits)
    xs.push(m, -m, Math.fround(m * (1 + 2 ** -23)), Math.fround(m * (1 - 2 ** -23)));
  }
  const src = Float32Array.from(xs);
  const got = f32ToF16(src);
  for (let i = 0; i < src.length; i++) {
    const want = nearest(src[i]!);
    if (got[i] !== want) assert.unreachable(`${src[i]}: got 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`);
  }
});

test('bf16 conversions: known patterns, specials, and nearest-even on random inputs', () => {
  assert.equal(toBf16([1, -3, 0, -0]), ['0x3f80', '0xc040', '0x0000', '0x8000']);
  assert.equal(toBf16([1 + 2 ** -8, 1 + 3 * 2 ** -8]), ['0x3f80', '0x3f82'], 'ties to even');
  assert.equal(toBf16([1 + 2 ** -8 + 2 ** -20]), ['0x3f81'], 'just above a tie rounds up');
  assert.equal(toBf16([Infinity, -Infinity, 3.4028234663852886e38]), ['0x7f80', '0xff80', '0x7f80'], 'f32 max rounds to infinity');
  assert.equal(toBf16([2 ** -133]), ['0x0001'], 'subnormals are kept');
  assert.equal(hex(f32ToBf16(fromBits([0x7f800001, 0xffc00000]))), ['0x7fc0', '0xffc0'], 'NaN stays NaN (quiet)');
  assert.equal(Array.from(bf16ToF32(Uint16Array.from([0x3f80, 0xc040, 0x0001, 0x8000]))), [1, -3, 2 ** -133, -0]);
  let seed = 99;
  const rand32 = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
  const bits: number[] = [];
  for (let i = 0; i < 50000; i++) {
    const b = rand32();
    if ((b & 0x7f800000) !== 0x7f800000) bits.push(b);
  }
  const src = fromBits(bits);
  const got = f32ToBf16(src);
  const back = bf16ToF32(got);
  for (let i = 0; i < src.length; i++) {
    const x = src[i]!;
    const down = fromBits([bits[i]! & 0xffff0000])[0]!;
    const up = fromBits([(bits[i]! & 0xffff0000) + 0x10000])[0]!; // next bf16 away from zero (may be inf)
    // for the rounding distance, infinity sits where the next binade would start (2^128)
    const upDist = Number.isFinite(up) ? up : Math.sign(x) * 2 ** 128;
    const dd = Math.abs(x - down), du = Math.abs(upDist - x);
    const want = dd < du ? down : du < dd ? up : ((bits[i]! >>> 16) & 1) === 0 ? down : up;
    if (!Object.is(back[i], want)) assert.unreachable(`${x} (0x${bits[i]!.toString(16)}): got ${back[i]}, want ${want}`);
  }
  assert.equal(bitsOfF32(bf16ToF32(Uint16Array.from([0x7f80]))), [0x7f800000]);
});

test('output arrays that are too short are refused', () => {
  assert.throws(() => f32ToF16(new Float32Array(4), new Uint16Array(3)), /f32ToF16: output holds 3 values, input has 4/);
  assert.throws(() => bf16ToF32(new Uint16Array(2), new Float32Array(1)), /bf16ToF32/);
});

test.run();
