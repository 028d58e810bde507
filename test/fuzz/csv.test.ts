/**
 * Fuzz test of the CSV readers (issue 14, item 7): the classifier's parseCsv / readCsv
 * (packages/data/src/csv.ts, the one parser both packages use) and the diffusion trainers' parseCsv, readImageRefsCsv,
 * readCaptionedCsv and readClassImageRefsFromCsv (packages/diffusion/src/training/datasets.ts), on
 * seeded mutations of Plant Pathology 2020 and captioned CSVs: quotes, separators and line ends
 * inserted or deleted, BOMs, NULs, lone surrogates, `../` ids, truncation, splicing, label cells set
 * to edge numbers.
 *
 * Each case ends as a clear error naming the file (CsvError / Error; the in-memory parsers name the
 * file they are given) or a result an independent RFC 4180 parser written here agrees with (strict:
 * a quote inside an unquoted field, text after a closing quote and an unterminated quoted field are
 * errors; blank lines are skipped; a leading BOM is dropped): the same records and lines, and for the
 * image readers every row's image inside its folder and each caption or label as written.
 * CI: 3,000 cases, one in four also from disk (FOLIAR_FUZZ_SCALE multiplies it).
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { parseCsv as parseCsvClassifier, readCsv } from '../../packages/data/src/csv.js';
import { parseCsv as parseCsvDiffusion, readImageRefsCsv, readCaptionedCsv, readClassImageRefsFromCsv } from '../../packages/diffusion/src/training/datasets.js';
import { Mutator, FUZZ_SEED, cases, newStats, runCase, assertClean, EDGE_NUMBERS, type FuzzStats } from './mutator.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-fuzz-csv-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

// ------------------------------------------------------------------ seeds

const PP = ['image_id,healthy,multiple_diseases,rust,scab', 'Train_0,0,0,0,1', 'Train_1,0,1,0,0', 'Train_2,1,0,0,0', 'Train_3,0,0,1,0', 'Train_4,0,1,0,0'];
const SEEDS = [
  PP.join('\n') + '\n',
  PP.join('\r\n'),
  '\ufeff' + PP.join('\r\n') + '\r\n',
  'file_name,text\nleaf-0.png,a photo of a leaf\n"leaf 1.png","a photo, with ""quotes"""\nsub/leaf-2.png,"two\nlines"\n',
  'file_name,text,extra\r\n"a.png",,\r\n\r\nb.png,"x",""\r\n',
];

// ------------------------------------------------------------------ the independent parser (the oracle)

type Ref = { ok: true; records: string[][]; lines: number[] } | { ok: false; line: number; why: string };

/** RFC 4180, strict, written separately from both libraries: one token at a time with sticky regexes. */
function refParse(input: string, stripBom: boolean): Ref {
  const text = stripBom && input.startsWith('\ufeff') ? input.slice(1) : input;
  const records: string[][] = [];
  const lines: number[] = [];
  const quoted = /"((?:[^"]|"")*)"/y;
  const plain = /[^",\r\n]*/y;
  const eol = /\r\n|\n|\r/y;
  let pos = 0, line = 1;
  const breaks = (s: string) => (s.match(/\r\n|\n|\r/g) ?? []).length;
  while (pos < text.length) {
    eol.lastIndex = pos;
    const blank = eol.exec(text);
    if (blank) { // an empty line
      pos += blank[0].length;
      line++;
      continue;
    }
    const start = line;
    const rec: string[] = [];
    for (;;) {
      quoted.lastIndex = pos;
      const q = text[pos] === '"' ? quoted.exec(text) : null;
      if (text[pos] === '"' && !q) return { ok: false, line: start, why: 'unterminated quote' };
      if (q) {
        rec.push(q[1]!.replace(/""/g, '"'));
        line += breaks(q[0]);
        pos += q[0].length;
      } else {
        plain.lastIndex = pos;
        const p = plain.exec(text)!;
        rec.push(p[0]);
        pos += p[0].length;
        if (text[pos] === '"') return { ok: false, line, why: 'quote in an unquoted field' };
      }
      if (pos >= text.length) break;
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      eol.lastIndex = pos;
      const e = eol.exec(text);
      if (!e) return { ok: false, line, why: 'text after a closing quote' };
      pos += e[0].length;
      line++;
      break;
    }
    records.push(rec);
    lines.push(start);
  }
  return { ok: true, records, lines };
}

