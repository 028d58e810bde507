import { readFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '@foliar/tensor';
import { BYTE_ENCODER, BYTE_DECODER, byteVocabOrder } from './bytes.js';
import { cleanText, type Cleaning } from './clean.js';

const PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

export interface TokenizerOptions {
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  modelMaxLength?: number;
  cleaning?: Cleaning;
}

export interface CallOptions {
  /** 'max_length' pads to `maxLength` with the pad token; false leaves rows unpadded. Default 'max_length'. */
  padding?: 'max_length' | 'longest' | false;
  maxLength?: number;
  /** Truncate to maxLength keeping the end token (default true). */
  truncation?: boolean;
  /** Add bos/eos (default true). */
  addSpecialTokens?: boolean;
}

export interface Encoding {
  inputIds: number[][];
  attentionMask: number[][];
}

/**
 * CLIP's byte-level BPE tokenizer with the semantics of transformers' CLIPTokenizer: special tokens
 * `<|startoftext|>` / `<|endoftext|>`, padding with the pad token of the tokenizer folder (SD1.x:
 * `<|endoftext|>`), truncation to 77 keeping the end token. Added tokens (DreamBooth identifiers,
 * textual-inversion tokens) are matched literally before BPE.
 */
export class CLIPTokenizer {
  private readonly encoder: Map<string, number>;
  private readonly decoder: Map<number, string>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, string[]>();
  private added: string[] = [];
  private addedRe: RegExp | null = null;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly padToken: string;
  readonly unkToken: string;
  modelMaxLength: number;
  cleaning: Cleaning;
  private readonly mergesList: string[];

  constructor(vocab: Record<string, number> | Map<string, number>, merges: string[], opts: TokenizerOptions = {}) {
    this.encoder = vocab instanceof Map ? new Map(vocab) : new Map(Object.entries(vocab));
    this.decoder = new Map([...this.encoder].map(([k, v]) => [v, k]));
    this.mergesList = merges;
    this.ranks = new Map(merges.map((m, i) => [m, i]));
    this.bosToken = opts.bosToken ?? '<|startoftext|>';
    this.eosToken = opts.eosToken ?? '<|endoftext|>';
    this.padToken = opts.padToken ?? this.eosToken;
    this.unkToken = opts.unkToken ?? this.eosToken;
    this.modelMaxLength = opts.modelMaxLength ?? 77;
    this.cleaning = opts.cleaning ?? 'transformers';
    for (const t of [this.bosToken, this.eosToken]) {
      if (!this.encoder.has(t)) throw new Error(`CLIPTokenizer: special token ${t} is not in the vocabulary`);
    }
    this.rebuildAdded();
  }

  /** openai's `bpe_simple_vocab_16e6.txt.gz`: 48,894 merges (lines 1 .. 49152−256−2). */
  static async fromMergesGz(path: string, opts: TokenizerOptions = {}): Promise<CLIPTokenizer> {
    const text = gunzipSync(await readFile(path)).toString('utf8');
    const lines = text.split('\n').slice(1, 49152 - 256 - 2 + 1);
    const merges = lines.map((l) => l.trim()).filter(Boolean);
    const order = byteVocabOrder();
    const vocabList = [...order, ...order.map((c) => `${c}</w>`), ...merges.map((m) => m.replace(' ', '')), '<|startoftext|>', '<|endoftext|>'];
    return new CLIPTokenizer(new Map(vocabList.map((t, i) => [t, i])), merges, opts);
  }

  /**
   * A byte-level tokenizer with no merges (every character is a token): needs no vocabulary file, so
   * randomly initialised test/demo pipelines can be created offline. `merges` may add a few.
   */
  static byteLevel(merges: string[] = [], opts: TokenizerOptions = {}): CLIPTokenizer {
    const order = byteVocabOrder();
    const vocabList = [...order, ...order.map((c) => `${c}</w>`), ...merges.map((m) => m.replace(' ', '')), '<|startoftext|>', '<|endoftext|>'];
    return new CLIPTokenizer(new Map(vocabList.map((t, i) => [t, i])), merges, opts);
  }

  /** A diffusers/transformers tokenizer folder: vocab.json + merges.txt, or tokenizer.json; special tokens from the json configs. */
  static async fromFolder(dir: string, opts: TokenizerOptions = {}): Promise<CLIPTokenizer> {
    const read = async (f: string) => JSON.parse(await readFile(join(dir, f), 'utf8')) as Record<string, unknown>;
    const tokenText = (v: unknown): string | undefined => (typeof v === 'string' ? v : v && typeof v === 'object' ? (v as { content?: string }).content : undefined);
    const cfg: TokenizerOptions = {};
    for (const f of ['special_tokens_map.json', 'tokenizer_config.json']) {
      if (!existsSync(join(dir, f))) continue;
      const j = await read(f);
      cfg.bosToken = tokenText(j.bos_token) ?? cfg.bosToken;
      cfg.eosToken = tokenText(j.eos_token) ?? cfg.eosToken;
      cfg.padToken = tokenText(j.pad_token) ?? cfg.padToken;
      cfg.unkToken = tokenText(j.unk_token) ?? cfg.unkToken;
      if (typeof j.model_max_length === 'number' && j.model_max_length < 1e6) cfg.modelMaxLength = j.model_max_length;
    }
    let vocab: Record<string, number>;
    let merges: string[];
    let addedTokens: string[] = [];
    if (existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'))) {
      vocab = (await read('vocab.json')) as Record<string, number>;
      merges = parseMerges(await readFile(join(dir, 'merges.txt'), 'utf8'));
    } else if (existsSync(join(dir, 'tokenizer.json'))) {
      const j = (await read('tokenizer.json')) as { model?: { vocab?: Record<string, number>; merges?: (string | [string, string])[] }; added_tokens?: { content: string; id: number; special?: boolean }[] };
      if (!j.model?.vocab || !j.model.merges) throw new Error(`${join(dir, 'tokenizer.json')} has no BPE model (model.vocab / model.merges)`);
      vocab = { ...j.model.vocab };
      for (const t of j.added_tokens ?? []) vocab[t.content] = t.id;
      merges = j.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m));
      addedTokens = (j.added_tokens ?? []).filter((t) => !t.special).map((t) => t.content);
    } else {
      throw new Error(`tokenizer folder ${dir} has neither vocab.json + merges.txt nor tokenizer.json`);
    }
    if (existsSync(join(dir, 'added_tokens.json'))) {
      const a = (await read('added_tokens.json')) as Record<string, number>;
      for (const [t, id] of Object.entries(a)) vocab[t] = id;
      addedTokens.push(...Object.keys(a).filter((t) => t !== cfg.bosToken && t !== cfg.eosToken));
    }
    const tok = new CLIPTokenizer(vocab, merges, { ...cfg, ...opts });
    tok.added = [...new Set(addedTokens)];
    tok.rebuildAdded();
    return tok;
  }

  /** From in-memory vocabulary and merges (browsers). */
  static fromVocabAndMerges(vocab: Record<string, number>, merges: string[] | string, opts: TokenizerOptions = {}): CLIPTokenizer {
    return new CLIPTokenizer(vocab, typeof merges === 'string' ? parseMerges(merges) : merges, opts);
  }

  get vocabSize(): number {
    return this.encoder.size;
  }
  get bosTokenId(): number {
    return this.encoder.get(this.bosToken)!;
  }
  get eosTokenId(): number {
    return this.encoder.get(this.eosToken)!;
  }
  get padTokenId(): number {
    return this.encoder.get(this.padToken) ?? this.eosTokenId;
  }
  tokenId(token: string): number | undefined {
    return this.encoder.get(token);
  }

  /** Adds tokens matched literally (e.g. '<diseaes-leaf>'); returns their ids (existing ones are reused). */
  addTokens(tokens: string[]): number[] {
    const ids = tokens.map((t) => {
      let id = this.encoder.get(t);
      if (id === undefined) {
        id = this.encoder.size;
        this.encoder.set(t, id);
        this.decoder.set(id, t);
      }
      if (!this.added.includes(t)) this.added.push(t);
      return id;
    });
    this.rebuildAdded();
    return ids;
  }
  get addedTokens(): readonly string[] {
    return this.added;
  }

  private rebuildAdded(): void {
    const specials = [this.bosToken, this.eosToken, ...this.added].filter(Boolean);
    const esc = specials.sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.addedRe = esc.length ? new RegExp(`(${esc.join('|')})`, 'g') : null;
  }

  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
    while (word.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const a = word[best]!, b = word[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === a && word[i + 1] === b) {
          merged.push(a + b);
          i += 2;
        } else merged.push(word[i++]!);
      }
      word = merged;
    }
    if (this.cache.size < 100000) this.cache.set(token, word);
    return word;
  }

  private encodePiece(text: string, out: number[]): void {
    const cleaned = cleanText(text, this.cleaning);
    for (const m of cleaned.matchAll(PATTERN)) {
      const piece = m[0];
      if (piece === this.bosToken || piece === this.eosToken) {
        out.push(this.encoder.get(piece)!);
        continue;
      }
      const bytes = new TextEncoder().encode(piece);
      let s = '';
      for (const b of bytes) s += BYTE_ENCODER[b];
      for (const t of this.bpe(s)) {
        const id = this.encoder.get(t);
        out.push(id ?? this.encoder.get(this.unkToken)!);
      }
    }
  }

  /** Token ids of a text, without special tokens. */
  encode(text: string): number[] {
    const out: number[] = [];
    if (!this.addedRe) {
      this.encodePiece(text, out);
      return out;
    }
    // added and special tokens are split out of the raw text first (transformers' added-token handling)
    for (const part of text.split(this.addedRe)) {
      if (!part) continue;
      const id = part === this.bosToken || part === this.eosToken || this.added.includes(part) ? this.encoder.get(part) : undefined;
      if (id !== undefined) out.push(id);
      else this.encodePiece(part, out);
    }
    return out;
  }

  /** transformers' __call__: bos + ids + eos, truncated and padded. */
  call(text: string | string[], opts: CallOptions = {}): Encoding {
    const texts = typeof text === 'string' ? [text] : text;
    const maxLength = opts.maxLength ?? this.modelMaxLength;
    const special = opts.addSpecialTokens ?? true;
    const rows = texts.map((t) => {
      let ids = this.encode(t);
      if (opts.truncation ?? true) ids = ids.slice(0, maxLength - (special ? 2 : 0));
      return special ? [this.bosTokenId, ...ids, this.eosTokenId] : ids;
    });
    const padding = opts.padding ?? 'max_length';
    const target = padding === 'max_length' ? maxLength : padding === 'longest' ? Math.max(...rows.map((r) => r.length)) : 0;
    const inputIds = rows.map((r) => (r.length < target ? [...r, ...new Array<number>(target - r.length).fill(this.padTokenId)] : r));
    const attentionMask = rows.map((r, i) => inputIds[i]!.map((_, j) => (j < r.length ? 1 : 0)));
    return { inputIds, attentionMask };
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const parts: string[] = [];
    for (const id of ids) {
      const t = this.decoder.get(id);
      if (t === undefined) continue;
      if (opts.skipSpecialTokens && (t === this.bosToken || t === this.eosToken || t === this.padToken)) continue;
      parts.push(t);
    }
    const joined = parts.join('');
    const bytes: number[] = [];
    let out = '';
    const flush = () => {
      if (bytes.length) out += new TextDecoder().decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (const ch of Array.from(joined.replace(/<\/w>/g, ' '))) {
      const b = BYTE_DECODER.get(ch);
      if (b === undefined) {
        flush();
        out += ch;
      } else bytes.push(b);
    }
    flush();
    return out.trim();
  }

  /** Writes vocab.json, merges.txt and the configs (transformers' layout), atomically. */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries(this.encoder)));
    await writeFileAtomic(join(dir, 'merges.txt'), `#version: 0.2\n${this.mergesList.join('\n')}\n`);
    await writeFileAtomic(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ tokenizer_class: 'CLIPTokenizer', bos_token: this.bosToken, eos_token: this.eosToken, pad_token: this.padToken, unk_token: this.unkToken, model_max_length: this.modelMaxLength }, null, 2) + '\n',
    );
    await writeFileAtomic(join(dir, 'special_tokens_map.json'), JSON.stringify({ bos_token: this.bosToken, eos_token: this.eosToken, pad_token: this.padToken, unk_token: this.unkToken }, null, 2) + '\n');
    if (this.added.length) {
      await writeFileAtomic(join(dir, 'added_tokens.json'), JSON.stringify(Object.fromEntries(this.added.map((t) => [t, this.encoder.get(t)])), null, 2) + '\n');
    }
  }
}

function parseMerges(text: string): string[] {
  const lines = text.split(/\r?\n/);
  const start = lines[0]?.startsWith('#version') ? 1 : 0;
  return lines.slice(start).map((l) => l.trim()).filter((l) => l.length > 0);
}
