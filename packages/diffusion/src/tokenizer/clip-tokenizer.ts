// files through the platform port: paths in Node, URLs in a browser (package.json `imports`)
import { readText, readBytes, fileExists, gunzip, joinPath as join, mkdirp, writeFileAtomic } from '#platform';
import { BytePairMerger } from './bpe.js';
import { BYTE_DECODER, byteVocabOrder, toByteChars } from './bytes.js';
import { cleanText, WHITESPACE, type Cleaning } from './clean.js';

const SOT = '<|startoftext|>';
const EOT = '<|endoftext|>';

// CLIP's pre-tokenisation pattern; `\s` spelled out as Unicode White_Space (see clean.ts). openai
// compiles it case-insensitively; tokenizers does not (its text is lower-cased already).
const PATTERN_SRC = `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${WHITESPACE}\\p{L}\\p{N}]+`;
const PATTERN = { transformers: new RegExp(PATTERN_SRC, 'gu'), openai: new RegExp(PATTERN_SRC, 'giu') };

/** openai's vocabulary uses merges 1 .. 49152−256−2 of the file (line 0 is the version header). */
const OPENAI_MERGES = 49152 - 256 - 2;

export interface AddedTokenSpec {
  content: string;
  /** Fixed id (from a tokenizer folder); new tokens get the next free id. */
  id?: number;
  /** Special tokens are matched in the raw text and skipped by `decode(…, { skipSpecialTokens })`. */
  special?: boolean;
  /**
   * Match against the normalised (lower-cased) text, as tokenizers does for tokens added with
   * `add_tokens` (default: true for non-special tokens, false for special ones).
   */
  normalized?: boolean;
}

export interface TokenizerOptions {
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  /**
   * Pad with this id instead of the pad token's, without making it a special token: openai's
   * `clip.tokenize` pads with 0 (the id of '!').
   */
  padTokenId?: number;
  modelMaxLength?: number;
  cleaning?: Cleaning;
  /** Added tokens beyond the BPE vocabulary (DreamBooth identifiers, textual-inversion tokens). */
  addedTokens?: AddedTokenSpec[];
  /** transformers' `clean_up_tokenization_spaces` for `decode` (default false). */
  cleanUpTokenizationSpaces?: boolean;
}

export interface CallOptions {
  /** 'max_length' pads to `maxLength` with the pad token, 'longest' to the longest row, false not at all. Default 'max_length'. */
  padding?: 'max_length' | 'longest' | false;
  /** Default: `modelMaxLength` (77 for SD1.x). */
  maxLength?: number;
  /** Cut rows to maxLength, keeping bos and eos (default true). */
  truncation?: boolean;
  /** Add bos/eos (default true). */
  addSpecialTokens?: boolean;
}

export interface Encoding {
  inputIds: number[][];
  attentionMask: number[][];
}

interface Added {
  id: number;
  special: boolean;
  normalized: boolean;
}

/** Vocabularies built here and handed straight to the constructor, which then need no defensive copy. */
const FRESH = new WeakSet<Map<string, number>>();

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Longest-first alternation, so the leftmost match is also the longest (tokenizers' added-token matcher). */
function alternation(tokens: Iterable<string>): RegExp | null {
  const list = [...new Set(tokens)].filter((t) => t.length > 0).sort((a, b) => b.length - a.length);
  return list.length ? new RegExp(list.map(escapeRe).join('|'), 'g') : null;
}

/** Splits `text` around the matches of `re`, calling `onText` for gaps and `onToken` for matches. */
function splitAround(text: string, re: RegExp | null, onText: (s: string) => void, onToken: (t: string) => void): void {
  if (!re) {
    if (text) onText(text);
    return;
  }
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) onText(text.slice(last, m.index));
    onToken(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) onText(text.slice(last));
}

