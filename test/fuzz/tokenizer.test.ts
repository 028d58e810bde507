/**
 * Fuzz test of the CLIP tokenizer (issue 14, item 7).
 *
 * Text: arbitrary Unicode (every plane, lone surrogates, controls, combining marks, emoji, HTML
 * entities, mojibake, the special tokens, long words) and mutated prompts, through byte-level
 * tokenizers with learned merges in both cleaning modes, one with added tokens, and openai's full
 * vocabulary when ../shared has it. Every id must be in the vocabulary, `call` must give rows of
 * maxLength with bos/eos and a matching mask, and decode(encode(text)) must give back the cleaned
 * text (whitespace aside). Text cases are synchronous: one slower than 2 s counts as a hang.
 * The merge loop is also checked against openai's reference loop (bpe() of simple_tokenizer.py,
 * written out here) on random words and random merge lists.
 *
 * Files: mutated tokenizer folders (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, added_tokens.json) through CLIPTokenizer.fromFolder (5 s timeout), and
 * mutated vocab/merges through fromVocabAndMerges: a clear error naming the file (or 'vocab' /
 * 'merges' in memory), or a tokenizer that encodes, calls and decodes a few prompts with valid ids.
 * CI: 1,500 texts + 400 with the full vocabulary, 1,500 merge-loop words + 60 with the full merges,
 * 600 + 200 folders (the second set from ../shared's tiny-sd tokenizer) and about as many in-memory
 * vocabularies, ~10 s (FOLIAR_FUZZ_SCALE multiplies them). The parts that need ../shared skip without it.
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { CLIPTokenizer, cleanText, type Cleaning } from '@foliar/diffusion';
import { BytePairMerger } from '../../packages/diffusion/src/tokenizer/bpe.js';
import { byteVocabOrder, toByteChars } from '../../packages/diffusion/src/tokenizer/bytes.js';
import { Mutator, FUZZ_SEED, cases, newStats, runCase, assertClean, randomChar, type FuzzStats } from './mutator.js';
import { shared, prng, skip } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-fuzz-tok-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const PROMPTS = [
  'a photo of a <sks> leaf', 'A Photo of an APPLE leaf with Rust, scab & spots!', "it's the leaf's 2nd photo — isn't it?", 'cafÃ© itâ€™s ðŸ˜€ &amp; &lt;b&gt; &#x1F600; &#0; &#99999999;',
  'ＦＵＬＬ　ｗｉｄｔｈ ﬁne ﬂower', 'Σίσυφος ΣΑΣ İstanbul ǅ', '<|startoftext|>hello<|endoftext|> <|endoftext|>', 'emoji 👩‍👩‍👧 🇫🇷 e\u0301 \u202eabc',
  'multiple_diseases  rust\tscab\nhealthy\u00a0leaf\u3000x', 'numbers 12345 3.14 1e-5 0x1F', '\u0000\u001b[31mred\u001b[0m\ufeff\u200b', '',
];

// ------------------------------------------------------------------ tokenizers

/** Merges learned from a small corpus, as BPE training would (most frequent pair first). */
function learnMerges(corpus: string, k: number): string[] {
  let words = corpus.toLowerCase().split(/\s+/).filter(Boolean).map((w) => {
    const s = [...toByteChars(w)];
    s[s.length - 1] += '</w>';
    return s;
  });
  const merges: string[] = [];
  for (let it = 0; it < k; it++) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) counts.set(`${w[i]} ${w[i + 1]}`, (counts.get(`${w[i]} ${w[i + 1]}`) ?? 0) + 1);
    let best = '', n = 0;
    for (const [p, c] of counts) if (c > n || (c === n && p < best)) [best, n] = [p, c];
    if (!best) break;
    merges.push(best);
    const [a, b] = best.split(' ') as [string, string];
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w[i]!);
      }
      return out;
    });
  }
  return merges;
}

