/**
 * Raster charts for training reports, drawn without any plotting library: line charts (loss
 * curves), bar charts (per-class metrics) and heatmaps (confusion matrices). Each returns an
 * RGB image plus the plot rectangle and axis domains, so callers (and tests) can locate data.
 */
import { formatValue, linearTicks, logTicks, scaler, type Ticks } from './axes.js';
import { strokePolyline, type Point } from './draw.js';
import { drawText, drawTextVertical, GLYPH_HEIGHT, measureText, truncateText, wrapText } from './font.js';
import { createImage, fillRect, strokeRect, type Color, type Raster, type RgbImage } from './image.js';

/** Where the data lives in a chart image: pixel rectangle and the domains mapped onto it. */
export interface PlotArea {
  left: number;
  top: number;
  width: number;
  height: number;
  /** x domain mapped linearly onto [left, left + width] (columns: category index - 0.5 .. n - 0.5). */
  xDomain: [number, number];
  /** y domain mapped onto [top + height, top] (log10 scale when `logY`). */
  yDomain: [number, number];
  logY: boolean;
}

export interface ChartImage extends Raster { plot: PlotArea }

/** Ten distinguishable series colours (the common "category10" hues). */
export const SERIES_COLORS: readonly Color[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

const TEXT: Color = [40, 40, 40];
const MUTED: Color = [95, 95, 95];
const AXIS: Color = [110, 110, 110];
const GRID: Color = [228, 228, 228];
const WHITE: Color = [255, 255, 255];

interface Frame { fs: number; pad: number; titleH: number }

function frame(width: number, height: number, title: string | undefined, fontScale: number | undefined): Frame {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 80 || height < 60) {
    throw new RangeError(`chart: width/height must be integers of at least 80x60, got ${width}x${height}`);
  }
  const fs = fontScale ?? (width >= 1100 ? 2 : 1);
  const pad = 14 * fs;
  const titleH = title ? measureText(title, 2 * fs).height + 10 * fs : 0;
  return { fs, pad, titleH };
}

function drawTitle(img: RgbImage, title: string | undefined, f: Frame): void {
  if (!title) return;
  const t = truncateText(title, img.width - 2 * f.pad, 2 * f.fs);
  const w = measureText(t, 2 * f.fs).width;
  drawText(img, Math.round((img.width - w) / 2), f.pad, t, TEXT, 2 * f.fs);
}

/** Draws horizontal gridlines, y tick labels, y axis line and the rotated y axis title. */
function drawYAxis(img: RgbImage, plot: PlotArea, ticks: Ticks, f: Frame, yLabel: string | undefined): void {
  const y = scaler(plot.yDomain, plot.top + plot.height, plot.top, plot.logY);
  for (let i = 0; i < ticks.values.length; i++) {
    const py = Math.round(y(ticks.values[i]!) - 0.5);
    if (py < plot.top - 1 || py > plot.top + plot.height) continue;
    fillRect(img, plot.left, py, plot.width, 1, GRID);
    fillRect(img, plot.left - 4 * f.fs, py, 3 * f.fs, 1, AXIS);
    const lbl = ticks.labels[i]!;
    const w = measureText(lbl, f.fs).width;
    drawText(img, plot.left - 7 * f.fs - w, py - Math.floor((7 * f.fs) / 2), lbl, MUTED, f.fs);
  }
  fillRect(img, plot.left - 1, plot.top, 1, plot.height + 1, AXIS);
  if (yLabel) {
    const t = truncateText(yLabel, plot.height, f.fs);
    const w = measureText(t, f.fs).width;
    drawTextVertical(img, f.pad, Math.round(plot.top + (plot.height - w) / 2), t, TEXT, f.fs);
  }
}

function maxLabelWidth(labels: readonly string[], scale: number): number {
  return Math.max(0, ...labels.map((l) => measureText(l, scale).width));
}

// ------------------------------------------------------------------------------------- line chart

export interface LineSeries {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: Color;
  /** Overrides the chart's `smoothing` for this series (e.g. 0 for sparse validation points). */
  smoothing?: number;
}

