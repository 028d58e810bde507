/**
 * Windows-1252 characters for bytes 0x80–0x9F, "sloppy" as ftfy and Python's html module treat them:
 * the five bytes cp1252 leaves undefined map to the C1 control of the same value.
 */
export const CP1252_HIGH: readonly string[] = Array.from(
  '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ',
);

const TO_BYTE = new Map<string, number>(CP1252_HIGH.map((c, i) => [c, 0x80 + i]));

/** The byte a character has in sloppy Windows-1252 / Latin-1, or -1 if it has none. */
export function sloppyCp1252Byte(ch: string): number {
  const cp = ch.charCodeAt(0);
  if (cp < 0x80 || (cp >= 0xa0 && cp <= 0xff)) return cp;
  return TO_BYTE.get(ch) ?? -1;
}
