/** Image grids with captions: validation samples labelled with their prompt, class or step. */
import { drawText, LINE_HEIGHT, measureText, truncateText, wrapText, CAP_HEIGHT } from './font.js';
import { blit, createImage, resizeNearest, type Color, type Raster, type RgbImage } from './image.js';

export interface GridOptions {
  /** Columns (default: ceil(sqrt(n))). */
  cols?: number;
  /** A caption under each image (wrapped to the cell width, at most `maxLabelLines` lines). */
  labels?: readonly string[];
  title?: string;
  /** Gap between cells and around the grid, in pixels (default 8). */
  padding?: number;
  background?: Color;
  textColor?: Color;
  /** Integer upscale of every image (nearest neighbour, so small samples stay sharp). Default 1. */
  imageScale?: number;
  /** Text scale (default 1). */
  fontScale?: number;
  maxLabelLines?: number;
}

/**
 * Lays `images` out in a grid, each centred in a cell as large as the largest image. Captions sit
 * under their image; the title, if any, is centred above the grid.
 */
export function imageGrid(images: readonly RgbImage[], opts: GridOptions = {}): Raster {
  const n = images.length;
  if (n === 0) throw new RangeError('imageGrid: no images');
  const cols = Math.min(n, opts.cols ?? Math.ceil(Math.sqrt(n)));
  if (!Number.isInteger(cols) || cols < 1) throw new RangeError(`imageGrid: cols must be a positive integer, got ${opts.cols}`);
  if (opts.labels && opts.labels.length !== n) {
    throw new RangeError(`imageGrid: ${opts.labels.length} labels for ${n} images`);
  }
  const rows = Math.ceil(n / cols);
  const pad = opts.padding ?? 8;
  const fs = opts.fontScale ?? 1;
  const scale = opts.imageScale ?? 1;
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`imageGrid: imageScale must be a positive integer, got ${scale}`);
  const bg = opts.background ?? [255, 255, 255];
  const fg = opts.textColor ?? [30, 30, 30];
  const shown = scale === 1 ? images : images.map((im) => resizeNearest(im, im.width * scale, im.height * scale));
  const cellW = Math.max(...shown.map((im) => im.width));
  const cellH = Math.max(...shown.map((im) => im.height));
  // Captions must be readable even under tiny images, so cells widen to fit ~12 characters.
  const colW = opts.labels ? Math.max(cellW, measureText('x'.repeat(12), fs).width) : cellW;
  const wrapped = opts.labels?.map((l) => wrapText(l, colW, fs, opts.maxLabelLines ?? 3)) ?? [];
  const lines = Math.max(0, ...wrapped.map((w) => w.length));
  const captionH = lines > 0 ? 4 * fs + (lines - 1) * LINE_HEIGHT * fs + CAP_HEIGHT * fs + 2 * fs : 0;
  const titleScale = 2 * fs;
  const title = opts.title ? truncateText(opts.title, cols * (colW + pad) - pad, titleScale) : '';
  const titleH = title ? measureText(title, titleScale).height + pad : 0;
  const width = cols * colW + (cols + 1) * pad;
  const height = titleH + rows * (cellH + captionH) + (rows + 1) * pad;
  const out = createImage(width, height, 3, bg);
  if (title) drawText(out, Math.round((width - measureText(title, titleScale).width) / 2), pad, title, fg, titleScale);
  shown.forEach((im, k) => {
    const r = Math.floor(k / cols), c = k % cols;
    const x = pad + c * (colW + pad), y = titleH + pad + r * (cellH + captionH + pad);
    blit(out, im, x + Math.floor((colW - im.width) / 2), y + Math.floor((cellH - im.height) / 2));
    (wrapped[k] ?? []).forEach((line, li) => {
      const w = measureText(line, fs).width;
      drawText(out, x + Math.floor((colW - w) / 2), y + cellH + 4 * fs + li * LINE_HEIGHT * fs, line, fg, fs);
    });
  });
  return out;
}
