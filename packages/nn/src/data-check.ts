/**
 * Up-front dataset checks shared by the trainers: every problem found (an image that does not decode,
 * an empty split, a class too small for the split) is collected, and training refuses to start with
 * one DatasetCheckError that lists them all, instead of failing on the first one, or after epochs of
 * training when a bad image is first read.
 */

/** One thing wrong with a dataset. */
export interface DataProblem {
  /** The file (an image, a CSV); absent for problems of the whole set (an empty split). */
  file?: string;
  /** Where the file was listed: `train.csv:12`, `metadata.jsonl line 3`. */
  line?: string;
  /** The item's id in its dataset. */
  id?: string;
  /** Which part of the data (train, val, test, extra train, instance images…). */
  part?: string;
  /** What is wrong. */
  why: string;
}

/** Problems listed in the message; every one is in `problems`. */
export const LISTED_PROBLEMS = 100;

export function formatProblem(p: DataProblem): string {
  const where = [p.line, p.id !== undefined ? `id "${p.id}"` : undefined, p.part].filter((s) => s !== undefined && s !== '');
  if (p.file === undefined) return where.length ? `${where.join(', ')}: ${p.why}` : p.why;
  return `${p.file}${where.length ? ` (${where.join(', ')})` : ''}: ${p.why}`;
}

/**
 * Every problem of a dataset, found before training: the first line says what was checked and how
 * many problems there are, then one line per problem (file, line or id, part: why), up to
 * LISTED_PROBLEMS of them.
 */
export class DatasetCheckError extends Error {
  override name = 'DatasetCheckError';
  constructor(
    /** What was checked, e.g. `image-folder:/data/leaves`. */
    readonly what: string,
    readonly problems: DataProblem[],
  ) {
    const n = problems.length;
    const lines = problems.slice(0, LISTED_PROBLEMS).map((p) => `  ${formatProblem(p)}`);
    if (n > LISTED_PROBLEMS) lines.push(`  … and ${n - LISTED_PROBLEMS} more`);
    super(`${what}: ${n} problem${n === 1 ? '' : 's'} found before training (nothing was trained):\n${lines.join('\n')}`);
  }
}

/** Throws a DatasetCheckError when `problems` is not empty. */
export function throwIfProblems(what: string, problems: DataProblem[]): void {
  if (problems.length) throw new DatasetCheckError(what, problems);
}

/**
 * Runs `fn` on every item with at most `limit` calls in flight (decoding thousands of images at once
 * would exhaust file handles and memory); results in item order.
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`mapBounded: limit must be a positive integer, got ${limit}`);
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The message of an error without the `cannot decode image <file>: ` prefix a decoder may add. */
export function reasonOf(e: unknown, file?: string): string {
  let m = (e instanceof Error ? e.message : String(e)).trim();
  if (file !== undefined) m = m.replace(`cannot decode image ${file}: `, '');
  return m.split('\n')[0]!.trim();
}