const CORPUS = `a photo of a leaf with rust and scab spots healthy apple leaves multiple diseases on the leaf surface
the leaves of the apple tree photographed in the orchard rust spots are orange scab is dark the photo shows a single leaf
aaaa aaa aa banana bandana ananas ${PROMPTS.join(' ')}`;

// ------------------------------------------------------------------ references

/** openai/CLIP simple_tokenizer.bpe(), the loop every merge of `BytePairMerger` must agree with. */
function referenceBpe(ranks: Map<string, number>, word: string): string[] {
  let symbols: string[] = [...word.slice(0, -1), `${word[word.length - 1]}</w>`];
  if (word.length === 1) symbols = [`${word}</w>`];
  for (;;) {
    let best: [string, string] | null = null, bestRank = Infinity;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const r = ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
      if (r !== undefined && r < bestRank) [best, bestRank] = [[symbols[i]!, symbols[i + 1]!], r];
    }
    if (!best) return symbols;
    const out: string[] = [];
    for (let i = 0; i < symbols.length; ) {
      if (i + 1 < symbols.length && symbols[i] === best[0] && symbols[i + 1] === best[1]) {
        out.push(best[0] + best[1]);
        i += 2;
      } else out.push(symbols[i++]!);
    }
    symbols = out;
    if (symbols.length === 1) return symbols;
  }
}