export interface LineChartOptions {
  series: readonly LineSeries[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Log10 y axis (non-positive values are skipped). */
  logY?: boolean;
  /**
   * Exponential moving average weight in [0, 1) (TensorBoard-style, bias-corrected). The raw
   * curve stays visible, faded, behind the smoothed one.
   */
  smoothing?: number;
  /** Fixed axis ranges; by default the data range widened to whole ticks. */
  xRange?: [number, number];
  yRange?: [number, number];
  /** Text scale (default 1, or 2 for images at least 1100 wide). */
  fontScale?: number;
  /** Line width in pixels (default 2 x fontScale). */
  lineWidth?: number;
  legend?: boolean;
}

/** Bias-corrected exponential moving average of `ys`, skipping non-finite values. */
export function emaSmooth(ys: readonly number[], weight: number): number[] {
  if (!(weight >= 0 && weight < 1)) throw new RangeError(`smoothing must be in [0, 1), got ${weight}`);
  let acc = 0, norm = 0;
  return ys.map((y) => {
    if (!Number.isFinite(y)) return y;
    acc = acc * weight + (1 - weight) * y;
    norm = norm * weight + (1 - weight);
    return acc / norm;
  });
}

export function lineChart(opts: LineChartOptions): ChartImage {
  const width = opts.width ?? 720, height = opts.height ?? 420;
  const f = frame(width, height, opts.title, opts.fontScale);
  const logY = opts.logY ?? false;
  const smoothing = opts.smoothing ?? 0;
  const series = opts.series.map((s, i) => {
    const color = s.color ?? SERIES_COLORS[i % SERIES_COLORS.length]!;
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logY || p[1] > 0));
    const sm = s.smoothing ?? smoothing;
    const smooth = sm > 0 ? emaSmooth(pts.map((p) => p[1]), sm) : null;
    return { name: s.name, color, pts, smooth };
  });
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (const s of series) {
    for (const p of s.pts) {
      xmin = Math.min(xmin, p[0]); xmax = Math.max(xmax, p[0]);
      ymin = Math.min(ymin, p[1]); ymax = Math.max(ymax, p[1]);
    }
  }
  if (xmin > xmax) { xmin = 0; xmax = 1; ymin = logY ? 0.1 : 0; ymax = 1; }
  const xr = opts.xRange ?? [xmin, xmax];
  const yr = opts.yRange ?? [ymin, ymax];
  const xTicks = linearTicks(xr[0], xr[1], Math.max(2, Math.round(width / (110 * f.fs))), opts.xRange !== undefined);
  const yTicks = logY
    ? logTicks(yr[0], yr[1], opts.yRange !== undefined)
    : linearTicks(yr[0], yr[1], Math.max(2, Math.round(height / (70 * f.fs))), opts.yRange !== undefined);

  const tickH = GLYPH_HEIGHT * f.fs;
  const yTitleW = opts.yLabel ? tickH + 8 * f.fs : 0;
  const left = f.pad + yTitleW + maxLabelWidth(yTicks.labels, f.fs) + 8 * f.fs;
  const lastX = xTicks.labels[xTicks.labels.length - 1] ?? '';
  const right = Math.max(f.pad, Math.ceil(measureText(lastX, f.fs).width / 2) + 4 * f.fs);
  const top = f.pad + f.titleH;
  const bottom = f.pad + tickH + 8 * f.fs + (opts.xLabel ? tickH + 6 * f.fs : 0);
  const plot: PlotArea = {
    left, top, width: width - left - right, height: height - top - bottom,
    xDomain: xTicks.domain, yDomain: yTicks.domain, logY,
  };
  if (plot.width < 20 || plot.height < 20) throw new RangeError(`lineChart: ${width}x${height} leaves no room to plot`);
  const img = createImage(width, height, 3, WHITE);
  drawTitle(img, opts.title, f);

  const xs = scaler(plot.xDomain, plot.left, plot.left + plot.width);
  const ys = scaler(plot.yDomain, plot.top + plot.height, plot.top, logY);
  for (let i = 0; i < xTicks.values.length; i++) {
    const px = Math.round(xs(xTicks.values[i]!) - 0.5);
    if (px < plot.left - 1 || px > plot.left + plot.width) continue;
    fillRect(img, px, plot.top, 1, plot.height, GRID);
    fillRect(img, px, plot.top + plot.height + 1, 1, 3 * f.fs, AXIS);
    const lbl = xTicks.labels[i]!;
    const w = measureText(lbl, f.fs).width;
    drawText(img, px - Math.floor(w / 2), plot.top + plot.height + 6 * f.fs, lbl, MUTED, f.fs);
  }
  drawYAxis(img, plot, yTicks, f, opts.yLabel);
  fillRect(img, plot.left - 1, plot.top + plot.height, plot.width + 1, 1, AXIS);
  if (opts.xLabel) {
    const t = truncateText(opts.xLabel, plot.width, f.fs);
    const w = measureText(t, f.fs).width;
    drawText(img, Math.round(plot.left + (plot.width - w) / 2), height - f.pad - 7 * f.fs, t, TEXT, f.fs);
  }

  // Lines may overshoot a fixed range: clip to the plot (one pixel of slack for the stroke).
  const clip = { left: plot.left, top: plot.top - 1, width: plot.width + 1, height: plot.height + 1 };
  const lw = opts.lineWidth ?? 2 * f.fs;
  const toPx = (x: number, y: number): Point => [xs(x), ys(y)];
  for (const s of series) {
    if (s.smooth) {
      strokePolyline(img, s.pts.map((p) => toPx(p[0], p[1])), [s.color[0], s.color[1], s.color[2], 70], Math.max(1, lw / 2), clip);
      strokePolyline(img, s.pts.map((p, i) => toPx(p[0], s.smooth![i]!)), s.color, lw, clip);
    } else {
      strokePolyline(img, s.pts.map((p) => toPx(p[0], p[1])), s.color, lw, clip);
    }
  }
  if ((opts.legend ?? series.length > 1) && series.length > 0) drawLegend(img, plot, series, f);
  return Object.assign(img, { plot });
}