/**
 * CLIP's byte-level BPE tokenizer with the semantics of transformers' CLIPTokenizer (what diffusers
 * runs for SD1.x): special tokens `<|startoftext|>` / `<|endoftext|>`, truncation to 77 keeping the end
 * token, padding with the folder's pad token (SD1.x: `<|endoftext|>`; openai's `clip.tokenize` pads
 * with 0 — pass `padTokenId: 0` for that). Added tokens are split out before BPE. See README.md.
 */
export class CLIPTokenizer {
  private readonly encoder: Map<string, number>;
  private decoderCache: Map<number, string> | null = null;
  private readonly merger: BytePairMerger;
  private readonly mergesList: readonly string[];
  private readonly added = new Map<string, Added>();
  /** cleaned content -> id, for normalized added tokens */
  private normalizedAdded = new Map<string, number>();
  private rawRe: RegExp | null = null;
  private normRe: RegExp | null = null;
  private maxId: number;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly padToken: string;
  readonly unkToken: string;
  private readonly padIdOverride: number | undefined;
  modelMaxLength: number;
  readonly cleaning: Cleaning;
  cleanUpTokenizationSpaces: boolean;

  /** `vocab` includes the special tokens; `merges` are "left right" lines without the version header. */
  constructor(vocab: Record<string, number> | Map<string, number>, merges: readonly string[], opts: TokenizerOptions = {}) {
    this.encoder = vocab instanceof Map ? (FRESH.has(vocab) ? vocab : new Map(vocab)) : new Map(Object.entries(vocab));
    FRESH.delete(this.encoder);
    this.maxId = -1;
    for (const [t, id] of this.encoder) {
      if (!Number.isSafeInteger(id) || id < 0) throw new Error(`CLIPTokenizer: vocabulary entry ${JSON.stringify(t)} has invalid id ${String(id)}`);
      if (id > this.maxId) this.maxId = id;
    }
    this.merger = new BytePairMerger(merges);
    this.mergesList = merges;
    this.bosToken = opts.bosToken ?? SOT;
    this.eosToken = opts.eosToken ?? EOT;
    this.padToken = opts.padToken ?? this.eosToken;
    this.unkToken = opts.unkToken ?? this.eosToken;
    this.padIdOverride = opts.padTokenId;
    if (opts.padTokenId !== undefined && !(Number.isInteger(opts.padTokenId) && opts.padTokenId >= 0 && opts.padTokenId <= this.maxId)) {
      throw new Error(`CLIPTokenizer: padTokenId ${opts.padTokenId} is outside the vocabulary (0..${this.maxId})`);
    }
    this.modelMaxLength = opts.modelMaxLength ?? 77;
    this.cleaning = opts.cleaning ?? 'transformers';
    this.cleanUpTokenizationSpaces = opts.cleanUpTokenizationSpaces ?? false;
    for (const [name, t] of [['bos', this.bosToken], ['eos', this.eosToken], ['pad', this.padToken]] as const) {
      if (!this.encoder.has(t)) throw new Error(`CLIPTokenizer: ${name} token ${JSON.stringify(t)} is not in the vocabulary`);
    }
    // the special tokens of the vocabulary are matched literally in the raw text (tokenizers: normalized=false)
    for (const t of new Set([this.bosToken, this.eosToken, this.padToken, this.unkToken])) {
      const id = this.encoder.get(t);
      if (id !== undefined) this.added.set(t, { id, special: true, normalized: false });
    }
    for (const a of opts.addedTokens ?? []) this.register(a);
    this.rebuildMatchers();
  }

  /** openai's `bpe_simple_vocab_16e6.txt.gz`: 48,894 merges, vocabulary built as SimpleTokenizer does. */
  static async fromMergesGz(path: string, opts: TokenizerOptions = {}): Promise<CLIPTokenizer> {
    let text: string;
    try {
      text = new TextDecoder().decode(await gunzip(await readBytes(path)));
    } catch (e) {
      throw new Error(`${path}: cannot read gzip merges file (${(e as Error).message})`);
    }
    const lines = text.split('\n', OPENAI_MERGES + 1).slice(1);
    if (lines.length < OPENAI_MERGES) throw new Error(`${path}: has ${lines.length} merge lines, openai's vocabulary needs ${OPENAI_MERGES}`);
    return CLIPTokenizer.fromMergeList(lines, opts, path);
  }