const eq = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

// ------------------------------------------------------------------ mutations

function mutate(m: Mutator): string {
  const seed = m.pick(SEEDS);
  if (m.chance(0.25)) {
    // a cell replaced by an edge value (labels: 1.0, ' 1', 1e0, 0x1, -0, NaN …; ids: ../x, /etc/passwd …)
    const rows = seed.split(/(\r\n|\n)/);
    const i = 2 * m.int(Math.ceil(rows.length / 2));
    const cells = (rows[i] ?? '').split(',');
    cells[m.int(cells.length)] = m.chance(0.5) ? String(m.pick(EDGE_NUMBERS)) : m.pick(['1.0', ' 1', '1 ', '1e0', '0x1', '-0', 'NaN', '', '../x', '../../etc/passwd', '/abs.png', 'C:\\x.png', 'a\u0000b', '.', 'sub/../y']);
    rows[i] = cells.join(',');
    return rows.join('');
  }
  return m.text(seed, SEEDS, 4);
}

// ------------------------------------------------------------------ the test

async function fileCases(m: Mutator, text: string, c: number, stats: FuzzStats): Promise<void> {
  const path = join(tmp, `case-${c}.csv`);
  writeFileSync(path, text);
  // what reading the file back gives (a lone surrogate is written as U+FFFD)
  const ref = refParse(Buffer.from(text, 'utf8').toString('utf8'), true);
  const header = ref.ok && ref.records.length ? ref.records[0]!.map((h) => h.trim()) : [];
  const body = ref.ok ? ref.records.slice(1) : [];
  const widthOk = ref.ok && ref.records.length > 0 && body.every((r) => r.length === header.length);
  const base = resolve(tmp);
  const inside = (p: string, dir: string) => p.startsWith(dir + sep);
  // the classifier's file reader
  await runCase(stats, text, () => readCsv(path), {
    source: path,
    check: (t) => (!widthOk ? 'accepted a CSV the reference refuses' : !eq(t.header, header) || !eq(t.rows, body) ? 'records differ from the reference' : null),
  });
  // the diffusion readers
  const col = (name: string) => header.indexOf(name);
  await runCase(stats, text, () => readImageRefsCsv(path, { imageColumn: m.pick(['image_id', 'file_name']), imageExt: '.jpg' }), {
    source: path,
    check: (refs) => {
      if (!widthOk) return 'accepted a CSV the reference refuses';
      if (refs.length !== body.length || !body.length) return `${refs.length} images for ${body.length} rows`;
      return refs.every((r) => inside(r.path, base) && (r.listedAt ?? '').includes(path)) ? null : 'an image outside the CSV folder, or unnamed';
    },
  });
  await runCase(stats, text, () => readCaptionedCsv(path), {
    source: path,
    check: (caps) => {
      if (!widthOk) return 'accepted a CSV the reference refuses';
      const t = col('text');
      if (caps.length !== body.length) return `${caps.length} captions for ${body.length} rows`;
      return caps.every((x, i) => x.caption === body[i]![t] && inside(x.image, base)) ? null : 'captions differ from the reference';
    },
  });
  const cls = m.pick(['rust', 'multiple_diseases', 'healthy']);
  await runCase(stats, text, () => readClassImageRefsFromCsv(path, cls), {
    source: path,
    check: (refs) => {
      if (!widthOk) return 'accepted a CSV the reference refuses';
      const want = body.filter((r) => Number(r[col(cls)]) === 1).length;
      return refs.length === want && refs.every((r) => inside(r.path, join(base, 'images'))) ? null : `${refs.length} '${cls}' images, the reference finds ${want}`;
    },
  });
  rmSync(path);
}