/** Legend box in the plot's top-right corner: a short line swatch and the name per series. */
function drawLegend(img: RgbImage, plot: PlotArea, entries: readonly { name: string; color: Color }[], f: Frame): void {
  const fs = f.fs;
  const swatch = 16 * fs, gap = 6 * fs, rowH = 13 * fs, boxPad = 7 * fs;
  const names = entries.map((e) => truncateText(e.name, plot.width / 2, fs));
  const boxW = boxPad * 2 + swatch + gap + maxLabelWidth(names, fs);
  const boxH = boxPad * 2 + rowH * entries.length - (rowH - 7 * fs);
  const bx = plot.left + plot.width - boxW - 8 * fs, by = plot.top + 8 * fs;
  fillRect(img, bx, by, boxW, boxH, [255, 255, 255, 225]);
  strokeRect(img, bx, by, boxW, boxH, [200, 200, 200]);
  entries.forEach((e, i) => {
    const ty = by + boxPad + i * rowH;
    fillRect(img, bx + boxPad, ty + 3 * fs - fs, swatch, 2 * fs + (fs > 1 ? 0 : 1), e.color);
    drawText(img, bx + boxPad + swatch + gap, ty, names[i]!, TEXT, fs);
  });
}

// -------------------------------------------------------------------------------------- bar chart

export interface BarGroup {
  name: string;
  values: readonly number[];
  color?: Color;
}

export interface BarChartOptions {
  /** One label per category (bar, or group of bars). */
  labels: readonly string[];
  /** One bar per category; or use `groups` for several bars per category. */
  values?: readonly number[];
  groups?: readonly BarGroup[];
  title?: string;
  yLabel?: string;
  /** Top of the y axis (e.g. 1 for accuracies); by default the largest value widened to a tick. */
  yMax?: number;
  width?: number;
  height?: number;
  fontScale?: number;
  /** Print each bar's value above it (default true, when it fits). */
  showValues?: boolean;
  color?: Color;
}

