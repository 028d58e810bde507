// Seeded dataset splitting, per-class subsampling, class-balanced sampling and class weights.
import type { LabeledImageSet, LabeledItem } from './layouts.js';
import { Rng } from './rng.js';

/** Number of items per class index. */
export function classCounts(set: Pick<LabeledImageSet, 'classNames' | 'items'>): number[] {
  const counts = new Array<number>(set.classNames.length).fill(0);
  for (const it of set.items) {
    if (!(it.label >= 0 && it.label < counts.length)) throw new Error(`item "${it.id}" has label ${it.label} outside [0, ${counts.length})`);
    counts[it.label]++;
  }
  return counts;
}

function withItems(set: LabeledImageSet, items: LabeledItem[], tag: string): LabeledImageSet {
  return { ...set, items, source: `${set.source}#${tag}` };
}

/** Item indices of each class, in the set's order. */
function indicesByClass(set: LabeledImageSet): number[][] {
  classCounts(set); // validates labels
  const by: number[][] = set.classNames.map(() => []);
  set.items.forEach((it, i) => by[it.label].push(i));
  return by;
}

export interface SplitFractions {
  train: number;
  val: number;
  /** Default: 1 - train - val. */
  test?: number;
}

export interface Split {
  train: LabeledImageSet;
  val: LabeledImageSet;
  test: LabeledImageSet;
}

/**
 * Seeded stratified split. For each class independently: shuffle its items, then take
 * round(n*val) for val, round(n*test) for test and the rest for train. Each part keeps the
 * original item order (the shuffle only decides membership), so splits are easy to diff.
 */
export function stratifiedSplit(set: LabeledImageSet, fractions: SplitFractions, seed: number): Split {
  const test = fractions.test ?? 1 - fractions.train - fractions.val;
  const parts = [fractions.train, fractions.val, test];
  if (parts.some((f) => !(f >= 0 && f <= 1)) || Math.abs(parts[0] + parts[1] + parts[2] - 1) > 1e-6) {
    throw new Error(`stratifiedSplit: fractions must be in [0, 1] and sum to 1, got train=${fractions.train} val=${fractions.val} test=${test}`);
  }
  const assign = new Int8Array(set.items.length); // 0 train, 1 val, 2 test
  indicesByClass(set).forEach((idx, c) => {
    const perm = new Rng(seed, 0x5e11, c).shuffle([...idx]);
    const nVal = Math.round(perm.length * fractions.val);
    const nTest = Math.min(perm.length - nVal, Math.round(perm.length * test));
    for (let k = 0; k < nVal; k++) assign[perm[k]] = 1;
    for (let k = nVal; k < nVal + nTest; k++) assign[perm[k]] = 2;
  });
  const pick = (v: number) => set.items.filter((_, i) => assign[i] === v);
  return { train: withItems(set, pick(0), `train(seed=${seed})`), val: withItems(set, pick(1), `val(seed=${seed})`), test: withItems(set, pick(2), `test(seed=${seed})`) };
}

/**
 * Seeded per-class subsample: take exactly `counts[c]` items of each class (by class name or as an
 * array in class order; classes not named get 0), e.g. the Kaggle 2020 training counts
 * `{ healthy: 516, multiple_diseases: 91, rust: 622, scab: 592 }`. `rest` holds everything else
 * (e.g. for evaluation). Throws if a class has fewer items than asked.
 */
export function subsampleByClass(
  set: LabeledImageSet,
  counts: Record<string, number> | readonly number[],
  seed: number,
): { subset: LabeledImageSet; rest: LabeledImageSet } {
  const want = new Array<number>(set.classNames.length).fill(0);
  if (Array.isArray(counts)) {
    if (counts.length !== set.classNames.length) throw new Error(`subsampleByClass: ${counts.length} counts for ${set.classNames.length} classes`);
    counts.forEach((n, c) => { want[c] = n; });
  } else {
    for (const [name, n] of Object.entries(counts as Record<string, number>)) {
      const c = set.classNames.indexOf(name);
      if (c < 0) throw new Error(`subsampleByClass: unknown class "${name}" (classes: ${set.classNames.join(', ')})`);
      want[c] = n;
    }
  }
  const by = indicesByClass(set);
  const keep = new Uint8Array(set.items.length);
  want.forEach((n, c) => {
    if (!(Number.isInteger(n) && n >= 0)) throw new Error(`subsampleByClass: count for "${set.classNames[c]}" must be a non-negative integer, got ${n}`);
    if (by[c].length < n) throw new Error(`subsampleByClass: class "${set.classNames[c]}" has ${by[c].length} items, fewer than the ${n} asked`);
    const perm = new Rng(seed, 0x5ab5, c).shuffle([...by[c]]);
    for (let k = 0; k < n; k++) keep[perm[k]] = 1;
  });
  return {
    subset: withItems(set, set.items.filter((_, i) => keep[i] === 1), `subsample(seed=${seed})`),
    rest: withItems(set, set.items.filter((_, i) => keep[i] === 0), `rest(seed=${seed})`),
  };
}

/** Produces the sample order for an epoch; a DataLoader accepts one in place of shuffling. */
export type Sampler = (epoch: number) => Int32Array;

/**
 * Class-balanced sampler (like PyTorch's WeightedRandomSampler with weights 1/count[label]):
 * each epoch draws `numSamples` (default: dataset size) indices with replacement, so every class
 * is drawn equally often in expectation. Reproducible from (seed, epoch).
 */
export function classBalancedSampler(labels: ArrayLike<number>, options: { seed: number; numSamples?: number }): Sampler {
  const n = labels.length;
  if (n === 0) throw new Error('classBalancedSampler: no labels');
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1);
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) { acc += 1 / counts.get(labels[i])!; cdf[i] = acc; }
  const total = acc;
  const numSamples = options.numSamples ?? n;
  return (epoch: number) => {
    const rng = new Rng(options.seed, 0xba1a, epoch);
    const out = new Int32Array(numSamples);
    for (let s = 0; s < numSamples; s++) {
      const u = rng.next() * total;
      let lo = 0, hi = n - 1; // first i with cdf[i] > u
      while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] > u) hi = mid; else lo = mid + 1; }
      out[s] = lo;
    }
    return out;
  };
}

/**
 * Per-class loss weights, normalized to sum to the number of classes (so uniform counts give 1s).
 * - `inverse`: w_c ∝ 1 / n_c.
 * - `effective`: w_c ∝ (1 - β) / (1 - β^n_c), the "effective number of samples" of Cui et al.
 *   (CVPR 2019); β → 0 gives uniform weights, β → 1 approaches `inverse`. Default β = 0.999.
 * Classes with a count of 0 get weight 0 (they never occur in the loss).
 */
export function classWeights(counts: readonly number[], mode: 'inverse' | 'effective', beta = 0.999): number[] {
  if (counts.some((n) => !(Number.isFinite(n) && n >= 0))) throw new Error(`classWeights: counts must be non-negative, got ${counts.join(',')}`);
  if (mode === 'effective' && !(beta >= 0 && beta < 1)) throw new Error(`classWeights: beta must be in [0, 1), got ${beta}`);
  const raw = counts.map((n) => (n === 0 ? 0 : mode === 'inverse' ? 1 / n : (1 - beta) / (1 - Math.pow(beta, n))));
  const sum = raw.reduce((a, b) => a + b, 0);
  if (sum === 0) throw new Error('classWeights: all counts are zero');
  return raw.map((w) => (w * counts.length) / sum);
}
