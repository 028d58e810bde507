import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CLIPTokenizer } from '../../packages/diffusion/src/tokenizer/index.js';

interface TokCase {
  prompt: string;
  hf_input_ids_77?: number[];
  hf_input_ids_unpadded?: number[];
  openai_encode?: number[];
  hf_input_ids_tiny1000_unpadded?: number[];
  openai_encode_tiny1000?: number[];
}

const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Tokenizer cases (clip_tokenizer/clip_tokenizer_cases.json), reported as clip_tokenizer/<index>:
 * transformers ids padded to 77 and unpadded (real merges file), openai `encode` ids (foliar's 'openai'
 * cleaning), and the 1000-token vocab ids with every tiny pipeline's tokenizer folder found beside it.
 */
export async function runTokenizerCases(dir: string, filter: string): Promise<{ passed: number; failed: number; skipped: number }> {
  const path = join(dir, 'clip_tokenizer', 'clip_tokenizer_cases.json');
  const res = { passed: 0, failed: 0, skipped: 0 };
  if (!existsSync(path)) return res;
  const data = JSON.parse(await readFile(path, 'utf8')) as { cases: TokCase[] };
  const gz = join(dir, 'clip_tokenizer', 'bpe_simple_vocab_16e6.txt.gz');
  const hf = existsSync(gz) ? await CLIPTokenizer.fromMergesGz(gz) : null;
  const oa = existsSync(gz) ? await CLIPTokenizer.fromMergesGz(gz, { cleaning: 'openai' }) : null;
  // the small-vocabulary ids are checked with every pipeline folder beside it whose tokenizer has that size
  const tinySize = (data as { tiny_vocab?: { size?: number } }).tiny_vocab?.size;
  const tiny: [string, CLIPTokenizer][] = [];
  for (const sub of (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    const td = join(dir, sub, 'tokenizer');
    if (!existsSync(td)) continue;
    const t = await CLIPTokenizer.fromFolder(td);
    if (tinySize === undefined || t.vocabSize === tinySize) tiny.push([sub, t]);
  }
  data.cases.forEach((c, i) => {
    const id = `clip_tokenizer/${i}`;
    if (filter && !id.includes(filter)) return;
    const bad: string[] = [];
    let checked = 0;
    if (hf && c.hf_input_ids_77) {
      checked++;
      if (!same(hf.call(c.prompt).inputIds[0]!, c.hf_input_ids_77)) bad.push('hf_input_ids_77');
    }
    if (hf && c.hf_input_ids_unpadded) {
      checked++;
      if (!same(hf.call(c.prompt, { padding: false, truncation: false }).inputIds[0]!, c.hf_input_ids_unpadded)) bad.push('hf_input_ids_unpadded');
    }
    if (oa && c.openai_encode) {
      checked++;
      if (!same(oa.encode(c.prompt), c.openai_encode)) bad.push('openai_encode');
    }
    for (const [name, t] of tiny) {
      if (!c.hf_input_ids_tiny1000_unpadded) continue;
      checked++;
      if (!same(t.call(c.prompt, { padding: false, truncation: false }).inputIds[0]!, c.hf_input_ids_tiny1000_unpadded)) bad.push(`tiny1000 (${name})`);
    }
    if (!checked) {
      res.skipped++;
      console.log(`SKIP ${id} (no reference ids this runner knows)`);
    } else if (bad.length) {
      res.failed++;
      console.log(`FAIL ${id} ${JSON.stringify(c.prompt).slice(0, 60)} (${bad.join(', ')})`);
    } else {
      res.passed++;
      console.log(`PASS ${id} maxAbs=0 maxRel=0 (${checked} id lists)`);
    }
  });
  return res;
}
