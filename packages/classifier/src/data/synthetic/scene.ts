/**
 * Scene sampling: every random decision for one synthetic leaf photo, in resolution-independent
 * units (the shorter image side spans 1 unit, origin at the image centre). Rendering the same
 * scene at 32 or 512 pixels therefore shows the same picture.
 */
import { LEAF_CLASSES, type LeafLabel } from './labels.js';
import { hashSeed, Rng } from './prng.js';

export type Rgb = [number, number, number];

/** One out-of-focus shape behind the main leaf (another leaf, seen blurred). */
export interface BgLeaf { x: number; y: number; cos: number; sin: number; len: number; wid: number; soft: number; color: Rgb }
export interface BgSpot { x: number; y: number; r: number; color: Rgb; strength: number }
export interface BgStroke { x0: number; y0: number; x1: number; y1: number; w: number; color: Rgb }

export interface Background {
  kind: 'foliage' | 'grass' | 'soil';
  dark: Rgb;
  mid: Rgb;
  light: Rgb;
  /** Spatial frequency of the base mottling (cycles per unit). */
  freq: number;
  /** Grass blades run along this direction. */
  grainCos: number;
  grainSin: number;
  leaves: BgLeaf[];
  spots: BgSpot[];
  strokes: BgStroke[];
}

export interface Leaf {
  cx: number; cy: number;
  /** Direction from base to tip. */
  cos: number; sin: number;
  length: number;
  /** Largest half-width as a fraction of the length. */
  halfWidth: number;
  /** Exponent moving the widest point towards the base (< 1) and shaping the outline. */
  shapeP: number; shapeQ: number;
  /** Midrib curvature (fraction of the length the tip and base are offset sideways). */
  bend: number;
  serrCount: number; serrAmp: number; serrPhase: [number, number];
  wobbleAmp: number;
  color: Rgb;
  veinColor: Rgb;
  /** One half of the blade tilts towards the light: brightness gain on the +b side (negative: -b side). */
  fold: number;
  /** Blade curvature across the midrib: darkening towards the margin. */
  cup: number;
  veinSpacing: number;
  /** Lateral veins run forward by `veinSlope` units of length per unit of width, curving by `veinCurve`. */
  veinSlope: number; veinCurve: number;
  veinPhase: [number, number];
  petiole: number;
  /** A soft specular sheen, in image units. */
  sheen: { x: number; y: number; r: number; strength: number };
  /** Yellowing towards one end (senescence), 0 for none. */
  yellowing: number;
}

/** A disease mark in leaf coordinates: `a` along the midrib from the centre, `b` across it. */
export interface Lesion {
  kind: 'rust' | 'scab' | 'spot';
  a: number; b: number; r: number;
  /** Outline irregularity: amplitudes and phases of the 3rd and 5th angular harmonics. */
  w3: number; p3: number; w5: number; p5: number;
  /** Per-lesion colour variation in [0, 1]. */
  tone: number;
}

export interface Scene {
  background: Background;
  leaf: Leaf;
  lesions: Lesion[];
  /** Directional light gradient over the whole frame: brightness gain per unit along (dx, dy). */
  light: { dx: number; dy: number };
  shadow: { dx: number; dy: number; alpha: number; soft: number };
  exposure: number;
  whiteBalance: Rgb;
  vignette: number;
  /** Seeds of the noise fields (texture, scab outline) and per-pixel sensor noise. */
  noiseSeed: number;
  grainSeed: number;
}

const clamp01 = (x: number): number => (x < 0 ? 0 : x > 1 ? 1 : x);

/** Leaf outline half-width (units) at fraction t in [0, 1] from base to tip, before serration. */
export function bladeHalfWidth(leaf: Leaf, t: number): number {
  if (t <= 0 || t >= 1) return 0;
  const s = Math.sin(Math.PI * t ** leaf.shapeP);
  return leaf.length * leaf.halfWidth * s ** leaf.shapeQ;
}

