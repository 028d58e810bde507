// The one CSV parser of foliar (the classifier's layouts and the diffusion trainers' caption and
// class-image CSVs), on csv-parse: strict RFC 4180 — quoted fields (with "" escapes and embedded
// newlines), CRLF/LF/CR line ends (mixed), a leading UTF-8 BOM dropped, blank lines skipped. A quote
// inside an unquoted field, text after a closing quote and an unterminated quoted field are errors
// naming file and line (read on, an unclosed quote would swallow every row after it into one field).
//
// csv-parse reads bytes; what it cannot say is kept here: each record's first line (csv-parse counts a
// CRLF inside a quoted field twice, and reports an unclosed quote at the end of the file), where and
// why a refused record fails (the message and line foliar has always given), and characters it would
// change: lone UTF-16 surrogates (U+FFFD in UTF-8) and NUL (escaped around the parse, see escapeText).
import { readText } from '#platform';
// csv-parse's own browser build in browsers (package.json `imports`), its Node build in Node
import { parse, CsvError as ParseError, type InfoRecord } from '#csv-parse';

export class CsvError extends Error {
  constructor(readonly file: string, readonly line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = 'CsvError';
  }
}

export interface CsvTable {
  file: string;
  header: string[];
  /** 1-based line of the header record. */
  headerLine: number;
  rows: string[][];
  /** 1-based physical line on which each row starts (header is usually line 1). */
  lines: number[];
}

export interface CsvOptions {
  /** Name used in error messages. */
  file?: string;
  /** Require every row to have as many fields as the header (default true). */
  strictWidth?: boolean;
}

// ignoreBOM: a field may start with U+FEFF, which Buffer#toString kept too
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** CSV text → its records (blank lines skipped) and the 1-based line each starts on; no header handling. */
export function parseCsvRecords(text: string, file = '<csv>'): { records: string[][]; lines: number[] } {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const escaped = SPECIAL.test(text);
  const input = escaped ? escapeText(text) : text;
  const bytes = new TextEncoder().encode(input);
  const lineAt = lineIndex(bytes);
  let parsed: string[][];
  const ends: number[] = []; // byte offset after each record (its line end included)
  try {
    parsed = parse(input, {
      encoding: 'utf8',
      bom: false,
      delimiter: ',',
      quote: '"',
      escape: '"',
      record_delimiter: ['\r\n', '\n', '\r'],
      skip_empty_lines: true,
      relax_column_count: true,
      relax_quotes: false,
      on_record: (record: string[], context: InfoRecord) => {
        ends.push(context.bytes);
        return record;
      },
    });
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    // The failing record starts after the last one read: find where and why by walking it.
    const start = skipLineEnds(bytes, ends.length ? ends[ends.length - 1]! : 0);
    const found = locateError(bytes, start, lineAt, escaped);
    throw found ? new CsvError(file, found.line, found.why) : new CsvError(file, lineAt(start), e.message);
  }
  const records: string[][] = [];
  const lines: number[] = [];
  parsed.forEach((record, k) => {
    lines.push(lineAt(skipLineEnds(bytes, k ? ends[k - 1]! : 0)));
    records.push(escaped ? record.map(unescapeText) : record);
  });
  return { records, lines };
}

const CR = 0x0d, LF = 0x0a, QUOTE = 0x22, COMMA = 0x2c;

