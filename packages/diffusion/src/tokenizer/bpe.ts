/**
 * CLIP's byte-pair merge loop over one pre-tokenised, byte-encoded word: the last symbol carries the
 * end-of-word suffix `</w>`, then the lowest-ranked adjacent pair is merged everywhere (left to right)
 * until no pair has a rank. Results are cached per word, since prompts repeat words.
 */
export class BytePairMerger {
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, readonly string[]>();

  /** `merges`: lines "left right", highest priority first (already without the '#version' header). */
  constructor(merges: readonly string[], source = 'merges') {
    this.ranks = new Map();
    for (let i = 0; i < merges.length; i++) {
      const m = merges[i]!;
      const sp = m.indexOf(' ');
      if (sp <= 0 || sp === m.length - 1 || m.indexOf(' ', sp + 1) !== -1) {
        throw new Error(`${source}: merge ${i + 1} is not two space-separated symbols: ${JSON.stringify(m)}`);
      }
      // later duplicates never win: the first (lowest) rank is what both references use
      if (!this.ranks.has(m)) this.ranks.set(m, i);
    }
  }

  get size(): number {
    return this.ranks.size;
  }

  /** Symbols of `word` (byte-level characters, all in the BMP) after merging. */
  merge(word: string): readonly string[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    let symbols: string[] = word.length === 1 ? [`${word}</w>`] : [...word.slice(0, -1)];
    if (word.length > 1) symbols.push(`${word[word.length - 1]}</w>`);
    while (symbols.length > 1) {
      let bestRank = Infinity;
      let a = '';
      let b = '';
      for (let i = 0; i < symbols.length - 1; i++) {
        const r = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          a = symbols[i]!;
          b = symbols[i + 1]!;
        }
      }
      if (bestRank === Infinity) break;
      const next: string[] = [];
      for (let i = 0; i < symbols.length; ) {
        if (i < symbols.length - 1 && symbols[i] === a && symbols[i + 1] === b) {
          next.push(a + b);
          i += 2;
        } else next.push(symbols[i++]!);
      }
      symbols = next;
    }
    // a long-running process tokenising arbitrary text must not grow without bound
    if (this.cache.size >= 65536) this.cache.clear();
    this.cache.set(word, symbols);
    return symbols;
  }
}
