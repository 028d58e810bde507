/**
 * Rasterises a sampled scene at any resolution. Each pixel is shaded once at its centre; edges
 * (leaf outline, veins, lesion borders) are antialiased analytically from their distance in
 * pixels, which keeps a 128x128 render to a few milliseconds.
 */
import type { LeafImage } from './labels.js';
import { ValueNoise } from './noise.js';
import { mix32 } from './prng.js';
import { bladeHalfWidth, type BgLeaf, type Leaf, type Lesion, type Scene } from './scene.js';

const clamp01 = (x: number): number => (x < 0 ? 0 : x > 1 ? 1 : x);
const smoothstep = (e0: number, e1: number, x: number): number => {
  const t = clamp01((x - e0) / (e1 - e0));
  return t * t * (3 - 2 * t);
};

/** Working colour, mutated in place to avoid allocating per pixel. */
interface Col { r: number; g: number; b: number }
const mixInto = (c: Col, r: number, g: number, b: number, t: number): void => {
  if (t <= 0) return;
  c.r += (r - c.r) * t; c.g += (g - c.g) * t; c.b += (b - c.b) * t;
};

/**
 * Coverage of a pixel by a line of width `w` (units) at distance `dist` (units) from its centre
 * line; `px` = pixels per unit. Lines thinner than a pixel fade instead of aliasing.
 */
function lineCoverage(dist: number, w: number, px: number): number {
  const half = (w * px) / 2;
  return Math.min(1, 2 * half) * clamp01(Math.max(half, 0.5) + 0.5 - dist * px);
}

/** Leaf-local coordinates of the last `leafGeometry` call. */
interface Geo { a: number; b: number; t: number; hw: number; d: number }

/**
 * Signed distance (units, negative inside) from (x, y) to the leaf outline, with serrations and
 * a gentle wobble; also fills `g` with the leaf coordinates of the point.
 */
function leafGeometry(leaf: Leaf, noise: ValueNoise, x: number, y: number, g: Geo): number {
  const dx = x - leaf.cx, dy = y - leaf.cy;
  const a = dx * leaf.cos + dy * leaf.sin;
  const L = leaf.length;
  const t = a / L + 0.5;
  const m = leaf.bend * L * ((2 * t - 1) ** 2 - 1);
  const b = -dx * leaf.sin + dy * leaf.cos - m;
  let hw = bladeHalfWidth(leaf, t);
  if (hw > 0) {
    const side = b >= 0 ? 0 : 1;
    // Teeth rise slowly towards the tip and drop sharply: a sawtooth along the margin.
    const ph = t * leaf.serrCount + leaf.serrPhase[side];
    const saw = ph - Math.floor(ph);
    const taper = smoothstep(0.03, 0.2, t) * (1 - smoothstep(0.85, 1, t));
    hw += L * leaf.serrAmp * (saw - 0.5) * taper;
    hw *= 1 + leaf.wobbleAmp * (noise.at(t * 4 + side * 31.7, 5.5) - 0.5) * 2;
    if (hw < 0) hw = 0;
  }
  g.a = a; g.b = b; g.t = t; g.hw = hw;
  g.d = Math.max(Math.abs(b) - hw, -a - L / 2, a - L / 2);
  return g.d;
}

function petioleDistance(leaf: Leaf, g: Geo): number {
  const L = leaf.length;
  const base = -L / 2;
  if (g.a > base + 0.02 * L || g.a < base - leaf.petiole * L) return Infinity;
  const w = L * 0.008 * (1 + 0.5 * (base - g.a) / (leaf.petiole * L));
  return Math.abs(g.b) - w;
}

// ------------------------------------------------------------------------------------ background

function lensShape(l: BgLeaf, x: number, y: number): number {
  const dx = x - l.x, dy = y - l.y;
  const u = (dx * l.cos + dy * l.sin) / l.len;
  const v = -dx * l.sin + dy * l.cos;
  const t = u + 0.5;
  if (t <= 0 || t >= 1) return Math.max(Math.abs(u) - 0.5, 0) * l.len + Math.abs(v);
  return Math.abs(v) - l.len * l.wid * Math.sin(Math.PI * t ** 0.85) ** 0.8;
}

