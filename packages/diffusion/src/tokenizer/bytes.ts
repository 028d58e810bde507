/**
 * GPT-2/CLIP byte-level alphabet: every byte maps to a printable unicode character, so BPE runs on
 * strings without whitespace or control characters.
 */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

/** The byte characters in vocabulary order (printable bytes first, as openai's dict preserves). */
export function byteVocabOrder(): string[] {
  const enc = bytesToUnicode();
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) bs.push(b);
  return bs.map((b) => enc[b]!);
}

export const BYTE_ENCODER = bytesToUnicode();
export const BYTE_DECODER = new Map(BYTE_ENCODER.map((c, b) => [c, b]));