const WS = /[\t\n\v\f\r\x1c-\x1f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g;
const LONE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** What decode(encode(text)) should read, whitespace aside: special tokens as they are, the rest cleaned. */
function expectedText(text: string, cleaning: Cleaning, specials: string[]): string {
  const re = new RegExp(specials.sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  let out = '', last = 0;
  for (const m of text.matchAll(re)) {
    out += cleanText(text.slice(last, m.index), cleaning) + m[0];
    last = m.index + m[0].length;
  }
  out += cleanText(text.slice(last), cleaning);
  return out.replace(LONE, '\ufffd').replace(WS, '');
}

interface Named { name: string; tok: CLIPTokenizer; specials: string[] }

/** Null when the tokenizer's handling of `text` is right, else what is wrong. */
function checkText(t: Named, text: string): string | null {
  const ids = t.tok.encode(text);
  if (!ids.every((id) => Number.isInteger(id) && id >= 0)) return 'an id that is not a non-negative integer';
  t.tok.decode(ids); // throws on an id outside the vocabulary
  const maxLength = 1 + Math.min(76, (text.length % 76) + 2);
  const enc = t.tok.call([text, 'x'], { maxLength });
  for (const [r, row] of enc.inputIds.entries()) {
    const mask = enc.attentionMask[r]!;
    const real = mask.filter((x) => x === 1).length;
    if (row.length !== maxLength || mask.length !== maxLength) return `call: row of ${row.length}, expected ${maxLength}`;
    if (row[0] !== t.tok.bosTokenId || row[real - 1] !== t.tok.eosTokenId || mask.some((x, i) => x !== (i < real ? 1 : 0))) return 'call: bos/eos/mask wrong';
  }
  if (enc.inputIds[0]!.slice(1, enc.attentionMask[0]!.filter((x) => x === 1).length - 1).some((id, i) => id !== ids[i])) return 'call: ids differ from encode';
  const back = t.tok.decode(ids).replace(WS, '');
  const cleaned = expectedText(text, t.tok.cleaning, t.specials);
  // a literal "</w>" in the text reads as a word end when decoded: no round trip to expect there
  if (!cleaned.includes('</') && back !== cleaned) return `decode(encode(text)) = ${JSON.stringify(back).slice(0, 80)}, expected ${JSON.stringify(cleaned).slice(0, 80)}`;
  return null;
}

// ------------------------------------------------------------------ inputs

function randomText(m: Mutator): string {
  switch (m.int(6)) {
    case 0: return Array.from({ length: m.int(60) }, () => randomChar(m)).join('');
    case 1: return m.text(m.pick(PROMPTS), PROMPTS, 5);
    case 2: return Array.from({ length: 1 + m.int(8) }, () => m.pick(['&amp;', '&#x1F600;', '&#0;', '&#xD800;', '&#128;', '&lt;', '&gt;', '&nbsp;', 'Ã©', 'â€™', 'ðŸ˜€', 'Â', '&', '#', ';', 'x', ' '])).join('');
    case 3: return Array.from({ length: 1 + m.int(10) }, () => m.pick(['<|startoftext|>', '<|endoftext|>', '<sks>', '<SKS>', '<|special|>', ' ', 'a', '<|', '|>'])).join('');
    case 4: {
      // a long word: the merge loop's worst case (one in twenty 50,000 characters: a caption file's junk)
      const alpha = m.pick(['abcdefghijklmnopqrstuvwxyz', 'ab', 'a', 'éüß', '漢字仮名', '😀🍎']);
      return Array.from({ length: m.chance(0.05) ? 50_000 : 200 + m.int(1800) }, () => [...alpha][m.int([...alpha].length)]).join('');
    }
    default: return m.pick(PROMPTS);
  }
}

// ------------------------------------------------------------------ the tests

/** Fuzzes `toks` with `n` texts; throws with the report unless every case was right. */
async function fuzzText(toks: Named[], n: number, seed: number): Promise<void> {
  const m = new Mutator(seed);
  const all: FuzzStats[] = toks.map((t) => newStats(`tokenizer text (${t.name})`));
  for (let c = 0; c < n; c++) {
    const text = randomText(m);
    const i = m.int(toks.length);
    const t = toks[i]!;
    // '<sks>' (a normalized added token) is matched after cleaning: leave it out of the round trip
    await runCase(all[i]!, text, () => {
      try {
        return t.tok.addedTokens.includes('<sks>') && cleanText(text, t.tok.cleaning).includes('<sks>') ? (t.tok.encode(text), null) : checkText(t, text);
      } catch (e) {
        // no text is an error: a library error is a wrong result here, an engine error a crash
        if (e instanceof Error && e.constructor === Error) return `threw: ${e.message}`;
        throw e;
      }
    }, { timeoutMs: 2000, check: (wrong) => wrong });
  }
  const failures: string[] = [];
  for (const s of all) {
    try {
      assertClean(s);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  assert.equal(failures, [], failures.join('\n'));
}

const SPECIALS = ['<|startoftext|>', '<|endoftext|>'];

test('text: arbitrary Unicode and mutated prompts encode to valid ids, call to well-formed rows and decode back to the cleaned text', async () => {
  const merges = learnMerges(CORPUS, 300);
  const added = CLIPTokenizer.byteLevel(merges, { addedTokens: [{ content: '<|special|>', special: true }] });
  added.addTokens(['<sks>']);
  await fuzzText([
    { name: 'byte-level, transformers cleaning', tok: CLIPTokenizer.byteLevel(merges), specials: SPECIALS },
    { name: 'byte-level, openai cleaning', tok: CLIPTokenizer.byteLevel(merges, { cleaning: 'openai' }), specials: SPECIALS },
    { name: 'byte-level with added tokens', tok: added, specials: [...SPECIALS, '<|special|>'] },
  ], cases(1500), FUZZ_SEED * 31337 + 5);
});

/** openai's merges file from ../shared, or a skip of the running test. */
function fullMergesFile(): string {
  const golden = shared('golden/clip_tokenizer', 'the full CLIP vocabulary');
  if (!golden) skip('../shared/golden not found: the full CLIP vocabulary is not fuzzed', 'shared');
  return join(golden, 'bpe_simple_vocab_16e6.txt.gz');
}

test("text: the same with openai's full vocabulary (49,408 tokens)", async () => {
  const tok = await CLIPTokenizer.fromMergesGz(fullMergesFile());
  await fuzzText([{ name: "openai's full vocabulary", tok, specials: SPECIALS }], cases(400), FUZZ_SEED * 271 + 3);
});

test('merge loop: the same symbols as openai\'s reference loop on random words and random merge lists', async () => {
  const stats = newStats('tokenizer merge loop');
  const m = new Mutator(FUZZ_SEED * 7 + 99);
  const alphabet = ['a', 'b', 'c', 'd', 'é', 'Ġ'].map((c) => toByteChars(c));
  const realMerges = learnMerges(CORPUS, 300);
  const N = cases(1500);
  for (let c = 0; c < N; c++) {
    let merges: string[];
    if (m.chance(0.3)) merges = realMerges;
    else {
      // random merges over a small alphabet, longer symbols built from earlier ones (and some that never can be)
      const syms = [...alphabet, ...alphabet.map((x) => `${x}</w>`)];
      merges = [];
      for (let k = 0; k < 5 + m.int(60); k++) {
        const a = m.pick(syms), b = m.pick(syms.filter((s) => !s.endsWith('</w>') || m.chance(0.5)));
        if (a.endsWith('</w>')) continue;
        merges.push(`${a} ${b}`);
        if (m.chance(0.7)) syms.push(a + b);
      }
    }
    const ranks = new Map<string, number>();
    merges.forEach((x, i) => { if (!ranks.has(x)) ranks.set(x, i); });
    const merger = new BytePairMerger(merges);
    // half of them longer than the 64 symbols beyond which the heap takes over from the plain loop
    const letters = m.chance(0.5) ? alphabet.map((x) => x[0]!) : m.pick([['a'], ['a', 'b'], ['a', 'b', 'c']]);
    const word = Array.from({ length: 1 + (m.chance(0.5) ? 60 + m.int(m.chance(0.1) ? 5000 : 300) : m.int(64)) }, () => m.pick(letters)).join('');
    await runCase(stats, word, () => merger.merge(word), {
      timeoutMs: 2000,
      check: (got) => {
        const want = referenceBpe(ranks, word);
        return got.join(' ') === want.join(' ') ? null : `${got.length} symbols, the reference ${want.length}: ${got.slice(0, 6).join(' ')} vs ${want.slice(0, 6).join(' ')}`;
      },
    });
  }
  assertClean(stats);
});

test("merge loop: openai's 48,894 merges on random words of 100 to 1,000 letters, as the reference loop merges them", async () => {
  const stats = newStats('tokenizer merge loop (full merges)');
  const merges = gunzipSync(readFileSync(fullMergesFile())).toString('utf8').split('\n').slice(1, 48895);
  const merger = new BytePairMerger(merges);
  const ranks = new Map(merges.map((x, i) => [x, i] as [string, number]).reverse());
  const m = new Mutator(FUZZ_SEED * 13 + 1);
  // the reference loop is quadratic: few and short words
  for (let c = 0; c < cases(60); c++) {
    const word = Array.from({ length: 100 + m.int(900) }, () => 'abcdefghijklmnopqrstuvwxyz'[m.int(26)]).join('');
    await runCase(stats, word, () => merger.merge(word), { timeoutMs: 2000, check: (got) => (got.join(' ') === referenceBpe(ranks, word).join(' ') ? null : 'differs from the reference loop') });
  }
  assertClean(stats);
});

// ------------------------------------------------------------------ folders and in-memory vocabularies

type Folder = { name: string; files: Map<string, string> };
const readFolder = (d: string) => new Map(readdirSync(d).map((f) => [f, readFileSync(join(d, f), 'utf8')] as [string, string]));

async function seedFolders(): Promise<Folder[]> {
  const merges = learnMerges(CORPUS, 120);
  const tok = CLIPTokenizer.byteLevel(merges, { modelMaxLength: 16 });
  tok.addTokens(['<sks>']);
  tok.addTokens(['<|special|>'], { special: true });
  const dir = join(tmp, 'seed');
  await tok.save(dir);
  const folders = [{ name: 'saved', files: readFolder(dir) }];
  // the same as a tokenizers-format tokenizer.json
  const vocab = JSON.parse(folders[0]!.files.get('vocab.json')!) as Record<string, number>;
  folders.push({
    name: 'tokenizer.json',
    files: new Map([
      ['tokenizer.json', JSON.stringify({ model: { type: 'BPE', vocab, merges: merges.map((x) => (x.length % 2 ? x : x.split(' '))) }, added_tokens: [{ content: '<sks>', id: Object.keys(vocab).length, special: false, normalized: true }] })],
      ['tokenizer_config.json', folders[0]!.files.get('tokenizer_config.json')!],
    ]),
  });
  return folders;
}

/** A loaded tokenizer that works: encodes, calls and decodes a few prompts with valid ids. */
function usable(t: CLIPTokenizer): string | null {
  for (const p of ['a photo of a <sks> leaf', 'Rust & scab!', '<|endoftext|>x', '']) {
    const ids = t.encode(p);
    t.decode(ids);
    const r = t.call(p, { maxLength: 8 });
    if (r.inputIds[0]!.length !== 8 || r.inputIds[0]![0] !== t.bosTokenId) return `call(${JSON.stringify(p)}) is malformed`;
    // with the folder's own model_max_length
    if (t.call(p).inputIds[0]!.length !== t.modelMaxLength) return `call(${JSON.stringify(p)}) with modelMaxLength ${t.modelMaxLength} is malformed`;
  }
  return null;
}

/** `n` mutated copies of `folders` through fromFolder, and of their vocab/merges through fromVocabAndMerges. */
async function fuzzFolders(folders: Folder[], n: number, seed: number, label: string): Promise<void> {
  const disk = newStats(`tokenizer folders${label}`);
  const mem = newStats(`tokenizer vocab/merges in memory${label}`);
  const m = new Mutator(seed);
  for (let c = 0; c < n; c++) {
    const seedFolder = m.pick(folders);
    const files = new Map(seedFolder.files);
    const name = m.pick([...files.keys()]);
    const text = files.get(name)!;
    let mutated: string;
    if (name.endsWith('.json') && m.chance(0.7)) {
      const j = JSON.parse(text) as unknown;
      const keys = ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'model_max_length', 'added_tokens_decoder', 'model', 'vocab', 'merges', 'type', 'added_tokens', 'content', 'id', 'special', '<|endoftext|>', '<|startoftext|>', 'a</w>'];
      mutated = m.jsonText(m.json(j, keys));
    } else mutated = m.text(text, [...files.values()], 4);
    files.set(name, mutated);
    if (m.chance(0.05)) files.delete(m.pick([...files.keys()]));
    const dir = join(tmp, `case-${c}`);
    mkdirSync(dir, { recursive: true });
    for (const [f, t] of files) writeFileSync(join(dir, f), t);
    await runCase(disk, `${name}: ${mutated}`, () => CLIPTokenizer.fromFolder(dir), { source: dir, check: usable });
    rmSync(dir, { recursive: true, force: true });
    // in memory: vocab.json's object and merges.txt's text
    const vocabText = name === 'vocab.json' ? mutated : seedFolder.files.get('vocab.json');
    const mergesText = name === 'merges.txt' ? mutated : seedFolder.files.get('merges.txt');
    if (vocabText !== undefined && mergesText !== undefined) {
      let vocab: unknown = null;
      try {
        vocab = JSON.parse(vocabText);
      } catch {
        continue;
      }
      await runCase(mem, `${name}: ${mutated}`, () => CLIPTokenizer.fromVocabAndMerges(vocab as Record<string, number>, mergesText), { source: ['vocab', 'merges'], check: usable });
    }
  }
  const failures: string[] = [];
  for (const s of [disk, mem]) {
    try {
      assertClean(s);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  assert.equal(failures, [], failures.join('\n'));
}

test('files: mutated tokenizer folders and in-memory vocabularies load with a clear error naming the file, or into a tokenizer that works', async () => {
  await fuzzFolders(await seedFolders(), cases(600), FUZZ_SEED * 4099 + 17, '');
});

test('files: the same from the tiny-sd-current tokenizer folder (transformers wrote it)', async () => {
  const tiny = shared('golden/tiny-sd-current/tokenizer', 'a real tokenizer folder');
  if (!tiny) skip('../shared/golden not found: the tiny-sd tokenizer folder is not fuzzed', 'shared');
  await fuzzFolders([{ name: 'tiny-sd-current', files: readFolder(tiny) }], cases(200), FUZZ_SEED * 3 + 8, ' (tiny-sd-current)');
});

test('regression: long words merge in O(n log n) (a 200,000-letter word took minutes), a U+FEFF survives decode, folder errors name the file', async () => {
  // every letter pair and 1,500 pairs of pairs: the plain loop took 17 s on this word, the heap 0.3 s
  const r = prng(42);
  const L = 'abcdefghijklmnopqrstuvwxyz';
  const merges = [...L].flatMap((x) => [...L].map((y) => `${x} ${y}`));
  const pair = () => L[Math.floor(r() * 26)]! + L[Math.floor(r() * 26)]!;
  for (let k = 0; k < 1500; k++) merges.push(`${pair()} ${pair()}`);
  const word = Array.from({ length: 200_000 }, () => L[Math.floor(r() * 26)]).join('');
  const t0 = performance.now();
  const symbols = new BytePairMerger(merges).merge(word);
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `merging a 200,000-letter word took ${ms.toFixed(0)} ms`);
  assert.is(symbols.join(''), `${word}</w>`);
  const tok = CLIPTokenizer.byteLevel(learnMerges(CORPUS, 300));
  // (two pre-tokens, as in transformers: "\ufeff" is not a letter)
  assert.is(tok.decode(tok.encode('\ufeffleaf')), '\ufeff leaf');
  const base = (await seedFolders())[0]!.files;
  const folder = async (edit: Record<string, string>): Promise<string> => {
    const dir = join(tmp, `regression-${Object.keys(edit).join('-')}`);
    mkdirSync(dir, { recursive: true });
    for (const [f, t] of [...base, ...Object.entries(edit)]) writeFileSync(join(dir, f), t);
    try {
      await CLIPTokenizer.fromFolder(dir);
      return 'loaded';
    } catch (e) {
      return (e as Error).message.replace(dir, '<dir>');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  assert.is(await folder({ 'merges.txt': '#version: 0.2\na b\nc d e\n' }), '<dir>/merges.txt line 3: not two space-separated symbols: "c d e"');
  assert.match(await folder({ 'added_tokens.json': '{"<sks>": 1e999}' }), /^<dir>\/added_tokens\.json: id of "<sks>" must be a non-negative integer, got null/);
  assert.match(await folder({ 'added_tokens.json': '{"<sks>": 5}' }), /^tokenizer folder <dir>: CLIPTokenizer: added token "<sks>" has id 5 but the vocabulary says \d+/);
  const cfg = JSON.parse(base.get('tokenizer_config.json')!) as Record<string, unknown>;
  assert.is(await folder({ 'tokenizer_config.json': JSON.stringify({ ...cfg, model_max_length: 1.5 }) }), '<dir>/tokenizer_config.json: model_max_length must be an integer ≥ 2 (bos and eos), got 1.5');
  const vocab = JSON.parse(base.get('vocab.json')!) as Record<string, number>;
  assert.is(await folder({ 'vocab.json': JSON.stringify({ ...vocab, x: 2 ** 64 }) }), '<dir>/vocab.json: id of "x" must be a non-negative integer, got 18446744073709552000');
  // tokenizer.json with an added token without content: was a TypeError from deep inside
  const tj = join(tmp, 'regression-tokjson');
  mkdirSync(tj, { recursive: true });
  writeFileSync(join(tj, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab, merges: [] }, added_tokens: [{ id: 3 }] }));
  let msg = '';
  try {
    await CLIPTokenizer.fromFolder(tj);
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.is(msg, `${join(tj, 'tokenizer.json')}: added_tokens[0] must be {content: a non-empty string, id: a non-negative integer, …}, got {"id":3}`);
});

test.run();
