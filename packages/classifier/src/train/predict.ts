// Per-image class probabilities for a folder or a list of image files, as CSV.
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isImageFile, IMAGE_EXTENSIONS } from '@foliar/data';
import { decodeImage } from '../data/decode.js';
import { normalizeToChw } from '../data/transforms.js';
import { logitsOf, softmaxRows } from './evaluate.js';
import type { Classifier } from './model.js';


/** Expands folders (recursively, sorted) into their image files; files are kept as given. */
export async function listImages(inputs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const input of inputs) {
    const p = resolve(input);
    let s;
    try {
      s = await stat(p);
    } catch {
      throw new Error(`${input}: no such file or folder`);
    }
    if (s.isDirectory()) {
      const walk = async (dir: string): Promise<void> => {
        const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
        for (const e of entries) {
          if (e.name.startsWith('.')) continue;
          if (e.isDirectory()) await walk(join(dir, e.name));
          else if (isImageFile(e.name)) out.push(join(dir, e.name));
        }
      };
      await walk(p);
    } else out.push(p);
  }
  if (out.length === 0) throw new Error(`no images (${IMAGE_EXTENSIONS.join(', ')}) in ${inputs.join(', ')}`);
  return out;
}

export interface ImagePrediction {
  path: string;
  probs: number[];
  /** Index of the most probable class. */
  predicted: number;
}

/**
 * Classifies images: each is decoded and resized as in evaluation (shorter side to `imageSize`,
 * center crop), normalized with ImageNet statistics, and scored in batches.
 */
export async function predictImages(model: Classifier, paths: readonly string[], opts: { imageSize: number; numClasses: number; batchSize?: number; onBatch?: (done: number) => void }): Promise<ImagePrediction[]> {
  const bs = opts.batchSize ?? 32;
  const S = opts.imageSize;
  const C = opts.numClasses;
  model.eval();
  const out: ImagePrediction[] = [];
  for (let start = 0; start < paths.length; start += bs) {
    const chunk = paths.slice(start, start + bs);
    const imgs = await Promise.all(chunk.map((p) => decodeImage(p, { size: S, mode: 'cover' })));
    const x = new Float32Array(chunk.length * 3 * S * S);
    imgs.forEach((img, k) => normalizeToChw(img, x, k * 3 * S * S));
    const probs = softmaxRows(await logitsOf(model, x, chunk.length, S, S), C);
    chunk.forEach((p, k) => {
      const row = Array.from(probs.subarray(k * C, (k + 1) * C));
      out.push({ path: p, probs: row, predicted: row.indexOf(Math.max(...row)) });
    });
    opts.onBatch?.(out.length);
  }
  return out;
}

const csvField = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** `path,<class 1>,…,<class C>,predicted` with probabilities to 6 decimals. */
export function predictionsCsv(preds: readonly ImagePrediction[], classNames: readonly string[]): string {
  const lines = [['path', ...classNames, 'predicted'].map(csvField).join(',')];
  for (const p of preds) lines.push([csvField(p.path), ...p.probs.map((v) => v.toFixed(6)), csvField(classNames[p.predicted]!)].join(','));
  return lines.join('\n') + '\n';
}