  /**
   * The vocabulary SimpleTokenizer derives from a merge list: 256 byte characters, the same with
   * `</w>`, one token per merge, then `<|startoftext|>` and `<|endoftext|>`.
   */
  static fromMergeList(merges: readonly string[], opts: TokenizerOptions = {}, source = 'merges'): CLIPTokenizer {
    const vocab = new Map<string, number>();
    const order = byteVocabOrder();
    for (const c of order) vocab.set(c, vocab.size);
    for (const c of order) vocab.set(`${c}</w>`, vocab.size);
    for (let i = 0; i < merges.length; i++) {
      const m = merges[i]!;
      const sp = m.indexOf(' ');
      if (sp <= 0) throw new Error(`${source}: merge ${i + 1} is not two space-separated symbols: ${JSON.stringify(m)}`);
      vocab.set(m.slice(0, sp) + m.slice(sp + 1), 512 + i);
    }
    vocab.set(SOT, 512 + merges.length);
    vocab.set(EOT, 513 + merges.length);
    FRESH.add(vocab);
    return new CLIPTokenizer(vocab, merges, opts);
  }

  /**
   * A byte-level tokenizer with no merges (every byte is a token): needs no vocabulary file, so
   * randomly initialised test/demo pipelines can be created offline. `merges` may add a few.
   */
  static byteLevel(merges: string[] = [], opts: TokenizerOptions = {}): CLIPTokenizer {
    return CLIPTokenizer.fromMergeList(merges, opts, 'byteLevel merges');
  }

