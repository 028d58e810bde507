// The pictures' API shared by Node (index.ts) and browsers (browser.ts): rasters, bitmap text, grids
// and charts; each entry adds its PNG functions.
export {
  createImage, fillImage, fillRect, strokeRect, blendPixel, getPixel, blit, resizeNearest, resizeBilinear,
  fromFloatCHW, toRgb, type Raster, type Color, type FloatRange,
} from './image.js';
export type { RgbImage } from '@foliar/data';
export {
  drawText, drawTextVertical, measureText, wrapText, truncateText,
  GLYPH_WIDTH, GLYPH_HEIGHT, CAP_HEIGHT, CHAR_ADVANCE, LINE_HEIGHT, type TextSize,
} from './font.js';
export { strokePolyline, fillCircle, type Point, type ClipRect } from './draw.js';
export { imageGrid, type GridOptions } from './grid.js';
export {
  lineChart, barChart, heatmap, heatColor, emaSmooth, SERIES_COLORS,
  type LineChartOptions, type LineSeries, type BarChartOptions, type BarGroup, type HeatmapOptions,
  type ChartImage, type PlotArea,
} from './chart.js';
export { niceStep, linearTicks, logTicks, formatTick, formatValue, type Ticks } from './axes.js';
