/**
 * Checks one case of the golden tokenizer file (clip_tokenizer/clip_tokenizer_cases.json, made with
 * openai/CLIP and transformers) against foliar's tokenizers. Fields checked, each only if present:
 *  - openai_clean_text        = cleanText(prompt, 'openai')
 *  - openai_encode            = full vocabulary, 'openai' cleaning: encode(prompt)
 *  - openai_clip_tokenize_77  = same tokenizer padded with id 0 (padTokenId): call(prompt) (clip.tokenize(truncate=True))
 *  - hf_input_ids_unpadded    = full vocabulary, transformers cleaning: call(prompt, no padding, no truncation)
 *  - hf_input_ids_77          = same: call(prompt) (truncate + pad to 77 with <|endoftext|>)
 *  - agree_full               : transformers-cleaning encode(prompt) equals openai_encode exactly when true
 *  - n_tokens_openai          = openai_encode.length + 2
 *  - hf_input_ids_tiny1000_unpadded, openai_encode_tiny1000, agree_tiny1000: the same with every
 *    1000-token tokenizer folder (tiny pipelines), transformers and 'openai' cleaning.
 * A field whose tokenizer was not loaded is reported as skipped, not passed.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLIPTokenizer } from './clip-tokenizer.js';
import { cleanText } from './clean.js';

export interface TokenizerCase {
  prompt: string;
  openai_clean_text?: string;
  openai_encode?: number[];
  openai_clip_tokenize_77?: number[];
  hf_input_ids_unpadded?: number[];
  hf_input_ids_77?: number[];
  agree_full?: boolean;
  n_tokens_openai?: number;
  openai_encode_tiny1000?: number[];
  hf_input_ids_tiny1000_unpadded?: number[];
  agree_tiny1000?: boolean;
}

export interface CaseTokenizers {
  /** Real merges file, transformers cleaning (pads with <|endoftext|>). */
  full?: CLIPTokenizer;
  /** Real merges file, 'openai' cleaning, padding with id 0 like clip.tokenize. */
  fullOpenai?: CLIPTokenizer;
  /** Small-vocabulary folders by name, [transformers cleaning, 'openai' cleaning]. */
  tiny?: Record<string, [CLIPTokenizer, CLIPTokenizer]>;
}

export interface CaseCheck {
  ok: boolean;
  /** One entry per field: "field ok", "field FAIL (…)" or "field skipped (…)", joined by '; '. */
  detail: string;
}

/** Loads the tokenizers the checks need from a golden folder (missing files leave entries undefined). */
export async function loadCaseTokenizers(goldenDir: string): Promise<CaseTokenizers> {
  const out: CaseTokenizers = {};
  const gz = join(goldenDir, 'clip_tokenizer', 'bpe_simple_vocab_16e6.txt.gz');
  if (existsSync(gz)) {
    out.full = await CLIPTokenizer.fromMergesGz(gz);
    out.fullOpenai = await CLIPTokenizer.fromMergesGz(gz, { cleaning: 'openai', padTokenId: 0 });
  }
  const casesPath = join(goldenDir, 'clip_tokenizer', 'clip_tokenizer_cases.json');
  let tinySize: number | undefined;
  if (existsSync(casesPath)) tinySize = (JSON.parse(await readFile(casesPath, 'utf8')) as { tiny_vocab?: { size?: number } }).tiny_vocab?.size;
  out.tiny = {};
  for (const d of (await readdir(goldenDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
    const dir = join(goldenDir, d, 'tokenizer');
    if (!existsSync(dir)) continue;
    const t = await CLIPTokenizer.fromFolder(dir);
    if (tinySize !== undefined && t.vocabSize !== tinySize) continue;
    out.tiny[d] = [t, await CLIPTokenizer.fromFolder(dir, { cleaning: 'openai' })];
  }
  return out;
}

function diff(got: readonly number[], want: readonly number[]): string | null {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) return `first difference at ${i}: got ${String(got[i])}, want ${String(want[i])} (lengths ${got.length}/${want.length})`;
  }
  return null;
}

export function checkTokenizerCase(tok: CaseTokenizers, c: TokenizerCase): CaseCheck {
  const notes: string[] = [];
  let ok = true;
  const ids = (field: string, want: number[] | undefined, t: CLIPTokenizer | undefined, run: (t: CLIPTokenizer) => number[]) => {
    if (want === undefined) return;
    if (!t) return void notes.push(`${field} skipped (tokenizer not loaded)`);
    const d = diff(run(t), want);
    if (d) ok = false;
    notes.push(d ? `${field} FAIL (${d})` : `${field} ok`);
  };
  const agree = (field: string, flag: boolean | undefined, want: number[] | undefined, t: CLIPTokenizer | undefined) => {
    if (flag === undefined || want === undefined) return;
    if (!t) return void notes.push(`${field} skipped (tokenizer not loaded)`);
    const same = diff(t.encode(c.prompt), want) === null;
    if (same !== flag) ok = false;
    notes.push(same === flag ? `${field} ok` : `${field} FAIL (transformers cleaning ${same ? 'agrees' : 'differs'}, flag says ${String(flag)})`);
  };
  if (c.openai_clean_text !== undefined) {
    const got = cleanText(c.prompt, 'openai');
    if (got !== c.openai_clean_text) ok = false;
    notes.push(got === c.openai_clean_text ? 'openai_clean_text ok' : `openai_clean_text FAIL (got ${JSON.stringify(got)})`);
  }
  const unpadded = { padding: false, truncation: false } as const;
  ids('openai_encode', c.openai_encode, tok.fullOpenai, (t) => t.encode(c.prompt));
  ids('openai_clip_tokenize_77', c.openai_clip_tokenize_77, tok.fullOpenai, (t) => t.call(c.prompt, { maxLength: 77 }).inputIds[0]!);
  ids('hf_input_ids_unpadded', c.hf_input_ids_unpadded, tok.full, (t) => t.call(c.prompt, unpadded).inputIds[0]!);
  ids('hf_input_ids_77', c.hf_input_ids_77, tok.full, (t) => t.call(c.prompt, { maxLength: 77 }).inputIds[0]!);
  agree('agree_full', c.agree_full, c.openai_encode, tok.full);
  if (c.n_tokens_openai !== undefined && c.openai_encode !== undefined) {
    const good = c.n_tokens_openai === c.openai_encode.length + 2;
    if (!good) ok = false;
    notes.push(good ? 'n_tokens_openai ok' : `n_tokens_openai FAIL (${c.n_tokens_openai} != ${c.openai_encode.length} + 2)`);
  }
  const tiny = Object.entries(tok.tiny ?? {});
  if (!tiny.length && (c.hf_input_ids_tiny1000_unpadded || c.openai_encode_tiny1000)) notes.push('tiny1000 skipped (no small-vocabulary folder loaded)');
  for (const [name, [t, tOpenai]] of tiny) {
    ids(`hf_input_ids_tiny1000_unpadded[${name}]`, c.hf_input_ids_tiny1000_unpadded, t, (x) => x.call(c.prompt, unpadded).inputIds[0]!);
    ids(`openai_encode_tiny1000[${name}]`, c.openai_encode_tiny1000, tOpenai, (x) => x.encode(c.prompt));
    agree(`agree_tiny1000[${name}]`, c.agree_tiny1000, c.openai_encode_tiny1000, t);
  }
  return { ok, detail: notes.join('; ') };
}
