// The one seeded host RNG of foliar (data order, splits, augmentations, procedural leaves, crops). It
// never touches Math.random; device randomness (noise, dropout) is @foliar/tensor's Philox generator.
//
// One class, `Rng`, with the methods every caller uses, over two 32-bit cores whose streams are
// frozen because seeded outputs depend on them bit for bit (cached experiment stages, splits.json,
// resumed runs, the tests' hashes in test/data/rng.test.ts):
//   new Rng(...key)        sfc32 keyed by several integers (seed, epoch, index, …): the classifier's
//                          splits, sampler, loader order and augmentations; the default for new code.
//   Rng.mulberry32(seed)   mulberry32: the procedural leaves (@foliar/classifier's synthetic data).
// Two older streams of the diffusion trainers live here as functions with their numbers unchanged:
// `permutation` (data order per epoch) and `hashStream` (the VAE trainer's crop offsets).

/** Murmur3 finalizer: a cheap bijective 32-bit mix. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash a key of integers (each taken modulo 2^32) into 32 bits (how `new Rng(...key)` is seeded). */
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

/** Avalanche mix of a 32-bit integer (the splitmix32 / murmur3 finaliser; the procedural leaves' seed mixing). */
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Combines integers (seed, index, stream tag, ...) into one well-mixed 32-bit seed (for `Rng.mulberry32`). */
export function hashSeed(...parts: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) h = mix32((h ^ mix32((p >>> 0) + 0x632be5ab)) + 0x9e3779b9);
  return h;
}

/** A seeded host RNG: sfc32 keyed by integers (`new Rng(seed, epoch, index)`), or mulberry32 (`Rng.mulberry32(seed)`). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `new Rng(seed, epoch, index)` gives one independent sfc32 stream per key. */
  constructor(...key: number[]) {
    const h = hashKey(...key);
    this.a = fmix32(h ^ 0x1b873593);
    this.b = fmix32(h ^ 0xcc9e2d51);
    this.c = fmix32(h ^ 0xe6546b64);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.sfc32();
  }

  /** A mulberry32 stream (32-bit state, period 2^32): the procedural leaves' generator, seeded by `hashSeed`. */
  static mulberry32(seed: number): Rng {
    return new Mulberry32(seed);
  }

  /** The next 32 random bits, as an unsigned integer. */
  nextUint32(): number {
    return this.sfc32();
  }

  private sfc32(): number {
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

  /** Uniform in [lo, hi) (the same as `uniform`). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1) || !Number.isInteger(n)) throw new Error(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi], both included. */
  intBetween(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** True with probability p (the same as `bernoulli`). */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal (Box-Muller, one value per two draws). */
  normal(): number {
    const u = 1 - this.next(), v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** One of `items`, uniformly. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
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

class Mulberry32 extends Rng {
  private state: number;

  constructor(seed: number) {
    super();
    this.state = seed >>> 0;
  }

  override nextUint32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

/** A permutation of [0, n) from a seed (the diffusion trainers' data order per epoch: the same on a resumed run). */
export function permutation(n: number, seed: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let s = (seed >>> 0) || 1;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Uniform numbers in [0, 1) from a hash of (seed, k): a short stream per example (the VAE trainer's crops). */
export function hashStream(seed: number, k: number): () => number {
  let h = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(k + 1, 0xc2b2ae35)) >>> 0;
  return () => {
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0x45d9f3b) >>> 0;
    return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
  };
}