/** Byte offset → 1-based line (CRLF, LF and CR each end one line; UTF-8 never has these bytes inside a character). */
function lineIndex(bytes: Uint8Array): (offset: number) => number {
  const breaks: number[] = []; // offsets just after each line end
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === LF || (b === CR && bytes[i + 1] !== LF)) breaks.push(i + 1);
  }
  return (offset) => {
    let lo = 0, hi = breaks.length; // count of breaks <= offset
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (breaks[mid]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}

/** The first offset at or after `i` that is not a line end (blank lines before a record). */
function skipLineEnds(bytes: Uint8Array, i: number): number {
  while (i < bytes.length && (bytes[i] === CR || bytes[i] === LF)) i++;
  return i;
}

/** Walks the record at `i` (which csv-parse refused) to the first strict-RFC 4180 error: its line and why. */
function locateError(bytes: Uint8Array, i: number, lineAt: (offset: number) => number, escaped: boolean): { line: number; why: string } | null {
  const n = bytes.length;
  for (;;) {
    if (bytes[i] === QUOTE) {
      const open = i++;
      for (;;) {
        if (i >= n) return { line: lineAt(open), why: 'unterminated quoted field' };
        if (bytes[i] === QUOTE) {
          if (bytes[i + 1] === QUOTE) { i += 2; continue; }
          i++;
          break;
        }
        i++;
      }
      if (i < n && bytes[i] !== COMMA && bytes[i] !== CR && bytes[i] !== LF) {
        const ch = charAt(bytes, i, escaped);
        return { line: lineAt(i), why: `unexpected character ${JSON.stringify(ch)} after closing quote` };
      }
    } else {
      while (i < n && bytes[i] !== COMMA && bytes[i] !== CR && bytes[i] !== LF) {
        if (bytes[i] === QUOTE) return { line: lineAt(i), why: 'quote inside an unquoted field (quote the whole field and double inner quotes)' };
        i++;
      }
    }
    if (i >= n || bytes[i] !== COMMA) return null; // the record ended without an error
    i++;
  }
}

/** The first UTF-16 unit of the character at byte `i` (what the error message quotes). */
function charAt(bytes: Uint8Array, i: number, escaped: boolean): string {
  const end = (j: number): number => {
    let k = j + 1;
    while (k < bytes.length && (bytes[k]! & 0xc0) === 0x80) k++;
    return k;
  };
  const j = end(i);
  let s = utf8.decode(bytes.subarray(i, j));
  if (escaped && s === MARK) s = utf8.decode(bytes.subarray(i, end(j)));
  return (escaped ? unescapeText(s) : s)[0] ?? '';
}

// What csv-parse cannot take as is survives the parse escaped, by a bijection that leaves quotes,
// commas and line ends where they were: MARK → MARK MARK, a lone surrogate 0xD800 + k → MARK +
// U+F0000 + k (UTF-8 would make it U+FFFD), NUL → MARK + U+F0800 (csv-parse takes a NUL after a
// closing quote for the end of the input).
const MARK = '\u{10FFFF}';
const NUL_CODE = 0xf0800;
// (with the u flag a class of surrogates matches only unpaired ones)
const SPECIAL = /[\uD800-\uDFFF]|\u{10FFFF}|\u0000/u;
const SPECIAL_ALL = /[\uD800-\uDFFF]|\u{10FFFF}|\u0000/gu;
const ESCAPED = /\u{10FFFF}(\u{10FFFF}|[\u{F0000}-\u{F0800}])/gu;

function escapeText(s: string): string {
  return s.replace(SPECIAL_ALL, (m) =>
    m === MARK ? MARK + MARK : MARK + String.fromCodePoint(m === '\u0000' ? NUL_CODE : 0xf0000 + m.charCodeAt(0) - 0xd800));
}

function unescapeText(s: string): string {
  return s.replace(ESCAPED, (_m, c: string) => {
    const cp = c.codePointAt(0)!;
    return c === MARK ? MARK : cp === NUL_CODE ? '\u0000' : String.fromCharCode(0xd800 + cp - 0xf0000);
  });
}

/** Parse CSV text; the first non-empty record is the header. Blank lines are skipped. */
export function parseCsv(text: string, options: CsvOptions = {}): CsvTable {
  const file = options.file ?? '<csv>';
  const strictWidth = options.strictWidth ?? true;
  const { records, lines: starts } = parseCsvRecords(text, file);
  if (records.length === 0) throw new CsvError(file, 1, 'empty CSV (no header row)');
  const header = records[0].map((h) => h.trim());
  const rows = records.slice(1);
  const lines = starts.slice(1);
  if (strictWidth) {
    for (let r = 0; r < rows.length; r++) {
      if (rows[r].length !== header.length) {
        throw new CsvError(file, lines[r], `expected ${header.length} fields (as in the header), found ${rows[r].length}`);
      }
    }
  }
  return { file, header, headerLine: starts[0], rows, lines };
}

/** Read and parse a CSV file (UTF-8). */
export async function readCsv(path: string, options: Omit<CsvOptions, 'file'> = {}): Promise<CsvTable> {
  const text = await readText(path);
  return parseCsv(text, { ...options, file: path });
}

/** Index of each required column; throws naming the missing ones and the columns found. */
export function requireColumns(table: CsvTable, names: readonly string[]): number[] {
  const missing = names.filter((c) => !table.header.includes(c));
  if (missing.length > 0) {
    throw new CsvError(
      table.file,
      table.headerLine,
      `missing column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')}; columns found: ${table.header.map((h) => `"${h}"`).join(', ')}`,
    );
  }
  return names.map((c) => table.header.indexOf(c));
}