function jitter(rng: Rng, c: Rgb, amount: number): Rgb {
  const k = 1 + amount * rng.normal() * 0.5;
  return [c[0] * k * (1 + 0.05 * rng.normal()), c[1] * k, c[2] * k * (1 + 0.08 * rng.normal())];
}

function sampleBackground(rng: Rng, aspect: number): Background {
  const u = rng.next();
  const kind: Background['kind'] = u < 0.82 ? 'foliage' : u < 0.92 ? 'grass' : 'soil';
  const grain = rng.range(0, Math.PI);
  const bg: Background = {
    kind,
    dark: [28, 46, 20], mid: [72, 104, 44], light: [150, 168, 96],
    freq: rng.range(1.6, 3.2),
    grainCos: Math.cos(grain), grainSin: Math.sin(grain),
    leaves: [], spots: [], strokes: [],
  };
  const ext = 0.5 * Math.max(aspect, 1 / aspect) + 0.1;
  if (kind === 'foliage') {
    // Canopy: a dark, shadowy base with many overlapping out-of-focus leaves over it.
    bg.dark = jitter(rng, [22, 36, 16], 0.3);
    bg.mid = jitter(rng, [52, 78, 34], 0.25);
    bg.light = jitter(rng, [104, 128, 66], 0.2);
    const n = rng.intBetween(10, 18);
    for (let i = 0; i < n; i++) {
      const ang = rng.range(0, 2 * Math.PI);
      const shade = rng.next();
      const base: Rgb = shade < 0.3 ? [42, 66, 30] : shade < 0.75 ? [82, 114, 56] : shade < 0.93 ? [126, 150, 82] : [160, 176, 110];
      bg.leaves.push({
        x: rng.range(-ext, ext), y: rng.range(-ext, ext), cos: Math.cos(ang), sin: Math.sin(ang),
        len: rng.range(0.3, 0.75), wid: rng.range(0.22, 0.34), soft: rng.chance(0.35) ? rng.range(0.004, 0.012) : rng.range(0.015, 0.045),
        color: jitter(rng, base, 0.3),
      });
    }
    const spots = rng.chance(0.6) ? rng.intBetween(1, 5) : 0;
    for (let i = 0; i < spots; i++) {
      const sky = rng.chance(0.6);
      bg.spots.push({
        x: rng.range(-ext, ext), y: rng.range(-ext, ext), r: rng.range(0.015, 0.07),
        color: sky ? [214, 226, 226] : [190, 204, 128], strength: rng.range(0.5, 0.95),
      });
    }
    const strokes = rng.chance(0.5) ? rng.intBetween(1, 3) : 0;
    for (let i = 0; i < strokes; i++) {
      const a = rng.range(0, Math.PI), x = rng.range(-0.5, 0.5), y = rng.range(-0.5, 0.5), l = rng.range(0.4, 1.2);
      bg.strokes.push({
        x0: x - Math.cos(a) * l / 2, y0: y - Math.sin(a) * l / 2, x1: x + Math.cos(a) * l / 2, y1: y + Math.sin(a) * l / 2,
        w: rng.range(0.006, 0.02), color: jitter(rng, [86, 70, 52], 0.25),
      });
    }
  } else if (kind === 'grass') {
    bg.dark = jitter(rng, [40, 62, 24], 0.25);
    bg.mid = jitter(rng, [92, 124, 50], 0.2);
    bg.light = jitter(rng, [168, 176, 102], 0.2);
  } else {
    bg.dark = jitter(rng, [70, 54, 38], 0.25);
    bg.mid = jitter(rng, [122, 96, 70], 0.2);
    bg.light = jitter(rng, [176, 152, 122], 0.15);
    const pebbles = rng.intBetween(4, 14);
    for (let i = 0; i < pebbles; i++) {
      bg.spots.push({ x: rng.range(-ext, ext), y: rng.range(-ext, ext), r: rng.range(0.01, 0.04), color: jitter(rng, [160, 150, 135], 0.2), strength: 0.8 });
    }
    if (rng.chance(0.6)) {
      // A few fallen leaves on the soil.
      const n = rng.intBetween(1, 3);
      for (let i = 0; i < n; i++) {
        const ang = rng.range(0, 2 * Math.PI);
        bg.leaves.push({
          x: rng.range(-ext, ext), y: rng.range(-ext, ext), cos: Math.cos(ang), sin: Math.sin(ang),
          len: rng.range(0.3, 0.6), wid: rng.range(0.22, 0.3), soft: rng.range(0.01, 0.03), color: jitter(rng, [96, 110, 52], 0.3),
        });
      }
    }
  }
  return bg;
}

