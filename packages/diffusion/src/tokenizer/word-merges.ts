/**
 * BPE merges that make each of a few words a single token, for tokenizers built from scratch
 * (`CLIPTokenizer.byteLevel(wordMerges([...]))`). CLIP's real vocabulary holds every common English
 * word as one token; a byte-level tokenizer spells "rust" as four, and a small text encoder trained
 * from scratch must first learn to compose them before a class word can steer a diffusion model.
 * Words outside the list (a DreamBooth identifier such as "<diseaes-leaf>") stay spelled out, so they
 * remain as rare as they are in CLIP.
 */
import { CLIPTokenizer } from './clip-tokenizer.js';

/**
 * The merges, in rank order: for each word, its characters joined left to right (the last one
 * carrying `</w>`, as CLIP's BPE marks a word's end). A word whose spelling an earlier merge splits
 * differently gets merges for the pieces it actually has, until every word is one token. Words are
 * lowercased and split on whitespace (CLIP's cleaning does the same to prompts).
 */
export function wordMerges(words: Iterable<string>): string[] {
  const list = [...new Set([...words].flatMap((w) => w.toLowerCase().split(/\s+/)).filter((w) => w.length > 1))];
  for (const w of list) {
    if (!/^[a-z0-9]+$/.test(w)) throw new RangeError(`wordMerges: "${w}" is not a plain word (letters and digits; CLIP's pattern splits anything else)`);
  }
  const merges: string[] = [];
  const seen = new Set<string>();
  const add = (a: string, b: string) => {
    const m = `${a} ${b}`;
    if (!seen.has(m)) {
      seen.add(m);
      merges.push(m);
    }
  };
  for (const w of list) {
    const sym = [...w].map((c, i, a) => (i === a.length - 1 ? `${c}</w>` : c));
    let cur = sym[0]!;
    for (const s of sym.slice(1)) {
      add(cur, s);
      cur += s;
    }
  }
  // BPE applies the lowest-ranked pair first, so another word's merge can split a word elsewhere;
  // chain the pieces it ends up with (later ranks cannot undo earlier ones, so this converges)
  for (let round = 0; round < 8; round++) {
    const tok = CLIPTokenizer.byteLevel(merges);
    let done = true;
    for (const w of list) {
      const pieces = tok.encode(w).map((id) => tok.idToToken(id)!);
      if (pieces.length === 1) continue;
      done = false;
      let cur = pieces[0]!;
      for (const p of pieces.slice(1)) {
        add(cur, p);
        cur += p;
      }
    }
    if (done) return merges;
  }
  throw new Error(`wordMerges: could not make every word a single token (${list.join(', ')})`);
}
