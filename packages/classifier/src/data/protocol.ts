// The study's evaluation protocol: per seed, a stratified test set drawn first (so every arm of a
// seed is scored on the same images whatever its training counts), then validation, then a
// training subsample with the Plant Pathology 2020 imbalance. Splits are saved as id lists
// (splits.json) so any run can be checked or repeated on exactly the same images.
import type { LabeledImageSet, LabeledItem } from './layouts.js';
import { classCounts } from './split.js';
import { Rng } from './rng.js';
import { PP2020_TRAIN_COUNTS } from './synthetic/labels.js';

export interface ProtocolSplitOptions {
  seed: number;
  /**
   * Training images per class name, subsampled from what test and validation left (default: the
   * Plant Pathology 2020 counts 516/91/622/592); null = every remaining image. Every class of the
   * set needs a count.
   */
  trainCounts?: Record<string, number> | null;
  /** Validation images per class; exclusive with `valFraction`. */
  valPerClass?: number;
  /** Validation share of what the test set left, per class (default 0.1, rounded). */
  valFraction?: number;
  /** Test images per class (capped so that each class keeps at least one training image). */
  testPerClass: number;
}

export interface ProtocolSplit {
  seed: number;
  train: LabeledImageSet;
  val: LabeledImageSet;
  test: LabeledImageSet;
  /** What did not go as asked: capped test/validation sizes, training shortfalls (also printed). */
  warnings: string[];
  /** Per class name: training images asked by `trainCounts` but not available (only classes short). */
  shortfall: Record<string, number>;
}

/** Item ids of each part, as `TrainConfig.split` takes them. */
export interface SplitIds {
  train: string[];
  val: string[];
  test: string[];
}

/** splits.json: the id lists (sorted) and class counts of every seed's split. */
export interface SplitsFile {
  seeds: {
    seed: number;
    train: string[];
    val: string[];
    test: string[];
    counts: { train: Record<string, number>; val: Record<string, number>; test: Record<string, number> };
  }[];
}

const PARTS = ['train', 'val', 'test'] as const;
type Part = (typeof PARTS)[number];

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function requireUniqueIds(set: LabeledImageSet, who: string): Map<string, number> {
  const index = new Map<string, number>();
  set.items.forEach((it, i) => {
    if (index.has(it.id)) throw new Error(`${who}: ${set.source} has the id "${it.id}" twice (ids must be unique)`);
    index.set(it.id, i);
  });
  return index;
}

/** The parts of `set` given by a part number per item (-1 = unused), each in the set's order. */
function partsOf(set: LabeledImageSet, assign: Int8Array, tag: string): Pick<ProtocolSplit, Part> {
  const pick = (p: number, name: Part): LabeledImageSet => ({
    ...set,
    items: set.items.filter((_, i) => assign[i] === p),
    source: `${set.source}#${name}(${tag})`,
  });
  return { train: pick(0, 'train'), val: pick(1, 'val'), test: pick(2, 'test') };
}

function trainTargets(set: LabeledImageSet, counts: Record<string, number> | null): (number | null)[] {
  if (counts === null) return set.classNames.map(() => null);
  for (const [name, n] of Object.entries(counts)) {
    if (!set.classNames.includes(name)) throw new Error(`protocolSplit: trainCounts names the unknown class "${name}" (classes: ${set.classNames.join(', ')})`);
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`protocolSplit: trainCounts.${name} must be a positive integer, got ${n}`);
  }
  const missing = set.classNames.filter((c) => !(c in counts));
  if (missing.length) throw new Error(`protocolSplit: trainCounts has no count for ${missing.map((c) => `"${c}"`).join(', ')} (pass null to train on every remaining image)`);
  return set.classNames.map((c) => counts[c]!);
}

/**
 * Seeded stratified test / validation / training split. Per class: its ids, sorted (so the result
 * depends on the set's content, not its order), are shuffled with the seed; the first
 * `testPerClass` go to test, the next ones to validation, then up to `trainCounts[class]` to
 * training; the rest is unused. Test and validation are capped so each class keeps at least one
 * training image. The parts are disjoint by construction and keep the set's item order.
 */
