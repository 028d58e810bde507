/**
 * A 5x7 bitmap font (ASCII 32-126) with two descender rows, drawn for this project, and text
 * drawing at integer scales. Bitmaps keep chart labels crisp at small sizes, where an
 * antialiased vector font would blur.
 */
import { blendPixel, type Color, type RgbImage } from './image.js';

/** Glyph cell: 5 columns, 7 rows above the baseline plus 2 descender rows. */
export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 9;
/** Cap height (rows above the baseline). */
export const CAP_HEIGHT = 7;
/** Horizontal advance per character and vertical advance per line, at scale 1. */
export const CHAR_ADVANCE = 6;
export const LINE_HEIGHT = 11;

/**
 * One string per glyph from ' ' (32) to '~' (126): 9 rows, each a base-32 digit whose 5 bits are
 * the row's pixels, most significant bit leftmost.
 */
const GLYPHS: readonly string[] = [
  '000000000', '444440400', 'aaa000000', 'aavavaa00', '4fke5u400', 'op248j300', 'cik8lid00', '444000000',
  '248884200', '842224800', '04lel4000', '044v44000', '000006648', '000v00000', '00000cc00', '01248g000',
  'ehjlphe00', '4c4444e00', 'eh1248v00', 'v2421he00', '26aiv2200', 'vgu11he00', '68guhhe00', 'v12488800',
  'ehhehhe00', 'ehhf12c00', '0cc0cc000', '0cc0cc800', '248g84200', '00v0v0000', '842124800', 'eh1240400',
  'eh1dlle00', 'ehhvhhh00', 'uhhuhhu00', 'ehggghe00', 'sihhhis00', 'vgguggv00', 'vgguggg00', 'ehgnhhf00',
  'hhhvhhh00', 'e44444e00', '72222ic00', 'hikokih00', 'ggggggv00', 'hrllhhh00', 'hhpljhh00', 'ehhhhhe00',
  'uhhuggg00', 'ehhhlid00', 'uhhukih00', 'fgge11u00', 'v44444400', 'hhhhhhe00', 'hhhhha400', 'hhhllla00',
  'hha4ahh00', 'hha444400', 'v1248gv00', 'e88888e00', '0g8421000', 'e22222e00', '4ah000000', '0000000v0',
  '842000000', '00e1fhf00', 'ggmphhu00', '00egghe00', '11djhhf00', '00ehvge00', '698s88800', '00fhhjd1e',
  'ggmphhh00', '40c444e00', '2062222ic', 'ggikoki00', 'c44444e00', '00qllll00', '00mphhh00', '00ehhhe00',
  '00uhhpmgg', '00fhhjd11', '00mpggg00', '00fge1u00', '88s889600', '00hhhjd00', '00hhha400', '00hhlla00',
  '00ha4ah00', '00hhhjd1e', '00v248v00', '344844300', '444444400', 'o44244o00', '008l20000',
];

const ROW_DIGITS = '0123456789abcdefghijklmnopqrstuv';

/** Rows of the glyph for `ch` (unknown characters draw as '?'). */
function glyphRows(ch: string): readonly number[] {
  const code = ch.charCodeAt(0);
  const g = GLYPHS[code >= 32 && code <= 126 ? code - 32 : 31]!;
  const rows: number[] = [];
  for (let r = 0; r < GLYPH_HEIGHT; r++) rows.push(ROW_DIGITS.indexOf(g[r]!));
  return rows;
}

const cache = new Map<string, readonly number[]>();
function glyph(ch: string): readonly number[] {
  let g = cache.get(ch);
  if (!g) { g = glyphRows(ch); cache.set(ch, g); }
  return g;
}

export interface TextSize { width: number; height: number }

/**
 * Pixel size of `text` at `scale` (lines split on '\n'): the width has no trailing gap, the
 * height covers descenders of the last line.
 */
export function measureText(text: string, scale = 1): TextSize {
  const lines = text.split('\n');
  const longest = Math.max(...lines.map((l) => l.length));
  return {
    width: longest === 0 ? 0 : (longest * CHAR_ADVANCE - 1) * scale,
    height: ((lines.length - 1) * LINE_HEIGHT + GLYPH_HEIGHT) * scale,
  };
}

