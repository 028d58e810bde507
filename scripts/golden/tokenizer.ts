import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Tokenizer cases (clip_tokenizer/clip_tokenizer_cases.json), reported as clip_tokenizer/<index>. */
export async function runTokenizerCases(dir: string, filter: string): Promise<{ passed: number; failed: number; skipped: number }> {
  const path = join(dir, 'clip_tokenizer', 'clip_tokenizer_cases.json');
  const res = { passed: 0, failed: 0, skipped: 0 };
  if (!existsSync(path)) return res;
  const { readFile } = await import('node:fs/promises');
  const data = JSON.parse(await readFile(path, 'utf8')) as { cases?: unknown[] } | unknown[];
  const cases = Array.isArray(data) ? data : (data.cases ?? []);
  cases.forEach((_, i) => {
    const id = `clip_tokenizer/${i}`;
    if (filter && !id.includes(filter)) return;
    res.skipped++;
    console.log(`SKIP ${id} (tokenizer not implemented yet)`);
  });
  return res;
}
