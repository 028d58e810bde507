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
    if (symbols.length > LONG_WORD) symbols = this.mergeLong(symbols);
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

  /**
   * The same merges as the loop in `merge` in O(n log n) instead of O(n²) (a 50,000-letter word took
   * seconds, a megabyte of caption junk would take an hour): the symbols are a linked list, each pair
   * with a rank keeps the set of its occurrences, and a heap yields the lowest-ranked pair present.
   * Like the loop, each round takes that pair and merges its occurrences left to right, skipping one
   * that overlaps the previous ("a a a" -> "aa a"); a merge cannot create another occurrence of the
   * same pair (a+b is neither a nor b), so the occurrences found at the round's start are all there are.
   * Ranks are distinct, so the order of rounds is the loop's. Returns the fully merged symbols.
   */
  private mergeLong(symbols: string[]): string[] {
    const n = symbols.length;
    const sym = symbols.slice();
    const prev = new Int32Array(n), next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const alive = new Uint8Array(n).fill(1);
    // occurrences of each ranked pair, by the id of its left node (ids grow along the list: a merge keeps the left id)
    const occ = new Map<string, Set<number>>();
    const heap = new RankHeap();
    const key = (l: number) => `${sym[l]} ${sym[next[l]!]}`;
    const add = (l: number) => {
      if (l < 0 || next[l]! < 0) return;
      const k = key(l);
      const rank = this.ranks.get(k);
      if (rank === undefined) return;
      let set = occ.get(k);
      if (!set) {
        occ.set(k, (set = new Set()));
        heap.push(rank, sym[l]!, sym[next[l]!]!);
      }
      set.add(l);
    };
    const remove = (l: number) => {
      if (l >= 0 && next[l]! >= 0) occ.get(key(l))?.delete(l);
    };
    for (let i = 0; i + 1 < n; i++) add(i);
    while (heap.size) {
      const { a, b } = heap.pop();
      const k = `${a} ${b}`;
      const set = occ.get(k);
      occ.delete(k);
      if (!set || !set.size) continue;
      for (const l of [...set].sort((x, y) => x - y)) {
        const r = next[l]!;
        // consumed by the previous merge of this round, or changed since
        if (!alive[l] || r < 0 || sym[l] !== a || sym[r] !== b) continue;
        remove(prev[l]!);
        remove(r);
        sym[l] = a + b;
        alive[r] = 0;
        next[l] = next[r]!;
        if (next[r]! >= 0) prev[next[r]!] = l;
        add(prev[l]!);
        add(l);
      }
    }
    const out: string[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out;
  }
}

/** Words longer than this (in symbols) merge through the heap; shorter ones through the plain loop. */
const LONG_WORD = 64;

/** A binary min-heap of (rank, left, right) pairs. */
class RankHeap {
  private ranks: number[] = [];
  private pairs: [string, string][] = [];
  get size(): number {
    return this.ranks.length;
  }
  push(rank: number, a: string, b: string): void {
    const r = this.ranks, p = this.pairs;
    let i = r.length;
    r.push(rank);
    p.push([a, b]);
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (r[up]! <= rank) break;
      r[i] = r[up]!;
      p[i] = p[up]!;
      i = up;
    }
    r[i] = rank;
    p[i] = [a, b];
  }
  pop(): { rank: number; a: string; b: string } {
    const r = this.ranks, p = this.pairs;
    const top = { rank: r[0]!, a: p[0]![0], b: p[0]![1] };
    const lastR = r.pop()!, lastP = p.pop()!;
    if (r.length) {
      let i = 0;
      for (;;) {
        const c = 2 * i + 1;
        if (c >= r.length) break;
        const m = c + 1 < r.length && r[c + 1]! < r[c]! ? c + 1 : c;
        if (r[m]! >= lastR) break;
        r[i] = r[m]!;
        p[i] = p[m]!;
        i = m;
      }
      r[i] = lastR;
      p[i] = lastP;
    }
    return top;
  }
}