function sampleLeaf(rng: Rng): Leaf {
  const ang = rng.range(0, 2 * Math.PI);
  const length = rng.range(0.76, 1.06);
  const hue = rng.next();
  // Apple leaves range from yellow-green to deep blue-green; vary lightness independently.
  let green: Rgb = [62 + 36 * hue, 104 + 24 * hue, 48 + 14 * (1 - hue)];
  // Some leaves show their paler, greyer underside.
  if (rng.chance(0.18)) green = [green[0] * 0.5 + 62, green[1] * 0.5 + 74, green[2] * 0.5 + 56];
  const light = rng.range(0.8, 1.2);
  const sheenAng = rng.range(0, 2 * Math.PI), sheenDist = rng.range(0, 0.25);
  return {
    cx: rng.normal() * 0.05, cy: rng.normal() * 0.05,
    cos: Math.cos(ang), sin: Math.sin(ang),
    length,
    halfWidth: rng.range(0.28, 0.37),
    shapeP: rng.range(0.7, 0.88), shapeQ: rng.range(0.65, 0.9),
    bend: rng.normal() * 0.05,
    serrCount: rng.range(26, 40), serrAmp: rng.range(0.006, 0.012),
    serrPhase: [rng.next(), rng.next()],
    wobbleAmp: rng.range(0.0, 0.05),
    color: [green[0] * light, green[1] * light, green[2] * light],
    veinColor: [168 + rng.range(-15, 15), 184 + rng.range(-15, 15), 118 + rng.range(-20, 20)],
    fold: rng.range(-0.18, 0.18),
    cup: rng.range(-0.1, 0.22),
    veinSpacing: rng.range(0.085, 0.115),
    veinSlope: rng.range(0.75, 1.15), veinCurve: rng.range(0.8, 2.2),
    veinPhase: [rng.next(), rng.next()],
    petiole: rng.range(0.06, 0.14),
    sheen: { x: Math.cos(sheenAng) * sheenDist, y: Math.sin(sheenAng) * sheenDist, r: rng.range(0.12, 0.3), strength: rng.chance(0.6) ? rng.range(0.15, 0.5) : 0 },
    yellowing: rng.chance(0.25) ? rng.range(0.1, 0.35) : 0,
  };
}

/** A point on the blade, away from the margin: fraction t along, fraction s across (|s| < 1). */
function placeOnBlade(rng: Rng, leaf: Leaf, tLo = 0.08, tHi = 0.92, sMax = 0.85): { a: number; b: number } {
  const t = rng.range(tLo, tHi);
  const s = rng.range(-sMax, sMax);
  return { a: (t - 0.5) * leaf.length, b: s * bladeHalfWidth(leaf, t) };
}

function lesionShape(rng: Rng, irregular: number): Pick<Lesion, 'w3' | 'p3' | 'w5' | 'p5' | 'tone'> {
  return {
    w3: rng.range(0, irregular), p3: rng.range(0, 2 * Math.PI),
    w5: rng.range(0, irregular * 0.6), p5: rng.range(0, 2 * Math.PI), tone: rng.next(),
  };
}