  /**
   * A diffusers/transformers tokenizer folder: vocab.json + merges.txt, or else tokenizer.json (HF
   * tokenizers format); bos/eos/pad/unk and model_max_length from special_tokens_map.json and
   * tokenizer_config.json; added tokens from tokenizer.json, added_tokens.json and the config's
   * added_tokens_decoder. `opts` override what the folder says.
   */
  static async fromFolder(dir: string, opts: TokenizerOptions = {}): Promise<CLIPTokenizer> {
    const cfg: TokenizerOptions = {};
    const added: AddedTokenSpec[] = [];
    const tokenText = (v: unknown): string | undefined =>
      typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : undefined;
    for (const f of ['special_tokens_map.json', 'tokenizer_config.json']) {
      const j = await readJsonIfExists(join(dir, f));
      if (!j) continue;
      cfg.bosToken = tokenText(j.bos_token) ?? cfg.bosToken;
      cfg.eosToken = tokenText(j.eos_token) ?? cfg.eosToken;
      cfg.padToken = tokenText(j.pad_token) ?? cfg.padToken;
      cfg.unkToken = tokenText(j.unk_token) ?? cfg.unkToken;
      // transformers writes a huge sentinel (1e30) when the length is unknown
      const mml = j.model_max_length;
      if (mml !== undefined && mml !== null && !(typeof mml === 'number' && mml >= 1e6)) {
        if (!(Number.isSafeInteger(mml) && (mml as number) >= 2)) throw new Error(`${join(dir, f)}: model_max_length must be an integer ≥ 2 (bos and eos), got ${JSON.stringify(mml)}`);
        cfg.modelMaxLength = mml as number;
      }
      if (typeof j.clean_up_tokenization_spaces === 'boolean') cfg.cleanUpTokenizationSpaces = j.clean_up_tokenization_spaces;
      const dec = j.added_tokens_decoder;
      if (dec && typeof dec === 'object') {
        for (const [id, t] of Object.entries(dec as Record<string, { content?: unknown; special?: unknown; normalized?: unknown }>)) {
          if (typeof t?.content !== 'string' || !t.content || !/^\d+$/.test(id) || !Number.isSafeInteger(Number(id))) throw new Error(`${join(dir, f)}: added_tokens_decoder[${JSON.stringify(id)}] is not {content, …} under a numeric id`);
          added.push({ content: t.content, id: Number(id), special: t.special === true, normalized: typeof t.normalized === 'boolean' ? t.normalized : undefined });
        }
      }
    }
    let vocab: Record<string, number>;
    let merges: string[];
    const vocabPath = join(dir, 'vocab.json');
    const mergesPath = join(dir, 'merges.txt');
    const tokPath = join(dir, 'tokenizer.json');
    if ((await fileExists(vocabPath)) && (await fileExists(mergesPath))) {
      vocab = checkVocab((await readJsonIfExists(vocabPath))!, vocabPath);
      merges = parseMerges(await readText(mergesPath), mergesPath);
    } else if (await fileExists(tokPath)) {
      const j = (await readJsonIfExists(tokPath))! as {
        model?: { type?: string; vocab?: unknown; merges?: unknown[] };
        added_tokens?: { content: string; id: number; special?: boolean; normalized?: boolean }[];
      };
      if (!j.model || (j.model.type !== undefined && j.model.type !== 'BPE')) throw new Error(`${tokPath}: model.type is ${JSON.stringify(j.model?.type)}, expected "BPE"`);
      if (!Array.isArray(j.model.merges)) throw new Error(`${tokPath}: model.merges is missing`);
      vocab = checkVocab(j.model.vocab, `${tokPath} (model.vocab)`);
      merges = j.model.merges.map((m, i) => {
        const line = typeof m === 'string' ? m : Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string') ? m.join(' ') : null;
        if (line === null || !isMerge(line)) throw new Error(`${tokPath}: model.merges[${i}] is neither "a b" nor ["a", "b"] (two symbols without spaces): ${JSON.stringify(m)}`);
        return line;
      });
      const list: unknown = j.added_tokens ?? [];
      if (!Array.isArray(list)) throw new Error(`${tokPath}: added_tokens must be a list of {content, id, …}, got ${JSON.stringify(list)}`);
      list.forEach((t: unknown, i) => {
        const a = t as { content?: unknown; id?: unknown; special?: unknown; normalized?: unknown } | null;
        if (!a || typeof a !== 'object' || typeof a.content !== 'string' || !a.content || !Number.isSafeInteger(a.id) || (a.id as number) < 0) {
          throw new Error(`${tokPath}: added_tokens[${i}] must be {content: a non-empty string, id: a non-negative integer, …}, got ${JSON.stringify(t)}`);
        }
        added.push({ content: a.content, id: a.id as number, special: a.special === true, normalized: typeof a.normalized === 'boolean' ? a.normalized : undefined });
      });
    } else {
      throw new Error(`tokenizer folder ${dir} has neither vocab.json + merges.txt nor tokenizer.json`);
    }
    const addedJson = await readJsonIfExists(join(dir, 'added_tokens.json'));
    for (const [content, id] of Object.entries(addedJson ?? {})) {
      if (!Number.isSafeInteger(id) || (id as number) < 0 || !content) throw new Error(`${join(dir, 'added_tokens.json')}: id of ${JSON.stringify(content)} must be a non-negative integer, got ${JSON.stringify(id)}`);
      added.push({ content, id: id as number });
    }
    try {
      return new CLIPTokenizer(vocab, merges, { ...cfg, ...opts, addedTokens: [...added, ...(opts.addedTokens ?? [])] });
    } catch (e) {
      // what the files say together (a special token missing from the vocabulary, an id two tokens claim)
      throw new Error(`tokenizer folder ${dir}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** From an in-memory vocab.json object and merges.txt text or lines (browsers). */
  static fromVocabAndMerges(vocab: Record<string, number>, merges: string[] | string, opts: TokenizerOptions = {}): CLIPTokenizer {
    return new CLIPTokenizer(checkVocab(vocab, 'vocab'), typeof merges === 'string' ? parseMerges(merges, 'merges') : merges.filter((m) => m && !m.startsWith('#version')), opts);
  }

  /** Number of tokens, added ones included (transformers' `len(tokenizer)`). */
  /**
   * Ids run 0..vocabSize-1. Usually the number of entries; when two merges spell the same token the
   * later id wins (as in openai's SimpleTokenizer) and the earlier one is never produced, so the
   * count is one less than the ids an embedding table must cover.
   */
  get vocabSize(): number {
    return this.maxId + 1;
  }
  get bosTokenId(): number {
    return this.encoder.get(this.bosToken)!;
  }
  get eosTokenId(): number {
    return this.encoder.get(this.eosToken)!;
  }
  get padTokenId(): number {
    return this.padIdOverride ?? this.encoder.get(this.padToken)!;
  }
  get unkTokenId(): number {
    return this.encoder.get(this.unkToken) ?? this.eosTokenId;
  }
  tokenId(token: string): number | undefined {
    return this.encoder.get(token);
  }
  /** The vocabulary entry of an id (transformers' `convert_ids_to_tokens`), e.g. "leaf</w>". */
  idToToken(id: number): string | undefined {
    return this.decoder.get(id);
  }
  /** Contents of the tokens added beyond the BPE vocabulary and the special tokens. */
  get addedTokens(): readonly string[] {
    const core = [this.bosToken, this.eosToken, this.padToken, this.unkToken];
    return [...this.added.keys()].filter((t) => !core.includes(t));
  }

  /**
   * Adds tokens matched literally before BPE (e.g. '<diseaes-leaf>'); returns their ids, new ones
   * appended after the vocabulary, existing ones reused. Like transformers' `add_tokens`, non-special
   * tokens are matched in the lower-cased text, so "A <Diseaes-Leaf>" finds '<diseaes-leaf>'.
   */
  addTokens(tokens: string[], opts: { special?: boolean } = {}): number[] {
    const ids = tokens.map((content) => {
      if (!content) throw new Error('CLIPTokenizer.addTokens: empty token');
      return this.register({ content, special: opts.special ?? false });
    });
    this.rebuildMatchers();
    return ids;
  }

  private register(spec: AddedTokenSpec): number {
    if (typeof spec.content !== 'string' || !spec.content) throw new Error(`CLIPTokenizer: an added token's content must be a non-empty string, got ${JSON.stringify(spec.content) ?? String(spec.content)}`);
    if (spec.id !== undefined && !(Number.isSafeInteger(spec.id) && spec.id >= 0)) throw new Error(`CLIPTokenizer: added token ${JSON.stringify(spec.content)} has invalid id ${String(spec.id)}`);
    let id = this.encoder.get(spec.content);
    if (id === undefined) {
      id = spec.id ?? this.maxId + 1;
      this.encoder.set(spec.content, id);
      this.maxId = Math.max(this.maxId, id);
      this.decoderCache = null;
    } else if (spec.id !== undefined && spec.id !== id) {
      throw new Error(`CLIPTokenizer: added token ${JSON.stringify(spec.content)} has id ${spec.id} but the vocabulary says ${id}`);
    }
    const special = spec.special ?? false;
    const prev = this.added.get(spec.content);
    // a later spec (config's added_tokens_decoder) may mark a vocabulary special token as normalized
    this.added.set(spec.content, { id, special: special || (prev?.special ?? false), normalized: prev ? prev.normalized || (spec.normalized ?? false) : (spec.normalized ?? !special) });
    return id;
  }

  private rebuildMatchers(): void {
    const raw: string[] = [];
    this.normalizedAdded = new Map();
    for (const [t, a] of this.added) {
      raw.push(t);
      if (a.normalized) this.normalizedAdded.set(cleanText(t, this.cleaning), a.id);
    }
    // raw tokens are split out of the text before normalisation, normalized ones after (tokenizers' order)
    this.rawRe = alternation(raw.filter((t) => !this.added.get(t)!.normalized));
    this.normRe = alternation(this.normalizedAdded.keys());
  }

  /** Token ids of a text, without bos/eos. */
  encode(text: string): number[] {
    const out: number[] = [];
    splitAround(
      text,
      this.rawRe,
      (part) => this.encodeNormalized(cleanText(part, this.cleaning), out),
      (tok) => out.push(this.added.get(tok)!.id),
    );
    return out;
  }

  private encodeNormalized(text: string, out: number[]): void {
    splitAround(text, this.normRe, (part) => this.encodeBpe(part, out), (tok) => out.push(this.normalizedAdded.get(tok)!));
  }

  private encodeBpe(text: string, out: number[]): void {
    const openai = this.cleaning === 'openai';
    for (const m of text.matchAll(PATTERN[this.cleaning])) {
      const piece = m[0];
      // openai's bpe cache knows the two specials; tokenizers would byte-pair-encode them like text
      if (openai && (piece === SOT || piece === EOT)) {
        out.push(this.encoder.get(piece) ?? this.unkTokenId);
        continue;
      }
      for (const sym of this.merger.merge(toByteChars(piece))) out.push(this.encoder.get(sym) ?? this.unkTokenId);
    }
  }

  /**
   * transformers' `__call__` for SD: bos + ids + eos per text, truncated to maxLength (keeping eos)
   * and padded with the pad token; attention mask 1 on real tokens.
   */
  call(text: string | string[], opts: CallOptions = {}): Encoding {
    const texts = typeof text === 'string' ? [text] : text;
    const maxLength = opts.maxLength ?? this.modelMaxLength;
    const special = opts.addSpecialTokens ?? true;
    if ((opts.truncation ?? true) && maxLength < (special ? 2 : 0)) throw new Error(`CLIPTokenizer.call: maxLength ${maxLength} leaves no room for bos and eos`);
    const rows = texts.map((t) => {
      let ids = this.encode(t);
      if (opts.truncation ?? true) ids = ids.slice(0, maxLength - (special ? 2 : 0));
      return special ? [this.bosTokenId, ...ids, this.eosTokenId] : ids;
    });
    const padding = opts.padding ?? 'max_length';
    const target = padding === 'max_length' ? maxLength : padding === 'longest' ? Math.max(0, ...rows.map((r) => r.length)) : 0;
    const pad = this.padTokenId;
    const inputIds = rows.map((r) => (r.length < target ? r.concat(new Array<number>(target - r.length).fill(pad)) : r));
    const attentionMask = rows.map((r, i) => inputIds[i]!.map((_, j) => (j < r.length ? 1 : 0)));
    return { inputIds, attentionMask };
  }

  private get decoder(): Map<number, string> {
    if (!this.decoderCache) this.decoderCache = new Map([...this.encoder].map(([t, id]) => [id, t]));
    return this.decoderCache;
  }

  /**
   * Text of ids: byte-level tokens are turned back into UTF-8 (invalid bytes -> U+FFFD) with `</w>` as
   * a space; added and special tokens are written as they are, separated by spaces (transformers'
   * slow-tokenizer rule). Unknown ids are an error.
   */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const parts: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      if (!bytes.length) return;
      // Python's bytes.decode and str.strip: a U+FEFF the text held stays (TextDecoder drops a leading
      // one unless told not to, and String#trim strips it), \x1c-\x1f and \x85 go
      const s = pyStrip(new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes)).replace(/<\/w>/g, ' '));
      if (s) parts.push(s);
      bytes = [];
    };
    for (const id of ids) {
      const t = this.decoder.get(id);
      if (t === undefined) throw new Error(`CLIPTokenizer.decode: id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      const a = this.added.get(t);
      if (a) {
        flush();
        if (!(opts.skipSpecialTokens && a.special)) parts.push(t);
        continue;
      }
      for (const ch of t) {
        const b = BYTE_DECODER.get(ch);
        if (b !== undefined) bytes.push(b);
        else bytes.push(...new TextEncoder().encode(ch));
      }
    }
    flush();
    const text = parts.join(' ');
    return this.cleanUpTokenizationSpaces ? cleanUpSpaces(text) : text;
  }

  /** Writes vocab.json, merges.txt, the two configs and added_tokens.json (transformers' layout), atomically. */
  async save(dir: string): Promise<void> {
    await mkdirp(dir);
    const extra = new Map([...this.added].filter(([t]) => ![this.bosToken, this.eosToken, this.padToken, this.unkToken].includes(t)));
    const base = Object.fromEntries([...this.encoder].filter(([t]) => !extra.has(t)));
    await writeFileAtomic(join(dir, 'vocab.json'), JSON.stringify(base));
    await writeFileAtomic(join(dir, 'merges.txt'), `#version: 0.2\n${this.mergesList.join('\n')}\n`);
    const specials = { bos_token: this.bosToken, eos_token: this.eosToken, pad_token: this.padToken, unk_token: this.unkToken };
    const decoder = Object.fromEntries([...this.added].map(([t, a]) => [String(a.id), { content: t, lstrip: false, normalized: a.normalized, rstrip: false, single_word: false, special: a.special }]));
    await writeFileAtomic(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ tokenizer_class: 'CLIPTokenizer', ...specials, model_max_length: this.modelMaxLength, clean_up_tokenization_spaces: this.cleanUpTokenizationSpaces, added_tokens_decoder: decoder }, null, 2) + '\n',
    );
    await writeFileAtomic(join(dir, 'special_tokens_map.json'), JSON.stringify(specials, null, 2) + '\n');
    if (extra.size) await writeFileAtomic(join(dir, 'added_tokens.json'), JSON.stringify(Object.fromEntries([...extra].map(([t, a]) => [t, a.id])), null, 2) + '\n');
  }
}

