/**
 * Labelled image grids for the report: one row per prompt or class, its label on the left, and for
 * drift the base model's samples beside the fine-tuned model's at the same seeds. PNG files are
 * written atomically (writePng: temporary file, then rename).
 */
import {
  blit, createImage, drawText, measureText, resizeNearest, truncateText, wrapText, writePng, LINE_HEIGHT,
  type Raster,
} from '@foliar/report';
import type { RgbImage } from './features.js';

export interface GridOptions {
  title?: string;
  /** Integer upscale of every image (nearest neighbour, so small samples stay sharp; default 1). */
  imageScale?: number;
  /** At most this many images of each row's group (default all). */
  maxPerGroup?: number;
}

export interface LabelledRow {
  label: string;
  images: RgbImage[];
}

export interface SideBySideRow {
  label: string;
  base: RgbImage[];
  tuned: RgbImage[];
}

const PAD = 6;
const GROUP_GAP = 3 * PAD;
const MAX_LABEL_WIDTH = 140;
const BG = [255, 255, 255] as const;
const FG = [30, 30, 30] as const;

function raster(img: RgbImage, scale: number): Raster {
  if (img.data.length !== img.width * img.height * 3) throw new RangeError(`grid: image of ${img.width}x${img.height} has ${img.data.length} bytes, expected RGB`);
  const r: Raster = { width: img.width, height: img.height, channels: 3, data: img.data };
  return scale === 1 ? r : resizeNearest(r, img.width * scale, img.height * scale);
}

/**
 * Rows of image groups: the label column, then each group's images in columns, groups separated by
 * a wider gap and headed by `headers` when given.
 */
export function rowGrid(rows: { label: string; groups: RgbImage[][] }[], opts: GridOptions & { headers?: string[] } = {}): Raster {
  if (rows.length === 0) throw new RangeError('rowGrid: no rows');
  const scale = opts.imageScale ?? 1;
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`rowGrid: imageScale must be a positive integer, got ${scale}`);
  const G = Math.max(...rows.map((r) => r.groups.length));
  const shown = rows.map((r) => r.groups.map((g) => g.slice(0, opts.maxPerGroup ?? g.length).map((im) => raster(im, scale))));
  const all = shown.flat(2);
  if (all.length === 0) throw new RangeError('rowGrid: no images');
  const cellW = Math.max(...all.map((im) => im.width)), cellH = Math.max(...all.map((im) => im.height));
  const cols = Array.from({ length: G }, (_, g) => Math.max(1, ...shown.map((r) => r[g]?.length ?? 0)));
  const labelW = Math.min(MAX_LABEL_WIDTH, Math.max(...rows.map((r) => measureText(r.label).width)));
  const labels = rows.map((r) => wrapText(r.label, labelW, 1, Math.max(1, Math.floor(cellH / LINE_HEIGHT))));
  const rowH = Math.max(cellH, ...labels.map((l) => l.length * LINE_HEIGHT));
  const groupW = cols.map((k) => k * cellW + (k - 1) * PAD);
  const gridX = PAD + labelW + PAD;
  const width = gridX + groupW.reduce((a, b) => a + b, 0) + (G - 1) * GROUP_GAP + PAD;
  const title = opts.title ? truncateText(opts.title, width - 2 * PAD, 2) : '';
  const titleH = title ? measureText(title, 2).height + PAD : 0;
  const headerH = opts.headers ? LINE_HEIGHT + PAD : 0;
  const top = PAD + titleH + headerH;
  const height = top + rows.length * (rowH + PAD);
  const out = createImage(width, height, 3, BG);
  if (title) drawText(out, Math.round((width - measureText(title, 2).width) / 2), PAD, title, FG, 2);
  const groupX = (g: number) => gridX + groupW.slice(0, g).reduce((a, b) => a + b, 0) + g * GROUP_GAP;
  opts.headers?.slice(0, G).forEach((h, g) => {
    const text = truncateText(h, groupW[g]!);
    drawText(out, groupX(g) + Math.floor((groupW[g]! - measureText(text).width) / 2), PAD + titleH, text, FG);
  });
  shown.forEach((groups, r) => {
    const y = top + r * (rowH + PAD);
    const lines = labels[r]!;
    lines.forEach((line, i) => drawText(out, PAD, y + Math.floor((rowH - lines.length * LINE_HEIGHT) / 2) + i * LINE_HEIGHT, line, FG));
    groups.forEach((imgs, g) => imgs.forEach((im, k) => {
      blit(out, im, groupX(g) + k * (cellW + PAD) + Math.floor((cellW - im.width) / 2), y + Math.floor((rowH - im.height) / 2));
    }));
  });
  return out;
}

/** One row of images per label (e.g. samples per class prompt), written to `path` as PNG. */
export function labelledGrid(rows: LabelledRow[], path: string, opts: GridOptions = {}): void {
  writePng(path, rowGrid(rows.map((r) => ({ label: r.label, groups: [r.images] })), opts));
}

/** Per prompt, the base model's samples beside the fine-tuned model's (same seeds), written to `path` as PNG. */
export function sideBySideGrid(rows: SideBySideRow[], path: string, opts: GridOptions & { headers?: [string, string] } = {}): void {
  writePng(path, rowGrid(rows.map((r) => ({ label: r.label, groups: [r.base, r.tuned] })), { headers: ['base model', 'fine-tuned'], ...opts }));
}
