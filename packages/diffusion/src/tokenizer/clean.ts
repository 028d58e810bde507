/**
 * Text normalisation. foliar follows transformers' CLIPTokenizer (what diffusers runs): NFC, whitespace
 * runs collapsed to one space, lowercase. openai's tokenizer additionally runs ftfy.fix_text and
 * html.unescape twice; the 'openai' mode here reproduces the HTML unescaping and the ftfy fixes that
 * matter for prompts (curly quotes uncurled, fullwidth characters made halfwidth, Latin ligatures
 * expanded, and mojibake of UTF-8 read as Latin-1 repaired for 2-byte sequences) — not the whole of ftfy.
 */
export type Cleaning = 'transformers' | 'openai';

const NAMED: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '©', reg: '®', hellip: '…',
  mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', eacute: 'é', egrave: 'è',
  agrave: 'à', ccedil: 'ç', uuml: 'ü', ouml: 'ö', auml: 'ä', szlig: 'ß', deg: '°', times: '×',
};

export function htmlUnescape(s: string): string {
  return s.replace(/&(#\d+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);/g, (m, body: string) => {
    if (body[0] === '#') {
      const cp = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
    }
    return NAMED[body] ?? m;
  });
}

/** UTF-8 bytes that were decoded as Latin-1/cp1252 (e.g. "cafÃ©" → "café"). */
function fixMojibake(s: string): string {
  if (!/[ÃÂ][\u0080-\u00bf]/.test(s)) return s;
  return s.replace(/[\u00c2-\u00df][\u0080-\u00bf]/g, (pair) => {
    const b0 = pair.charCodeAt(0), b1 = pair.charCodeAt(1);
    return String.fromCodePoint(((b0 & 0x1f) << 6) | (b1 & 0x3f));
  });
}

const LIGATURES: Record<string, string> = { 'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st' };

/** ftfy's default fixes that change prompts: uncurl quotes, halfwidth characters, Latin ligatures. */
function ftfyBasics(s: string): string {
  return s
    .replace(/[‘’‚‛]/g, "'")
    .replace(/[“”„‟]/g, '"')
    .replace(/[\uff01-\uff5e]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0))
    .replace(/\u3000/g, ' ')
    .replace(/[ﬀ-ﬆ]/g, (c) => LIGATURES[c] ?? c);
}

export function cleanText(text: string, mode: Cleaning): string {
  let t = text;
  if (mode === 'openai') {
    t = ftfyBasics(fixMojibake(t)).normalize('NFC');
    t = htmlUnescape(htmlUnescape(t));
    return t.replace(/\s+/g, ' ').trim().toLowerCase();
  }
  return t.normalize('NFC').replace(/\s+/g, ' ').toLowerCase();
}
