/**
 * The part of ftfy 6's `fix_text` (default settings) that changes real prompts, re-implemented for the
 * 'openai' cleaning mode. Covered, in ftfy's order, repeated until the text stops changing:
 *  1. `unescape_html`: ';'-terminated entities, only when the text has no '<' (see html-entities.ts);
 *  2. `fix_encoding`, subset: UTF-8 read as Latin-1 / Windows-1252 ("cafÃ©" -> "café",
 *     "itâ€™s" -> "it’s"), decoded per well-formed 2–4 byte sequence, and only when the text shows one
 *     of ftfy's blatant clues (Â or Ã before a continuation byte, "â€", "ðŸ"). Not covered: the other
 *     legacy code pages (cp1251, cp437, MacRoman …), ftfy's badness scoring, lossy/altered sequences
 *     (U+FFFD, 0xA0 turned into a space), CESU-8 and Java's modified UTF-8;
 *  3. `fix_c1_controls`: U+0080–U+009F -> their Windows-1252 characters;
 *  4. `fix_latin_ligatures`: ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ Ĳ ĳ ŉ and the Serbo-Croatian digraphs Ǳ…ǌ;
 *  5. `fix_character_width`: U+FF01–U+FFEF to their NFKC form (fullwidth ASCII, halfwidth katakana and
 *     hangul), U+3000 to a space;
 *  6. `uncurl_quotes`: U+02BC and U+2018–U+201B -> ', U+201C–U+201F -> ";
 *  7. `fix_surrogates` (lone surrogates -> U+FFFD), `remove_terminal_escapes` (ANSI "ESC[…m"),
 *     `remove_control_chars` (C0 controls other than \t \n \f \r, DEL, U+206A–U+206F, U+FEFF,
 *     U+FFF9–U+FFFC);
 *  8. NFC.
 * `fix_line_breaks` is omitted because every line break is whitespace the tokenizer collapses anyway.
 */
import { CP1252_HIGH, sloppyCp1252Byte } from './cp1252.js';
import { ftfyUnescape } from './html-entities.js';

const LIGATURES: Record<string, string> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn', 'Ǳ': 'DZ', 'ǲ': 'Dz', 'ǳ': 'dz', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž',
  'Ǉ': 'LJ', 'ǈ': 'Lj', 'ǉ': 'lj', 'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj',
  'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'g');

// A lead character followed by the right number of continuation characters, all as cp1252 bytes.
const CONT = `[\\u0080-\\u00bf${CP1252_HIGH.join('')}]`;
const SEQ_RE = new RegExp(`[\\u00c2-\\u00df]${CONT}|[\\u00e0-\\u00ef]${CONT}{2}|[\\u00f0-\\u00f4]${CONT}{3}`, 'g');
const CLUE_RE = new RegExp(`[ÂÃ]${CONT}|â€|ðŸ`);
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function fixMojibake(s: string): string {
  if (!CLUE_RE.test(s)) return s;
  return s.replace(SEQ_RE, (seq) => {
    const bytes = Uint8Array.from(Array.from(seq, sloppyCp1252Byte));
    try {
      return UTF8.decode(bytes);
    } catch {
      return seq; // not well-formed UTF-8 (overlong, surrogate …): leave it
    }
  });
}

const step = (s: string, unescape: boolean): string => {
  let t = unescape ? ftfyUnescape(s) : s;
  t = fixMojibake(t);
  t = t.replace(/[\u0080-\u009f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]!);
  t = t.replace(LIGATURE_RE, (c) => LIGATURES[c]!);
  t = t.replace(/[\uff01-\uffef]/g, (c) => c.normalize('NFKC')).replace(/\u3000/g, ' ');
  t = t.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
  t = t.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  t = t.replace(/\u001b\[[\d;]*[a-zA-Z]/g, '');
  // eslint-disable-next-line no-control-regex
  t = t.replace(/[\u0000-\u0008\u000b\u000e-\u001f\u007f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, '');
  return t.normalize('NFC');
};

/** ftfy.fix_text restricted to the fixes listed above (repeated until stable, at most 8 rounds). */
export function ftfyLite(text: string): string {
  let t = text;
  // decided once on the input, as fix_text does, although the loop below may create '<'
  const unescape = !text.includes('<');
  for (let i = 0; i < 8; i++) {
    const next = step(t, unescape);
    if (next === t) break;
    t = next;
  }
  return t;
}
