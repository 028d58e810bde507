/**
 * The golden fixtures' portable "hash init" (golden/README.md): weights reproducible bit-exactly
 * without storing them. u_i = lowbias32((i*0x9E3779B1 + fnv1a32(key)) mod 2^32) / 2^32,
 * value = float32(a + (2u-1)*c).
 */
export function fnv1a32(key: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(key)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

export function lowbias32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

export function hashInit(key: string, n: number, a: number, c: number): Float32Array {
  const out = new Float32Array(n);
  const h = fnv1a32(key);
  for (let i = 0; i < n; i++) {
    const u = lowbias32((Math.imul(i, 0x9e3779b1) + h) >>> 0) / 4294967296;
    out[i] = a + (2 * u - 1) * c;
  }
  return out;
}

export interface WeightsIndex {
  keys: Record<string, { shape: number[]; dtype: string; rule: { a: number; c: number } | null; first4?: number[] }>;
}

/** Host state dict from a weights index; checks each tensor's first values against the index. */
export function stateFromIndex(idx: WeightsIndex): Map<string, { shape: number[]; data: Float32Array | Int32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>();
  for (const [key, e] of Object.entries(idx.keys)) {
    const n = e.shape.reduce((x, y) => x * y, 1);
    if (!e.rule) {
      out.set(key, { shape: e.shape, data: new Int32Array(Math.max(n, 1)) });
      continue;
    }
    const data = hashInit(key, n, e.rule.a, e.rule.c);
    e.first4?.forEach((v, i) => {
      if (Math.fround(v) !== data[i]) throw new Error(`hash init of '${key}' disagrees with the index at ${i}: ${data[i]} vs ${v}`);
    });
    out.set(key, { shape: e.shape, data });
  }
  return out;
}