function shadeBackground(s: Scene, noise: ValueNoise, x: number, y: number, minFeature: number, c: Col): void {
  const bg = s.background;
  let n: number;
  if (bg.kind === 'grass') {
    // Grass: strongly anisotropic noise, long along the blades.
    const u = x * bg.grainCos + y * bg.grainSin, v = -x * bg.grainSin + y * bg.grainCos;
    n = 0.55 * noise.fbm(u * 2.5 + 40, v * 28, 2, minFeature) + 0.45 * noise.fbm(x * bg.freq + 10, y * bg.freq, 2, minFeature);
  } else {
    n = noise.fbm(x * bg.freq + 40, y * bg.freq - 13, bg.kind === 'soil' ? 5 : 3, minFeature);
  }
  n = clamp01((n - 0.5) * 1.8 + 0.5);
  if (n < 0.5) {
    const t = n * 2;
    c.r = bg.dark[0] + (bg.mid[0] - bg.dark[0]) * t; c.g = bg.dark[1] + (bg.mid[1] - bg.dark[1]) * t; c.b = bg.dark[2] + (bg.mid[2] - bg.dark[2]) * t;
  } else {
    const t = (n - 0.5) * 2;
    c.r = bg.mid[0] + (bg.light[0] - bg.mid[0]) * t; c.g = bg.mid[1] + (bg.light[1] - bg.mid[1]) * t; c.b = bg.mid[2] + (bg.light[2] - bg.mid[2]) * t;
  }
  for (const st of bg.strokes) {
    const dx = st.x1 - st.x0, dy = st.y1 - st.y0;
    const tt = clamp01(((x - st.x0) * dx + (y - st.y0) * dy) / (dx * dx + dy * dy));
    const dist = Math.hypot(x - st.x0 - tt * dx, y - st.y0 - tt * dy);
    mixInto(c, st.color[0], st.color[1], st.color[2], 1 - smoothstep(st.w * 0.5, st.w * 0.5 + 0.012, dist));
  }
  for (const l of bg.leaves) {
    if (Math.abs(x - l.x) > l.len * 0.5 + l.soft || Math.abs(y - l.y) > l.len * 0.5 + l.soft) continue;
    const d = lensShape(l, x, y);
    if (d > l.soft) continue;
    const cov = 1 - smoothstep(-l.soft, l.soft, d);
    // Blurred leaves keep a hint of their own light gradient.
    const k = 1 + 0.25 * ((x - l.x) * l.sin - (y - l.y) * l.cos) / l.len;
    mixInto(c, l.color[0] * k, l.color[1] * k, l.color[2] * k, cov);
  }
  for (const sp of bg.spots) {
    const d = Math.hypot(x - sp.x, y - sp.y);
    if (d > sp.r * 1.6) continue;
    mixInto(c, sp.color[0], sp.color[1], sp.color[2], sp.strength * (1 - smoothstep(sp.r * 0.5, sp.r * 1.6, d)));
  }
}

// ------------------------------------------------------------------------------------------- leaf