function addRust(rng: Rng, leaf: Leaf, out: Lesion[], count: number): void {
  const L = leaf.length;
  let placed = 0;
  for (let tries = 0; placed < count && tries < count * 8; tries++) {
    const big = rng.chance(0.3);
    const r = L * (big ? rng.range(0.028, 0.048) : rng.range(0.012, 0.03));
    const p = placeOnBlade(rng, leaf);
    // Keep spots from merging into one blob: rust lesions are distinct and round.
    if (out.some((l) => l.kind === 'rust' && Math.hypot(l.a - p.a, l.b - p.b) < (l.r + r) * 1.6)) continue;
    out.push({ kind: 'rust', ...p, r, ...lesionShape(rng, 0.12) });
    placed++;
  }
}

function addScab(rng: Rng, leaf: Leaf, out: Lesion[], patches: number): void {
  const L = leaf.length;
  for (let i = 0; i < patches; i++) {
    // A patch is a cluster of overlapping blobs, so outlines come out irregular and coalescing.
    const c = placeOnBlade(rng, leaf, 0.1, 0.9, 0.75);
    const size = L * rng.range(0.025, 0.065);
    const blobs = rng.intBetween(1, 4);
    for (let k = 0; k < blobs; k++) {
      out.push({
        kind: 'scab', a: c.a + rng.normal() * size * 0.7, b: c.b + rng.normal() * size * 0.7,
        r: size * rng.range(0.45, 1.0), ...lesionShape(rng, 0.3),
      });
    }
  }
}

function addSpots(rng: Rng, leaf: Leaf, out: Lesion[], count: number): void {
  for (let i = 0; i < count; i++) {
    out.push({ kind: 'spot', ...placeOnBlade(rng, leaf), r: leaf.length * rng.range(0.01, 0.022), ...lesionShape(rng, 0.15) });
  }
}

/** Samples the scene for (label, seed). The leaf and background depend on the seed only. */
export function sampleScene(label: LeafLabel, seed: number, aspect: number): Scene {
  const rng = Rng.mulberry32(hashSeed(seed, 0x5ce4e));
  const background = sampleBackground(rng, aspect);
  const leaf = sampleLeaf(rng);
  const lightAng = rng.range(0, 2 * Math.PI), lightAmt = rng.range(0.15, 0.5);
  const shadowAng = rng.range(0, 2 * Math.PI), shadowDist = rng.range(0.015, 0.04);
  const scene: Scene = {
    background, leaf, lesions: [],
    light: { dx: Math.cos(lightAng) * lightAmt, dy: Math.sin(lightAng) * lightAmt },
    shadow: { dx: Math.cos(shadowAng) * shadowDist, dy: Math.sin(shadowAng) * shadowDist, alpha: rng.range(0.2, 0.45), soft: rng.range(0.015, 0.04) },
    exposure: rng.range(0.88, 1.12),
    whiteBalance: [1 + 0.05 * rng.normal(), 1, 1 + 0.06 * rng.normal()],
    vignette: rng.range(0, 0.35),
    noiseSeed: hashSeed(seed, 0x7e47),
    grainSeed: hashSeed(seed, 0x96a1),
  };
  const d = Rng.mulberry32(hashSeed(seed, 0xd15ea5e, LEAF_CLASSES.indexOf(label)));
  switch (label) {
    case 'healthy':
      break;
    case 'rust':
      addRust(d, leaf, scene.lesions, d.intBetween(3, 12));
      break;
    case 'scab':
      addScab(d, leaf, scene.lesions, d.intBetween(3, 9));
      break;
    case 'multiple_diseases':
      addScab(d, leaf, scene.lesions, d.intBetween(2, 5));
      addRust(d, leaf, scene.lesions, d.intBetween(2, 7));
      if (d.chance(0.5)) addSpots(d, leaf, scene.lesions, d.intBetween(2, 6));
      break;
  }
  leaf.yellowing = clamp01(leaf.yellowing);
  return scene;
}