export function protocolSplit(set: LabeledImageSet, opts: ProtocolSplitOptions): ProtocolSplit {
  const { seed, testPerClass } = opts;
  if (!Number.isInteger(seed)) throw new Error(`protocolSplit: seed must be an integer, got ${seed}`);
  if (!(Number.isInteger(testPerClass) && testPerClass >= 0)) throw new Error(`protocolSplit: testPerClass must be a non-negative integer, got ${testPerClass}`);
  if (opts.valPerClass !== undefined && opts.valFraction !== undefined) throw new Error('protocolSplit: give valPerClass or valFraction, not both');
  if (opts.valPerClass !== undefined && !(Number.isInteger(opts.valPerClass) && opts.valPerClass >= 0)) {
    throw new Error(`protocolSplit: valPerClass must be a non-negative integer, got ${opts.valPerClass}`);
  }
  const valFraction = opts.valFraction ?? 0.1;
  if (!(valFraction >= 0 && valFraction < 1)) throw new Error(`protocolSplit: valFraction must be in [0, 1), got ${valFraction}`);
  const targets = trainTargets(set, opts.trainCounts === undefined ? { ...PP2020_TRAIN_COUNTS } : opts.trainCounts);
  requireUniqueIds(set, 'protocolSplit');
  classCounts(set); // validates labels

  const byClass: number[][] = set.classNames.map(() => []);
  set.items.forEach((it, i) => byClass[it.label]!.push(i));
  const assign = new Int8Array(set.items.length).fill(-1);
  const warnings: string[] = [];
  const shortfall: Record<string, number> = {};
  byClass.forEach((members, c) => {
    const name = set.classNames[c]!;
    const n = members.length;
    if (n === 0) throw new Error(`protocolSplit: class "${name}" has no images in ${set.source}`);
    const order = new Rng(seed, 0x7e57, c).shuffle(members.sort((a, b) => byString(set.items[a]!.id, set.items[b]!.id)));
    const nTest = Math.min(testPerClass, n - 1);
    if (nTest < testPerClass) warnings.push(`class "${name}": test capped at ${nTest} of the ${testPerClass} asked (class has ${n}, one kept for training)`);
    const left = n - nTest;
    const askedVal = opts.valPerClass ?? Math.round(valFraction * left);
    const nVal = Math.min(askedVal, left - 1);
    if (nVal < askedVal) warnings.push(`class "${name}": validation capped at ${nVal} of the ${askedVal} asked (${left} left after test, one kept for training)`);
    const rest = left - nVal;
    const nTrain = targets[c] === null ? rest : Math.min(targets[c]!, rest);
    if (targets[c] !== null && nTrain < targets[c]!) {
      shortfall[name] = targets[c]! - nTrain;
      warnings.push(`class "${name}": ${nTrain} training images, ${targets[c]! - nTrain} short of the ${targets[c]} asked`);
    }
    order.forEach((i, k) => { assign[i] = k < nTest ? 2 : k < nTest + nVal ? 1 : k < nTest + nVal + nTrain ? 0 : -1; });
  });
  for (const w of warnings) console.warn(`warning: protocolSplit(seed=${seed}): ${w}`);
  return { seed, ...partsOf(set, assign, `seed=${seed}`), warnings, shortfall };
}

/** The id lists of a split (e.g. for `TrainConfig.split`), in the parts' order. */
export function splitIds(split: Pick<ProtocolSplit, Part>): SplitIds {
  return { train: split.train.items.map((it) => it.id), val: split.val.items.map((it) => it.id), test: split.test.items.map((it) => it.id) };
}

function namedCounts(set: LabeledImageSet): Record<string, number> {
  const counts = classCounts(set);
  return Object.fromEntries(set.classNames.map((c, i) => [c, counts[i]!]));
}

/** splits.json content for a list of splits (ids sorted, per-class counts for reading and checking). */
export function splitsJson(splits: readonly ProtocolSplit[]): SplitsFile {
  return {
    seeds: splits.map((s) => ({
      seed: s.seed,
      train: s.train.items.map((it) => it.id).sort(byString),
      val: s.val.items.map((it) => it.id).sort(byString),
      test: s.test.items.map((it) => it.id).sort(byString),
      counts: { train: namedCounts(s.train), val: namedCounts(s.val), test: namedCounts(s.test) },
    })),
  };
}

const listIds = (ids: string[], show = 5) => `${ids.slice(0, show).map((i) => `"${i}"`).join(', ')}${ids.length > show ? `, … (${ids.length} in all)` : ''}`;

/**
 * Rebuilds the splits of a splits.json against `set` (the same images, e.g. the same deduplicated
 * dataset). Throws naming the ids the set lacks, ids in two parts, and class counts that differ
 * from the file's (a sign of another dataset or other labels).
 */
export function splitsFromJson(json: unknown, set: LabeledImageSet): ProtocolSplit[] {
  const file = json as SplitsFile;
  if (typeof json !== 'object' || json === null || !Array.isArray(file.seeds)) throw new Error('splits file: expected { seeds: [{ seed, train, val, test, counts }] }');
  const index = requireUniqueIds(set, 'splitsFromJson');
  return file.seeds.map((entry, k) => {
    const where = `splits file, seeds[${k}]`;
    if (typeof entry !== 'object' || entry === null || !Number.isInteger(entry.seed)) throw new Error(`${where}: expected { seed: integer, train, val, test }`);
    const assign = new Int8Array(set.items.length).fill(-1);
    PARTS.forEach((part, p) => {
      const ids: unknown = entry[part];
      if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string')) throw new Error(`${where} (seed ${entry.seed}): "${part}" must be an array of id strings`);
      const missing = (ids as string[]).filter((id) => !index.has(id));
      if (missing.length) throw new Error(`${where} (seed ${entry.seed}): ${missing.length} ${part} id(s) are not in ${set.source}: ${listIds(missing)}`);
      const twice: string[] = [];
      for (const id of ids as string[]) {
        const i = index.get(id)!;
        if (assign[i] !== -1) twice.push(`"${id}" (${PARTS[assign[i]!]} and ${part})`);
        assign[i] = p;
      }
      if (twice.length) throw new Error(`${where} (seed ${entry.seed}): ${twice.length} id(s) listed twice: ${twice.slice(0, 5).join(', ')}${twice.length > 5 ? ', …' : ''}`);
    });
    const split: ProtocolSplit = { seed: entry.seed, ...partsOf(set, assign, `seed=${entry.seed}`), warnings: [], shortfall: {} };
    if (entry.counts) {
      for (const part of PARTS) {
        const want = entry.counts[part], got = namedCounts(split[part]);
        const differ = set.classNames.filter((c) => (want?.[c] ?? 0) !== got[c]);
        if (differ.length) {
          throw new Error(`${where} (seed ${entry.seed}): ${part} class counts differ from the file's (${differ.map((c) => `${c}: ${got[c]} here vs ${want?.[c] ?? 0}`).join(', ')}); are the labels or the dataset different?`);
        }
      }
    }
    return split;
  });
}