export function barChart(opts: BarChartOptions): ChartImage {
  const n = opts.labels.length;
  if (n === 0) throw new RangeError('barChart: no labels');
  if ((opts.values === undefined) === (opts.groups === undefined)) throw new RangeError('barChart: give exactly one of values or groups');
  const groups: { name: string; values: readonly number[]; color: Color }[] = opts.groups
    ? opts.groups.map((g, i) => ({ name: g.name, values: g.values, color: g.color ?? SERIES_COLORS[i % SERIES_COLORS.length]! }))
    : [{ name: '', values: opts.values!, color: opts.color ?? SERIES_COLORS[0]! }];
  groups.forEach((g, gi) => {
    if (g.values.length !== n) {
      throw new RangeError(`barChart: ${opts.groups ? `group ${gi} ('${g.name}')` : 'values'} has ${g.values.length} values for ${n} labels`);
    }
  });
  const width = opts.width ?? Math.max(360, Math.min(960, 120 + n * 70 * groups.length ** 0.6)), height = opts.height ?? 380;
  const f = frame(Math.round(width), height, opts.title, opts.fontScale);
  const all = groups.flatMap((g) => g.values.filter(Number.isFinite));
  const lo = Math.min(0, ...all), hi = opts.yMax ?? Math.max(0, ...all);
  const yTicks = linearTicks(lo, hi === lo ? lo + 1 : hi, Math.max(2, Math.round(height / (70 * f.fs))), opts.yMax !== undefined);

  const tickH = GLYPH_HEIGHT * f.fs;
  const yTitleW = opts.yLabel ? tickH + 8 * f.fs : 0;
  const left = f.pad + yTitleW + maxLabelWidth(yTicks.labels, f.fs) + 8 * f.fs;
  const top = f.pad + f.titleH + (opts.groups ? 18 * f.fs : 0);
  const bottom = f.pad + 2 * 11 * f.fs + 4 * f.fs;
  const W = Math.round(width);
  const plot: PlotArea = {
    left, top, width: W - left - f.pad, height: height - top - bottom,
    xDomain: [-0.5, n - 0.5], yDomain: yTicks.domain, logY: false,
  };
  if (plot.width < 20 || plot.height < 20) throw new RangeError(`barChart: ${W}x${height} leaves no room to plot`);
  const img = createImage(W, height, 3, WHITE);
  drawTitle(img, opts.title, f);
  drawYAxis(img, plot, yTicks, f, opts.yLabel);

  const ys = scaler(plot.yDomain, plot.top + plot.height, plot.top);
  const band = plot.width / n;
  const groupW = band * (groups.length > 1 ? 0.8 : 0.62);
  const barW = groupW / groups.length;
  const y0 = Math.round(ys(Math.max(plot.yDomain[0], Math.min(0, plot.yDomain[1]))));
  const showValues = opts.showValues ?? true;
  for (let i = 0; i < n; i++) {
    const cx = plot.left + band * (i + 0.5);
    groups.forEach((g, gi) => {
      const v = g.values[i]!;
      if (!Number.isFinite(v)) return;
      const x0 = Math.round(cx - groupW / 2 + gi * barW), x1 = Math.round(cx - groupW / 2 + (gi + 1) * barW) - (groups.length > 1 ? 1 : 0);
      const yv = Math.round(Math.max(plot.top, Math.min(plot.top + plot.height, ys(v))));
      fillRect(img, x0, Math.min(yv, y0), x1 - x0, Math.abs(y0 - yv), g.color);
      const lbl = formatValue(v);
      const lw = measureText(lbl, f.fs).width;
      if (showValues && lw <= x1 - x0 + 8 * f.fs) {
        const ty = v >= 0 ? Math.max(plot.top - 10 * f.fs, yv - 11 * f.fs) : yv + 4 * f.fs;
        drawText(img, Math.round((x0 + x1 - lw) / 2), ty, lbl, TEXT, f.fs);
      }
    });
    const lines = wrapText(opts.labels[i]!, band - 4 * f.fs, f.fs, 2);
    lines.forEach((l, li) => {
      const w = measureText(l, f.fs).width;
      drawText(img, Math.round(cx - w / 2), plot.top + plot.height + 7 * f.fs + li * 11 * f.fs, l, TEXT, f.fs);
    });
  }
  fillRect(img, plot.left - 1, y0, plot.width + 1, 1, AXIS);
  if (opts.groups) {
    // Horizontal legend under the title: swatch + name, centred.
    const items = groups.map((g) => ({ g, w: 12 * f.fs + 5 * f.fs + measureText(g.name, f.fs).width }));
    const total = items.reduce((a, it) => a + it.w, 0) + (items.length - 1) * 16 * f.fs;
    let x = Math.round((W - total) / 2);
    const ly = f.pad + f.titleH;
    for (const it of items) {
      fillRect(img, x, ly, 12 * f.fs, 7 * f.fs, it.g.color);
      drawText(img, x + 17 * f.fs, ly, it.g.name, TEXT, f.fs);
      x += it.w + 16 * f.fs;
    }
  }
  return Object.assign(img, { plot });
}

