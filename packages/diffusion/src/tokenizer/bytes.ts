/**
 * GPT-2/CLIP byte-level alphabet: every byte maps to a printable unicode character, so BPE runs on
 * strings without whitespace or control characters. Printable bytes keep their own code point; the
 * other 68 bytes are moved, in byte order, to U+0100 onwards.
 */
function printable(b: number): boolean {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/** The byte bytes in vocabulary order: printable bytes first, then the moved ones (openai's order). */
const ORDER: readonly number[] = [
  ...Array.from({ length: 256 }, (_, b) => b).filter(printable),
  ...Array.from({ length: 256 }, (_, b) => b).filter((b) => !printable(b)),
];

/** BYTE_ENCODER[b] is the character standing for byte b. */
export const BYTE_ENCODER: readonly string[] = (() => {
  const out = new Array<string>(256);
  let moved = 0;
  for (const b of ORDER) out[b] = printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + moved++);
  return out;
})();

export const BYTE_DECODER: ReadonlyMap<string, number> = new Map(BYTE_ENCODER.map((c, b) => [c, b]));

/** Same as BYTE_ENCODER, under the name the GPT-2 code uses. */
export function bytesToUnicode(): string[] {
  return [...BYTE_ENCODER];
}

/** The 256 byte characters in CLIP's vocabulary order (ids 0..255; ids 256..511 add `</w>`). */
export function byteVocabOrder(): string[] {
  return ORDER.map((b) => BYTE_ENCODER[b]!);
}

const UTF8 = new TextEncoder();

/** A pre-tokenised piece as byte-level characters. */
export function toByteChars(piece: string): string {
  // printable ASCII maps to itself: the common case needs no encoding
  if (/^[\x21-\x7e]*$/.test(piece)) return piece;
  let s = '';
  for (const b of UTF8.encode(piece)) s += BYTE_ENCODER[b];
  return s;
}
