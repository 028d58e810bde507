/**
 * Text normalisation before pre-tokenisation.
 *
 * 'transformers' (default; what diffusers runs): the tokenizers-backend CLIPTokenizer normalizer —
 *   NFC, every whitespace run -> one space, lowercase code point by code point (Rust's
 *   `char::to_lowercase`, so 'Σ' is always 'σ', never the final 'ς').
 * 'openai': openai/CLIP's `basic_clean` + `whitespace_clean` + `lower()` — ftfyLite (the subset of
 *   ftfy.fix_text documented in ftfy-lite.ts), Python's `html.unescape` twice, whitespace collapse,
 *   strip, Python's `str.lower()` (with the final-sigma rule).
 */
import { ftfyLite } from './ftfy-lite.js';
import { htmlUnescape } from './html-entities.js';

export type Cleaning = 'transformers' | 'openai';

/**
 * Unicode White_Space — what `\s` means in the Rust/Oniguruma and Python `regex` patterns the
 * references use. JS's `\s` differs (it adds U+FEFF and lacks U+0085), so it is spelled out.
 */
export const WHITESPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUN = new RegExp(`[${WHITESPACE}]+`, 'g');

export function cleanText(text: string, mode: Cleaning): string {
  if (mode === 'openai') {
    let t = htmlUnescape(htmlUnescape(ftfyLite(text)));
    t = t.replace(WS_RUN, ' ').trim();
    return t.toLowerCase();
  }
  const t = text.normalize('NFC').replace(WS_RUN, ' ');
  return t.includes('Σ') ? t.replace(/Σ/g, 'σ').toLowerCase() : t.toLowerCase();
}