/** Python's `str.strip()`: its whitespace (str.isspace) at both ends. */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');
function pyStrip(s: string): string {
  return s.replace(PY_STRIP, '');
}

/** transformers' `clean_up_tokenization` (English spacing before punctuation and contractions). */
function cleanUpSpaces(s: string): string {
  return s
    .replace(/ \./g, '.').replace(/ \?/g, '?').replace(/ !/g, '!').replace(/ ,/g, ',')
    .replace(/ ' /g, "'").replace(/ n't/g, "n't").replace(/ 'm/g, "'m").replace(/ 's/g, "'s")
    .replace(/ 've/g, "'ve").replace(/ 're/g, "'re");
}

async function readJsonIfExists(path: string): Promise<Record<string, unknown> | null> {
  if (!(await fileExists(path))) return null;
  const text = await readText(path);
  try {
    const j: unknown = JSON.parse(text);
    if (!j || typeof j !== 'object' || Array.isArray(j)) throw new Error('top level is not an object');
    return j as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

function checkVocab(v: unknown, source: string): Record<string, number> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${source}: vocabulary is not a {token: id} object`);
  for (const [t, id] of Object.entries(v)) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) throw new Error(`${source}: id of ${JSON.stringify(t)} must be a non-negative integer, got ${JSON.stringify(id) ?? String(id)}`);
  }
  return v as Record<string, number>;
}

/** A merge line: two non-empty symbols separated by one space. */
function isMerge(m: string): boolean {
  const sp = m.indexOf(' ');
  return sp > 0 && sp < m.length - 1 && m.indexOf(' ', sp + 1) === -1;
}

/**
 * merges.txt text -> merge lines (the '#version' header and blank lines dropped). With `source`, a
 * line that is not two space-separated symbols is an error naming it and the line.
 */
export function parseMerges(text: string, source?: string): string[] {
  const lines = text.split(/\r?\n/);
  const start = lines[0]?.startsWith('#version') ? 1 : 0;
  const out: string[] = [];
  for (let i = start; i < lines.length; i++) {
    const l = lines[i]!;
    if (!l.trim().length) continue;
    if (source !== undefined && !isMerge(l)) throw new Error(`${source} line ${i + 1}: not two space-separated symbols: ${JSON.stringify(l.length > 60 ? `${l.slice(0, 57)}...` : l)}`);
    out.push(l);
  }
  return out;
}
