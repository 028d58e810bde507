/** The embedded default dataset: synthetic leaves rendered lazily, per index, from a seed. */
import { LEAF_CLASSES, PP2020_TRAIN_COUNTS, isLeafLabel, type LeafImage, type LeafLabel } from './labels.js';
import { renderLeaf } from './leaf.js';
import { hashSeed, Rng } from './prng.js';

export interface SyntheticLeafOptions {
  /** Images per class (default: the Plant Pathology 2020 training counts, 1,821 images). */
  counts?: Partial<Record<LeafLabel, number>>;
  /** Side of square images, or an explicit size (default 64). */
  size?: number | { width: number; height: number };
  /** Dataset seed: decides the class order and every image (default 0). */
  seed?: number;
}

export interface LeafSample { image: LeafImage; label: LeafLabel; /** Index of `label` in `classNames`. */ target: number }

export interface SyntheticLeafDataset {
  readonly length: number;
  /** Label of every index, without rendering. */
  readonly labels: readonly LeafLabel[];
  readonly classNames: readonly LeafLabel[];
  readonly width: number;
  readonly height: number;
  /** Renders sample `i` (the same bytes on every call). */
  get(i: number): LeafSample;
}

export function syntheticLeafDataset(opts: SyntheticLeafOptions = {}): SyntheticLeafDataset {
  const counts = { ...PP2020_TRAIN_COUNTS, ...(opts.counts ?? {}) };
  for (const [k, v] of Object.entries(counts)) {
    if (!isLeafLabel(k)) throw new RangeError(`syntheticLeafDataset: unknown class '${k}' in counts (expected ${LEAF_CLASSES.join(', ')})`);
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`syntheticLeafDataset: counts.${k} must be a non-negative integer, got ${v}`);
  }
  const size = opts.size ?? 64;
  const width = typeof size === 'number' ? size : size.width;
  const height = typeof size === 'number' ? size : size.height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`syntheticLeafDataset: size must be positive integers, got ${width}x${height}`);
  }
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`syntheticLeafDataset: seed must be an integer, got ${seed}`);

  // Classes interleaved by a seeded Fisher-Yates shuffle, so any prefix is a fair sample.
  const labels: LeafLabel[] = LEAF_CLASSES.flatMap((c) => Array<LeafLabel>(counts[c]).fill(c));
  const rng = Rng.mulberry32(hashSeed(seed, 0x5b0ff1e));
  for (let i = labels.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [labels[i], labels[j]] = [labels[j]!, labels[i]!];
  }
  Object.freeze(labels);
  return {
    length: labels.length,
    labels,
    classNames: LEAF_CLASSES,
    width,
    height,
    get(i: number): LeafSample {
      if (!Number.isInteger(i) || i < 0 || i >= labels.length) {
        throw new RangeError(`syntheticLeafDataset.get: index ${i} out of range [0, ${labels.length})`);
      }
      const label = labels[i]!;
      const image = renderLeaf({ label, seed: hashSeed(seed, i) | 0, width, height });
      return { image, label, target: LEAF_CLASSES.indexOf(label) };
    },
  };
}