// ---------------------------------------------------------------------------------------- heatmap

export interface HeatmapOptions {
  matrix: readonly (readonly number[])[];
  rowLabels?: readonly string[];
  colLabels?: readonly string[];
  title?: string;
  /** Axis titles, e.g. 'true' (rows) and 'predicted' (columns) for confusion matrices. */
  xLabel?: string;
  yLabel?: string;
  /** Divide each row by its sum (confusion matrix recall view); cells then show fractions. */
  normalize?: boolean;
  /** Cell edge in pixels (default: fits the numbers, at least 44 x fontScale). */
  cellSize?: number;
  fontScale?: number;
  showValues?: boolean;
}

/** Sequential white-to-navy ramp (monotone in lightness, so the order of values reads at a glance). */
const RAMP: readonly Color[] = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];

/** Colour for t in [0, 1] on the heatmap ramp. */
export function heatColor(t: number): Color {
  const x = (Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x)), u = x - i;
  const a = RAMP[i]!, b = RAMP[i + 1]!;
  return [Math.round(a[0] + (b[0] - a[0]) * u), Math.round(a[1] + (b[1] - a[1]) * u), Math.round(a[2] + (b[2] - a[2]) * u)];
}

export function heatmap(opts: HeatmapOptions): ChartImage {
  const rows = opts.matrix.length;
  const cols = rows ? opts.matrix[0]!.length : 0;
  if (rows === 0 || cols === 0) throw new RangeError('heatmap: empty matrix');
  opts.matrix.forEach((r, i) => {
    if (r.length !== cols) throw new RangeError(`heatmap: row ${i} has ${r.length} values, row 0 has ${cols}`);
  });
  const rowLabels = opts.rowLabels ?? opts.matrix.map((_, i) => String(i));
  const colLabels = opts.colLabels ?? opts.matrix[0]!.map((_, j) => String(j));
  if (rowLabels.length !== rows) throw new RangeError(`heatmap: ${rowLabels.length} row labels for ${rows} rows`);
  if (colLabels.length !== cols) throw new RangeError(`heatmap: ${colLabels.length} column labels for ${cols} columns`);
  const values = opts.matrix.map((r) => {
    if (!opts.normalize) return [...r];
    const s = r.reduce((a, v) => a + (Number.isFinite(v) ? v : 0), 0);
    return r.map((v) => (s > 0 ? v / s : 0));
  });
  const flat = values.flat().filter(Number.isFinite);
  const vmin = opts.normalize ? 0 : Math.min(0, ...flat), vmax = opts.normalize ? 1 : Math.max(...flat);
  const text = values.map((r) => r.map((v) => (opts.normalize ? v.toFixed(2) : formatValue(v))));

  const fs = opts.fontScale ?? 1;
  const f0 = frame(200, 200, opts.title, fs);
  const cell = opts.cellSize ?? Math.max(64 * fs, maxLabelWidth(text.flat(), fs) + 12 * fs);
  // Column labels: wrapped onto up to 2 lines under their column, or rotated when still too wide.
  const colLines = colLabels.map((l) => wrapText(l, cell - 4 * fs, fs));
  const verticalCols = colLines.some((ls) => ls.length > 2);
  const colLW = maxLabelWidth(colLabels, fs);
  const tickH = GLYPH_HEIGHT * fs;
  const colBandH = verticalCols ? colLW : tickH + (Math.max(...colLines.map((ls) => ls.length)) - 1) * 11 * fs;
  const yTitleW = opts.yLabel ? tickH + 8 * fs : 0;
  const left0 = f0.pad + yTitleW + maxLabelWidth(rowLabels, fs) + 8 * fs;
  const top = f0.pad + f0.titleH;
  const barW = 14 * fs, barGap = 14 * fs;
  const scaleLabels = [formatValue(vmin), formatValue(vmax)];
  const right = f0.pad + barGap + barW + 6 * fs + maxLabelWidth(scaleLabels, fs);
  const bottom = f0.pad + 7 * fs + colBandH + (opts.xLabel ? tickH + 8 * fs : 0);
  // A title wider than the matrix widens the image; the matrix is then centred under it.
  const titleW = opts.title ? measureText(opts.title, 2 * fs).width + 2 * f0.pad : 0;
  const natural = left0 + cols * cell + right;
  const shift = Math.max(0, Math.floor((titleW - natural) / 2));
  const left = left0 + shift;
  const width = Math.max(natural, titleW);
  const height = top + rows * cell + bottom;
  const f = frame(Math.max(80, width), Math.max(60, height), opts.title, fs);
  const img = createImage(Math.max(80, width), Math.max(60, height), 3, WHITE);
  const plot: PlotArea = {
    left, top, width: cols * cell, height: rows * cell,
    xDomain: [-0.5, cols - 0.5], yDomain: [rows - 0.5, -0.5], logY: false,
  };
  drawTitle(img, opts.title, f);
  const span = vmax - vmin || 1;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = values[i]![j]!;
      const c = heatColor((v - vmin) / span);
      const x = left + j * cell, y = top + i * cell;
      fillRect(img, x, y, cell, cell, c);
      if (opts.showValues ?? true) {
        const lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
        const t = text[i]![j]!;
        const w = measureText(t, fs).width;
        drawText(img, x + Math.round((cell - w) / 2), y + Math.round((cell - 7 * fs) / 2), t, lum < 140 ? WHITE : TEXT, fs);
      }
    }
  }
  // Thin white separators between cells keep neighbouring equal colours readable as cells.
  for (let i = 1; i < rows; i++) fillRect(img, left, top + i * cell, cols * cell, 1, WHITE);
  for (let j = 1; j < cols; j++) fillRect(img, left + j * cell, top, 1, rows * cell, WHITE);
  rowLabels.forEach((l, i) => {
    const w = measureText(l, fs).width;
    drawText(img, left - 7 * fs - w, top + i * cell + Math.round((cell - 7 * fs) / 2), l, TEXT, fs);
  });
  colLabels.forEach((l, j) => {
    const w = measureText(l, fs).width;
    const cx = left + j * cell + cell / 2;
    if (verticalCols) drawTextVertical(img, Math.round(cx - 3.5 * fs), top + rows * cell + 7 * fs + colLW - w, l, TEXT, fs);
    else {
      colLines[j]!.forEach((line, li) => {
        const lw = measureText(line, fs).width;
        drawText(img, Math.round(cx - lw / 2), top + rows * cell + 7 * fs + li * 11 * fs, line, TEXT, fs);
      });
    }
  });
  if (opts.xLabel) {
    const w = measureText(opts.xLabel, fs).width;
    drawText(img, Math.round(left + (cols * cell - w) / 2), top + rows * cell + 7 * fs + colBandH + 8 * fs, opts.xLabel, TEXT, fs);
  }
  if (opts.yLabel) {
    const w = measureText(opts.yLabel, fs).width;
    drawTextVertical(img, f.pad + shift, Math.round(top + (rows * cell - w) / 2), opts.yLabel, TEXT, fs);
  }
  // Colour bar: the ramp from vmin (bottom) to vmax (top), labelled at both ends.
  const bx = left + cols * cell + barGap, bh = rows * cell;
  for (let y = 0; y < bh; y++) fillRect(img, bx, top + y, barW, 1, heatColor(1 - y / Math.max(1, bh - 1)));
  strokeRect(img, bx, top, barW, bh, [190, 190, 190]);
  drawText(img, bx + barW + 5 * fs, top, scaleLabels[1]!, MUTED, fs);
  drawText(img, bx + barW + 5 * fs, top + bh - 7 * fs, scaleLabels[0]!, MUTED, fs);
  return Object.assign(img, { plot });
}
