// Small seeded PRNG for the data pipeline. Streams are keyed by several integers
// (seed, epoch, position, ...) so that every sample's randomness is independent of
// the order in which concurrent work happens to finish: that is what makes
// prefetching and exact resumption deterministic.

/** Murmur3 finalizer: a cheap bijective 32-bit mix. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash a key of integers (each taken modulo 2^32) into 32 bits. */
export function hashKey(...key: number[]): number {
  let h = 0x9e3779b9;
  for (const k of key) {
    if (!Number.isFinite(k)) throw new Error(`rng key must be finite, got ${k}`);
    // Fold in both halves so keys beyond 2^32 (e.g. Date.now() seeds) still differ.
    const lo = k >>> 0;
    const hi = Math.floor(k / 4294967296) >>> 0;
    h = fmix32(h ^ lo) + 0x632be5ab;
    h = fmix32(h ^ hi);
  }
  return h >>> 0;
}

/** sfc32 generator (small, fast, passes PractRand to large sizes). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `new Rng(seed, epoch, index)` gives one independent stream per key. */
  constructor(...key: number[]) {
    const h = hashKey(...key);
    this.a = fmix32(h ^ 0x1b873593);
    this.b = fmix32(h ^ 0xcc9e2d51);
    this.c = fmix32(h ^ 0xe6546b64);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1) || !Number.isInteger(n)) throw new Error(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: unknown }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}