test('CSV readers: seeded mutations end as a clear error naming the file or the records a strict RFC 4180 parser reads', async () => {
  const cls = newStats('csv classifier parseCsv');
  const dif = newStats('csv diffusion parseCsv');
  const files = newStats('csv readers (files)');
  const m = new Mutator(FUZZ_SEED * 15485863 + 3);
  for (const s of SEEDS) {
    const r = refParse(s, true);
    assert.ok(r.ok, 'seed parses');
    assert.equal(parseCsvClassifier(s).rows, (r as { records: string[][] }).records.slice(1));
  }
  const N = cases(3000);
  for (let c = 0; c < N; c++) {
    const text = mutate(m);
    const file = `case-${c}.csv`;
    const ref = refParse(text, true);
    // the classifier's parser: records (header trimmed), their lines, the header's width kept by every row
    await runCase(cls, text, () => parseCsvClassifier(text, { file, strictWidth: m.chance(0.5) }), {
      source: file,
      check: (t) => {
        if (!ref.ok) return `accepted, the reference refuses (${ref.why}, line ${ref.line})`;
        if (!ref.records.length) return 'accepted an empty CSV';
        const recs = [t.header, ...t.rows], want = [ref.records[0]!.map((h) => h.trim()), ...ref.records.slice(1)];
        if (!eq(recs, want)) return `records ${JSON.stringify(recs).slice(0, 120)} vs ${JSON.stringify(want).slice(0, 120)}`;
        return eq([t.headerLine, ...t.lines], ref.lines) ? null : `lines ${[t.headerLine, ...t.lines]} vs ${ref.lines}`;
      },
    });
    // the diffusion trainers' parser: the same records (nothing trimmed)
    await runCase(dif, text, () => parseCsvDiffusion(text, file), {
      source: file,
      check: (rows) => (!ref.ok ? `accepted, the reference refuses (${ref.why}, line ${ref.line})` : eq(rows, ref.records) ? null : `records ${JSON.stringify(rows).slice(0, 120)} vs ${JSON.stringify(ref.records).slice(0, 120)}`),
    });
    if (c % 4 === 0) await fileCases(m, text, c, files);
  }
  const failures: string[] = [];
  for (const s of [cls, dif, files]) {
    try {
      assertClean(s);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  assert.equal(failures, [], failures.join('\n'));
});

test('regression: the diffusion CSV parser refuses an unclosed quote (it read every later row into one caption), a stray quote and text after a closing quote, naming file and line', async () => {
  const path = join(tmp, 'captions.csv');
  writeFileSync(path, 'file_name,text\na.png,"a leaf\nb.png,second leaf\nc.png,third\n');
  let msg = '';
  try {
    await readCaptionedCsv(path);
  } catch (e) {
    msg = (e as Error).message;
  }
  // one parser for both packages (@foliar/data): its CsvError names file and line as `<file>:<line>:`
  assert.is(msg, `${path}:2: unterminated quoted field`);
  assert.throws(() => parseCsvDiffusion('a,b\n1,x"y\n', 'z.csv'), /^z\.csv:2: quote inside an unquoted field/);
  assert.throws(() => parseCsvDiffusion('a,b\n"1"x,2\n', 'z.csv'), /^z\.csv:2: unexpected character "x" after closing quote/);
  // what it read before still reads the same (quoted separators and line ends, doubled quotes, CRLF, blank lines); a BOM goes, a lone "" is a row
  assert.equal(parseCsvDiffusion('\ufeffa,b\r\n"x, ""y""","2\r\n3"\n\n""\n'), [['a', 'b'], ['x, "y"', '2\r\n3'], ['']]);
});

test.run();
