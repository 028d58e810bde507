/** Seeded 2-D value noise and fractal sums of it, for textures and blurred backgrounds. */
import { Rng } from './prng.js';

export class ValueNoise {
  private readonly perm = new Uint8Array(512);
  private readonly values = new Float32Array(256);

  constructor(seed: number) {
    const rng = Rng.mulberry32(seed);
    for (let i = 0; i < 256; i++) { this.perm[i] = i; this.values[i] = rng.next(); }
    for (let i = 255; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      const t = this.perm[i]!; this.perm[i] = this.perm[j]!; this.perm[j] = t;
    }
    for (let i = 0; i < 256; i++) this.perm[256 + i] = this.perm[i]!;
  }

  /** Smoothly interpolated lattice noise in [0, 1], features about 1 unit apart. */
  at(x: number, y: number): number {
    const fx = Math.floor(x), fy = Math.floor(y);
    const ix = fx & 255, iy = fy & 255;
    let u = x - fx, v = y - fy;
    u = u * u * (3 - 2 * u);
    v = v * v * (3 - 2 * v);
    const p = this.perm, val = this.values;
    const a = p[ix]! + iy, b = p[ix + 1]! + iy;
    const v00 = val[p[a]!]!, v01 = val[p[a + 1]!]!, v10 = val[p[b]!]!, v11 = val[p[b + 1]!]!;
    const top = v00 + (v10 - v00) * u, bot = v01 + (v11 - v01) * u;
    return top + (bot - top) * v;
  }

  /**
   * Fractal sum in [0, 1] of `octaves` layers, each twice the frequency and half the amplitude.
   * Octaves finer than `minFeature` (in the same units as x, y: pass about 2 pixels) are skipped
   * so small renders do not alias.
   */
  fbm(x: number, y: number, octaves: number, minFeature = 0): number {
    let sum = 0, norm = 0, amp = 1, f = 1;
    for (let o = 0; o < octaves; o++) {
      if (o > 0 && 1 / f < minFeature) break;
      // Rotating each octave hides the lattice's axis alignment.
      const rx = x * 0.8 - y * 0.6, ry = x * 0.6 + y * 0.8;
      sum += amp * this.at(rx * f + o * 17.3, ry * f - o * 9.1);
      norm += amp;
      amp *= 0.5;
      f *= 2;
      x = rx; y = ry;
    }
    return sum / norm;
  }
}
