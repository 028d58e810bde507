import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One case of a golden directory's manifest.json (see ../shared/golden/README.md). */
export interface GoldenCase {
  group: string;
  name: string;
  op: string;
  file: string;
  attrs?: Record<string, unknown>;
  roles?: { inputs?: string[]; outputs?: string[]; cotangents?: string[]; grads?: string[] };
  notes?: string;
  tensors: Record<string, { shape: number[]; dtype: string }>;
}

export interface GoldenManifest {
  format?: unknown;
  generator?: Record<string, unknown>;
  cases: GoldenCase[];
}

export async function loadManifest(dir: string): Promise<GoldenManifest> {
  const path = join(dir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`golden: cannot read ${path}: ${(e as Error).message}`);
  }
  let m: GoldenManifest;
  try {
    m = JSON.parse(text) as GoldenManifest;
  } catch (e) {
    throw new Error(`golden: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(m.cases)) throw new Error(`golden: ${path} has no "cases" array`);
  return m;
}