/**
 * Draws `text` with its top-left corner (top of capitals) at (x, y). Returns the width drawn.
 * Each font pixel becomes a `scale`x`scale` block.
 */
export function drawText(img: RgbImage, x: number, y: number, text: string, color: Color, scale = 1): number {
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`drawText: scale must be a positive integer, got ${scale}`);
  x = Math.round(x); y = Math.round(y);
  let cy = y;
  for (const line of text.split('\n')) {
    let cx = x;
    for (const ch of line) {
      const rows = glyph(ch);
      for (let r = 0; r < GLYPH_HEIGHT; r++) {
        const bits = rows[r]!;
        if (bits === 0) continue;
        for (let c = 0; c < GLYPH_WIDTH; c++) {
          if (!(bits & (1 << (GLYPH_WIDTH - 1 - c)))) continue;
          for (let sy = 0; sy < scale; sy++) {
            for (let sx = 0; sx < scale; sx++) blendPixel(img, cx + c * scale + sx, cy + r * scale + sy, color);
          }
        }
      }
      cx += CHAR_ADVANCE * scale;
    }
    cy += LINE_HEIGHT * scale;
  }
  return measureText(text, scale).width;
}

/** Draws text rotated 90 degrees counter-clockwise (reads bottom to top), top-left at (x, y). */
export function drawTextVertical(img: RgbImage, x: number, y: number, text: string, color: Color, scale = 1): void {
  const { width } = measureText(text, scale);
  x = Math.round(x); y = Math.round(y);
  let pos = 0;
  for (const ch of text) {
    const rows = glyph(ch);
    for (let r = 0; r < GLYPH_HEIGHT; r++) {
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (!(rows[r]! & (1 << (GLYPH_WIDTH - 1 - c)))) continue;
        // Glyph column c runs upwards from the bottom, glyph row r runs rightwards.
        const px = x + r * scale, py = y + width - 1 - (pos + c * scale);
        for (let sy = 0; sy < scale; sy++) for (let sx = 0; sx < scale; sx++) blendPixel(img, px + sx, py - sy, color);
      }
    }
    pos += CHAR_ADVANCE * scale;
  }
}

/**
 * Splits `text` into lines no wider than `maxWidth` pixels at `scale`, breaking at spaces where
 * possible and inside words otherwise. At most `maxLines` lines; a cut last line ends in '..'.
 */
export function wrapText(text: string, maxWidth: number, scale = 1, maxLines = Infinity): string[] {
  const perLine = Math.max(1, Math.floor((maxWidth / scale + 1) / CHAR_ADVANCE));
  const lines: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      let w = word;
      while (w.length > perLine || (line && w.length + line.length + 1 > perLine && /[_-]/.test(w))) {
        // Prefer breaking identifiers like multiple_diseases after '_' or '-' over chopping them.
        const room = line ? perLine - line.length - 1 : perLine;
        const cut = Math.max(w.lastIndexOf('_', room - 1), w.lastIndexOf('-', room - 1)) + 1;
        if (cut > 0 && room > 0) {
          lines.push(line ? `${line} ${w.slice(0, cut)}` : w.slice(0, cut));
          line = '';
          w = w.slice(cut);
          continue;
        }
        if (w.length <= perLine) break;
        if (line) { lines.push(line); line = ''; }
        lines.push(w.slice(0, perLine));
        w = w.slice(perLine);
      }
      const next = line ? `${line} ${w}` : w;
      if (next.length <= perLine) line = next;
      else { lines.push(line); line = w; }
    }
    lines.push(line);
  }
  if (lines.length > maxLines) {
    const kept = lines.slice(0, maxLines);
    kept[maxLines - 1] = truncateText(`${kept[maxLines - 1]!}...`, maxWidth, scale);
    return kept;
  }
  return lines;
}

/** Shortens `text` to fit `maxWidth` pixels at `scale`, ending in '..' when cut. */
export function truncateText(text: string, maxWidth: number, scale = 1): string {
  const perLine = Math.max(1, Math.floor((maxWidth / scale + 1) / CHAR_ADVANCE));
  if (text.length <= perLine) return text;
  return perLine <= 2 ? text.slice(0, perLine) : `${text.slice(0, perLine - 2).trimEnd()}..`;
}
