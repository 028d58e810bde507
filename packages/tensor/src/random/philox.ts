/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), implemented with the
 * same 32-bit integer arithmetic in JS and WGSL so both backends produce the same bits for the same
 * (seed, counter). Element i of a request uses block `counter + floor(i / 4)`, lane `i % 4`.
 */
import type { RandomAttrs } from '../backends/kernel-attrs.js';

const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

function mulhi(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, m1 = ah * bl, m2 = al * bh, hh = ah * bh;
  const t = (ll >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  return (hh + (m1 >>> 16) + (m2 >>> 16) + (t >>> 16)) >>> 0;
}

export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0, n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

const TWO_NEG24 = 1 / 16777216;

/** Fills `out` as the WebGPU kernel does (CPU reference). */
export function philoxFill(out: Float32Array | Uint32Array, a: RandomAttrs): void {
  const block = new Uint32Array(4);
  const cLo = a.counter % 0x100000000, cHi = Math.floor(a.counter / 0x100000000);
  for (let i = 0; i < a.n; i += 4) {
    const b = i / 4;
    const lo = (cLo + b) >>> 0;
    const hi = (cHi + Math.floor((cLo + b) / 0x100000000)) >>> 0;
    philox4x32(lo, hi, 0, 0, a.seedLo >>> 0, a.seedHi >>> 0, block);
    for (let j = 0; j < 4 && i + j < a.n; j++) {
      if (a.dist === 'bits') out[i + j] = block[j]!;
      else if (a.dist === 'uniform') out[i + j] = a.p0 + (a.p1 - a.p0) * ((block[j]! >>> 8) * TWO_NEG24);
      else {
        const pair = j & 2;
        const u1 = ((block[pair]! >>> 8) + 1) * TWO_NEG24;
        const u2 = (block[pair + 1]! >>> 8) * TWO_NEG24;
        const rad = Math.sqrt(-2 * Math.log(u1));
        const th = 2 * Math.PI * u2;
        const z = (j & 1) === 0 ? rad * Math.cos(th) : rad * Math.sin(th);
        out[i + j] = a.p0 + a.p1 * z;
      }
    }
  }
}

export const WGSL_PHILOX = /* wgsl */ `
fn mulhi32(a: u32, b: u32) -> u32 {
  let al = a & 0xffffu; let ah = a >> 16u; let bl = b & 0xffffu; let bh = b >> 16u;
  let ll = al * bl; let m1 = ah * bl; let m2 = al * bh; let hh = ah * bh;
  let t = (ll >> 16u) + (m1 & 0xffffu) + (m2 & 0xffffu);
  return hh + (m1 >> 16u) + (m2 >> 16u) + (t >> 16u);
}
fn philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = ctr; var k = key;
  for (var r = 0u; r < 10u; r++) {
    let hi0 = mulhi32(0xd2511f53u, c.x); let lo0 = 0xd2511f53u * c.x;
    let hi1 = mulhi32(0xcd9e8d57u, c.z); let lo1 = 0xcd9e8d57u * c.z;
    c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k = k + vec2<u32>(0x9e3779b9u, 0xbb67ae85u);
  }
  return c;
}
`;
