import { access } from 'node:fs/promises';
import sharp from 'sharp';
import { mapBounded, reasonOf, throwIfProblems, type DataProblem } from '@foliar/nn';
import type { RgbImage } from '@foliar/data';

/** An image file and where it was listed (`metadata.jsonl line 3`, `train.csv row 7`), for messages. */
export interface ImageRef {
  path: string;
  listedAt?: string;
}

/** A set of training images under one name (instance images, class images, examples…). */
export interface ImageGroup {
  part: string;
  images: readonly (string | ImageRef | RgbImage)[];
}

/**
 * Why the image file at `path` cannot be used, or null: missing, no header sharp reads, or a stream
 * that does not decode to the end. The decode is cheap: JPEG shrinks on load to a thumbnail (the
 * whole entropy-coded stream is still read), and truncated or corrupt data fails (sharp's
 * failOn 'warning') instead of decoding half grey.
 */
export async function imageFileProblem(path: string): Promise<string | null> {
  try {
    await access(path);
  } catch {
    return 'file not found';
  }
  try {
    const meta = await sharp(path, { failOn: 'warning' }).metadata();
    if (!meta.width || !meta.height) return `no image size in its header (format ${meta.format ?? 'unknown'})`;
    await sharp(path, { failOn: 'warning' }).resize(32, 32, { fit: 'inside', fastShrinkOnLoad: true }).raw().toBuffer();
    return null;
  } catch (e) {
    return `does not decode: ${reasonOf(e, path)}`;
  }
}

/**
 * Checks every image file of the groups before training (decoded images pass as they are), at most
 * `concurrency` at a time, and throws one DatasetCheckError listing every missing or undecodable file
 * with where it was listed and its group. `what` names the data in the error's first line.
 */
export async function checkTrainingImages(what: string, groups: ImageGroup[], opts: { concurrency?: number } = {}): Promise<void> {
  const refs: { ref: ImageRef; part: string }[] = [];
  for (const g of groups) {
    for (const im of g.images) {
      if (typeof im === 'string') refs.push({ ref: { path: im }, part: g.part });
      else if ('path' in im && typeof im.path === 'string') refs.push({ ref: im, part: g.part });
    }
  }
  const found = await mapBounded(refs, opts.concurrency ?? 8, async ({ ref, part }): Promise<DataProblem | null> => {
    const why = await imageFileProblem(ref.path);
    return why === null ? null : { file: ref.path, ...(ref.listedAt ? { line: ref.listedAt } : {}), part, why };
  });
  throwIfProblems(what, found.filter((p): p is DataProblem => p !== null));
}
