// The one CSV parser of foliar (the classifier's layouts and the diffusion trainers' caption and
// class-image CSVs): strict RFC 4180 — quoted fields (with "" escapes and embedded newlines),
// CRLF/LF/CR line ends, a leading UTF-8 BOM dropped, blank lines skipped. A quote inside an unquoted
// field, text after a closing quote and an unterminated quoted field are errors naming file and line
// (read on, an unclosed quote would swallow every row after it into one field).
import { readFile } from 'node:fs/promises';

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

/** CSV text → its records (blank lines skipped) and the 1-based line each starts on; no header handling. */
export function parseCsvRecords(text: string, file = '<csv>'): { records: string[][]; lines: number[] } {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);

  const records: string[][] = [];
  const starts: number[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const recordLine = line;
    const fields: string[] = [];
    let field = '';
    let endOfRecord = false;
    let atFieldStart = true;
    let sawAnything = false; // distinguishes a blank line from a record with one empty field
    while (i < n && !endOfRecord) {
      const ch = text[i];
      if (ch === '"' && atFieldStart) {
        // Quoted field.
        const quoteLine = line;
        i++;
        let closed = false;
        while (i < n) {
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
            i++;
            closed = true;
            break;
          }
          if (c === '\r') { line++; if (text[i + 1] === '\n') { field += '\r\n'; i += 2; } else { field += '\r'; i++; } continue; }
          if (c === '\n') line++;
          field += c;
          i++;
        }
        if (!closed) throw new CsvError(file, quoteLine, 'unterminated quoted field');
        atFieldStart = false;
        sawAnything = true;
        const after = text[i];
        if (i < n && after !== ',' && after !== '\n' && after !== '\r') {
          throw new CsvError(file, line, `unexpected character ${JSON.stringify(after)} after closing quote`);
        }
        continue;
      }
      if (ch === ',') { fields.push(field); field = ''; atFieldStart = true; sawAnything = true; i++; continue; }
      if (ch === '\r' || ch === '\n') {
        i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
        line++;
        endOfRecord = true;
        continue;
      }
      if (ch === '"') throw new CsvError(file, line, 'quote inside an unquoted field (quote the whole field and double inner quotes)');
      field += ch;
      atFieldStart = false;
      sawAnything = true;
      i++;
    }
    if (!sawAnything) continue; // blank line
    fields.push(field);
    records.push(fields);
    starts.push(recordLine);
  }
  return { records, lines: starts };
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
  const text = await readFile(path, 'utf8');
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