function shadeLeaf(s: Scene, noise: ValueNoise, g: Geo, x: number, y: number, px: number, minFeature: number, c: Col): void {
  const leaf = s.leaf;
  const L = leaf.length;
  const t = g.t, ab = Math.abs(g.b);
  const across = g.hw > 0 ? Math.min(1, ab / g.hw) : 1;
  c.r = leaf.color[0]; c.g = leaf.color[1]; c.b = leaf.color[2];
  if (leaf.yellowing > 0) mixInto(c, 150, 150, 60, leaf.yellowing * smoothstep(0.4, 1, 1 - t));
  // Mottling and fine surface texture (the latter skipped when smaller than a pixel).
  const mott = noise.fbm(g.a * 5 / L + 3.1, g.b * 5 / L, 2, minFeature * 5 / L);
  const fine = 1 / L * 45 * minFeature < 1 ? noise.at(g.a * 45 / L + 7.7, g.b * 45 / L) - 0.5 : 0;
  let k = 0.9 + 0.2 * mott + 0.07 * fine;
  k *= 1 + leaf.fold * (g.b >= 0 ? 1 : -1) * Math.min(1, across * 4);
  k *= 1 - leaf.cup * across * across;
  c.r *= k; c.g *= k; c.b *= k;

  // Veins: a pale midrib tapering to the tip, and pinnate laterals curving towards the tip.
  const midW = L * (0.013 * (1 - t) + 0.003);
  let vein = 0.8 * lineCoverage(ab, midW, px);
  if (t > 0.03 && t < 0.95 && across < 0.93) {
    const side = g.b >= 0 ? 0 : 1;
    const w = ab / L;
    const u = g.a / L - leaf.veinSlope * w - leaf.veinCurve * w * w;
    const ph = u / leaf.veinSpacing + leaf.veinPhase[side];
    const f = ph - Math.round(ph);
    const slope = leaf.veinSlope + 2 * leaf.veinCurve * w;
    const dist = (Math.abs(f) * leaf.veinSpacing * L) / Math.sqrt(1 + slope * slope);
    const lw = L * 0.0055 * (1 - 0.6 * across);
    const fade = (1 - smoothstep(0.65, 0.93, across)) * smoothstep(midW * 0.5, midW * 1.5, ab);
    vein = Math.max(vein, 0.42 * fade * lineCoverage(dist, lw, px));
  }
  mixInto(c, leaf.veinColor[0] * k, leaf.veinColor[1] * k, leaf.veinColor[2] * k, vein);

  // A thin darker rim where the blade edge curls away from the light.
  const rim = 1 - smoothstep(-0.012 * L, -0.002 * L, g.d);
  const rk = 1 - 0.12 * (1 - rim);
  c.r *= rk; c.g *= rk; c.b *= rk;

  for (const les of s.lesions) shadeLesion(les, noise, g, px, minFeature, L, c);

  const sh = leaf.sheen;
  if (sh.strength > 0) {
    const d2 = ((x - sh.x) ** 2 + (y - sh.y) ** 2) / (sh.r * sh.r);
    if (d2 < 6) mixInto(c, 205, 222, 190, sh.strength * Math.exp(-d2) * 0.6);
  }
}

function shadeLesion(les: Lesion, noise: ValueNoise, g: Geo, px: number, minFeature: number, L: number, c: Col): void {
  const da = g.a - les.a, db = g.b - les.b;
  const reach = les.kind === 'rust' ? les.r * 2.3 : les.r * 1.6;
  if (Math.abs(da) > reach || Math.abs(db) > reach) return;
  const dist = Math.sqrt(da * da + db * db);
  if (dist > reach) return;
  const phi = Math.atan2(db, da);
  const rr = les.r * (1 + les.w3 * Math.sin(3 * phi + les.p3) + les.w5 * Math.sin(5 * phi + les.p5));
  const x = dist / rr;
  if (les.kind === 'rust') {
    // Yellow chlorotic halo, then the orange lesion with a darker, redder centre.
    mixInto(c, 212, 198, 74, 0.6 * (1 - smoothstep(0.95, 2.1, x)));
    const body = clamp01((1 - x) * rr * px + 0.5);
    if (body <= 0) return;
    const tone = les.tone;
    const outer: [number, number, number] = [230 - 12 * tone, 146 - 30 * tone, 40];
    const inner: [number, number, number] = [196 - 20 * tone, 78 - 10 * tone, 22];
    const m = smoothstep(0.25, 0.75, x);
    let r = inner[0] + (outer[0] - inner[0]) * m, gg = inner[1] + (outer[1] - inner[1]) * m, b = inner[2] + (outer[2] - inner[2]) * m;
    // Tiny dark pycnia near the centre, only where the render can resolve them.
    if (x < 0.55 && 0.004 * L > minFeature * 0.5) {
      const dots = noise.at(g.a / (0.004 * L) + 91.3, g.b / (0.004 * L) - 12.9);
      if (dots > 0.68) { r *= 0.6; gg *= 0.55; b *= 0.6; }
    }
    mixInto(c, r, gg, b, body);
  } else if (les.kind === 'scab') {
    // Irregular outline: the bump is thresholded against fractal noise. Olive-brown, velvety,
    // with a diffuse olive margin fading into the leaf.
    const bump = 1 - x * x;
    if (bump <= -0.5) return;
    const n = noise.fbm(g.a / (0.025 * L) + 200, g.b / (0.025 * L) - 50, 2, minFeature / (0.025 * L));
    const v = bump + 0.7 * (n - 0.5);
    mixInto(c, 118, 112, 52, 0.55 * smoothstep(-0.25, 0.35, v));
    const edge = Math.max(0.12, 1.5 / (px * les.r));
    const core = smoothstep(0.35 - edge, 0.35 + edge, v);
    if (core <= 0) return;
    const dark = clamp01(0.5 + 0.8 * (v - 0.35) + 0.4 * (les.tone - 0.5));
    const speck = 0.85 + 0.3 * noise.at(g.a / (0.006 * L) - 7.5, g.b / (0.006 * L) + 3.3);
    mixInto(c, (90 - 54 * dark) * speck, (80 - 48 * dark) * speck, (38 - 20 * dark) * speck, 0.95 * core);
  } else {
    // Necrotic spot: tan centre, purple-brown rim.
    const body = clamp01((1 - x) * rr * px + 0.5);
    mixInto(c, 96, 58, 52, 0.7 * (1 - smoothstep(1.0, 1.5, x)));
    mixInto(c, 150, 112, 72, body * smoothstep(1.0, 0.55, x));
  }
}

