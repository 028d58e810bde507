/** Antialiased shape drawing: polylines and discs, rendered through a coverage mask. */
import { blendPixel, type Color, type RgbImage } from './image.js';

export type Point = readonly [number, number];

export interface ClipRect { left: number; top: number; width: number; height: number }

/**
 * Strokes a polyline `width` pixels wide, antialiased. Coverage is accumulated as a per-pixel
 * maximum before blending, so joints where segments overlap are not drawn twice (which would show
 * as dark beads on translucent lines). Non-finite points break the line. Pixel centres are at
 * integer coordinates + 0.5. Optional `clip` limits drawing to a rectangle.
 */
export function strokePolyline(img: RgbImage, points: readonly Point[], color: Color, width = 1.5, clip?: ClipRect): void {
  const cx0 = Math.max(0, clip ? Math.floor(clip.left) : 0), cy0 = Math.max(0, clip ? Math.floor(clip.top) : 0);
  const cx1 = Math.min(img.width, clip ? Math.ceil(clip.left + clip.width) : img.width);
  const cy1 = Math.min(img.height, clip ? Math.ceil(clip.top + clip.height) : img.height);
  if (cx1 <= cx0 || cy1 <= cy0) return;
  const mw = cx1 - cx0;
  const mask = new Float32Array(mw * (cy1 - cy0));
  const half = width / 2;
  let touched = false;
  const segment = (ax: number, ay: number, bx: number, by: number): void => {
    const x0 = Math.max(cx0, Math.floor(Math.min(ax, bx) - half - 1)), x1 = Math.min(cx1, Math.ceil(Math.max(ax, bx) + half + 1));
    const y0 = Math.max(cy0, Math.floor(Math.min(ay, by) - half - 1)), y1 = Math.min(cy1, Math.ceil(Math.max(ay, by) + half + 1));
    const dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (let y = y0; y < y1; y++) {
      const py = y + 0.5;
      for (let x = x0; x < x1; x++) {
        const px = x + 0.5;
        let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = px - (ax + t * dx), ey = py - (ay + t * dy);
        const cov = half + 0.5 - Math.sqrt(ex * ex + ey * ey);
        if (cov <= 0) continue;
        const k = (y - cy0) * mw + (x - cx0);
        const c = cov > 1 ? 1 : cov;
        if (c > mask[k]!) { mask[k] = c; touched = true; }
      }
    }
  };
  let prev: Point | null = null;
  for (const p of points) {
    if (!Number.isFinite(p[0]) || !Number.isFinite(p[1])) { prev = null; continue; }
    if (prev) segment(prev[0], prev[1], p[0], p[1]);
    else segment(p[0], p[1], p[0], p[1]);
    prev = p;
  }
  if (!touched) return;
  for (let y = cy0; y < cy1; y++) {
    for (let x = cx0; x < cx1; x++) {
      const c = mask[(y - cy0) * mw + (x - cx0)]!;
      if (c > 0) blendPixel(img, x, y, color, c);
    }
  }
}

/** Fills a disc of radius `r` centred at (cx, cy), antialiased. */
export function fillCircle(img: RgbImage, cx: number, cy: number, r: number, color: Color): void {
  const x0 = Math.floor(cx - r - 1), x1 = Math.ceil(cx + r + 1);
  const y0 = Math.floor(cy - r - 1), y1 = Math.ceil(cy + r + 1);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
      const cov = r + 0.5 - d;
      if (cov > 0) blendPixel(img, x, y, color, cov > 1 ? 1 : cov);
    }
  }
}