// ------------------------------------------------------------------------------------------ frame

/** Renders `scene` to a `width` x `height` RGB image. */
export function rasterize(scene: Scene, width: number, height: number): LeafImage {
  const data = new Uint8Array(width * height * 3);
  const unit = Math.min(width, height);
  const px = unit; // pixels per unit
  const minFeature = 2 / px; // finer detail than ~2 pixels is skipped (it would only alias)
  const noise = new ValueNoise(scene.noiseSeed);
  const leaf = scene.leaf;
  const g: Geo = { a: 0, b: 0, t: 0, hw: 0, d: 0 };
  const c: Col = { r: 0, g: 0, b: 0 };
  const lc: Col = { r: 0, g: 0, b: 0 };
  const sh = scene.shadow;
  const wb = scene.whiteBalance;
  let grain = scene.grainSeed;
  const stemR = leaf.color[0] * 1.35, stemG = leaf.color[1] * 1.15, stemB = leaf.color[2] * 1.0;
  for (let py = 0; py < height; py++) {
    const y = (py + 0.5 - height / 2) / unit;
    for (let pxi = 0; pxi < width; pxi++) {
      const x = (pxi + 0.5 - width / 2) / unit;
      shadeBackground(scene, noise, x, y, minFeature, c);
      // Soft cast shadow of the leaf on whatever lies behind it.
      const sd = leafGeometry(leaf, noise, x - sh.dx, y - sh.dy, g);
      if (sd < sh.soft) {
        const k = 1 - sh.alpha * (1 - smoothstep(-sh.soft, sh.soft, sd));
        c.r *= k; c.g *= k; c.b *= k;
      }
      const d = leafGeometry(leaf, noise, x, y, g);
      const stem = petioleDistance(leaf, g);
      if (stem < 1 / px) mixInto(c, stemR, stemG, stemB, clamp01(0.5 - stem * px));
      const cov = clamp01(0.5 - d * px);
      if (cov > 0) {
        shadeLeaf(scene, noise, g, x, y, px, minFeature, lc);
        mixInto(c, lc.r, lc.g, lc.b, cov);
      }
      // Whole-frame light falloff, vignette, exposure and white balance, then sensor noise.
      let k = scene.exposure * (1 + scene.light.dx * x * 2 + scene.light.dy * y * 2) * (1 - scene.vignette * (x * x + y * y));
      if (k < 0.2) k = 0.2;
      grain = mix32(grain + 0x9e3779b9);
      const nz = ((grain & 255) / 255 - 0.5) * 6;
      const i = (py * width + pxi) * 3;
      data[i] = clampByte(c.r * k * wb[0] + nz);
      data[i + 1] = clampByte(c.g * k * wb[1] + nz);
      data[i + 2] = clampByte(c.b * k * wb[2] + nz);
    }
  }
  return { width, height, channels: 3, data };
}

const clampByte = (v: number): number => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v));
