// Turns a TrainConfig into labelled train/val/test sets and their loaders, for a dataset folder
// or the embedded synthetic leaves (treated as a LabeledImageSet too, so splitting, subsampling
// and reporting are one code path).
import { readDataset, type LabeledImageSet, type LabeledItem } from '../data/layouts.js';
import { ImageFileDataset, cachedDataset, type ImageDataset, type Sample } from '../data/dataset.js';
import { stratifiedSplit, subsampleByClass, classCounts, classBalancedSampler } from '../data/split.js';
import { DataLoader } from '../data/loader.js';
import { trainTransform, evalTransform, compose, randomDegradation, type ImageTransform } from '../data/transforms.js';
import { LEAF_CLASSES } from '../data/synthetic/labels.js';
import { syntheticLeafDataset, type SyntheticLeafDataset } from '../data/synthetic/dataset.js';
import { readdir, access } from 'node:fs/promises';
import { mapBounded, reasonOf, throwIfProblems, type DataProblem } from '@foliar/nn';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isImageFile, IMAGE_EXTENSIONS } from '@foliar/data';
import type { TrainConfig, ExtraTrainImages, SplitIdLists } from './config.js';

/** A labelled image set plus the way to load its items as decoded images. */
export interface ImageSource {
  set: LabeledImageSet;
  /** Decoded images (at the config's image size) of `items`, which must come from this source. */
  open(items: LabeledItem[]): ImageDataset;
}

export interface PreparedData {
  classNames: string[];
  /** The pool's origin (`image-folder:/data/leaves`, `synthetic(…)`). */
  source: string;
  /** How train/val/test were made, for messages (`valFraction 0.15, testFraction 0.15`). */
  splitHow: string;
  /** One line describing where the images come from and how they were split. */
  description: string;
  train: LabeledImageSet;
  val: LabeledImageSet;
  test: LabeledImageSet;
  /** Images per class in `train` (the dataset's own images). */
  trainCounts: number[];
  /** Extra training images per class (config.extraTrain); the loader draws from both. */
  extraCounts: number[];
  trainLoader: DataLoader;
  valLoader: DataLoader;
  testLoader: DataLoader;
}

const SYNTHETIC_PREFIX = 'synthetic:';
// Held-out synthetic test images come from a generator seed no training pool uses.
const HELD_OUT_SEED_OFFSET = 1_000_003;

/** The synthetic leaves as a labelled set; item paths are `synthetic:<seed>/<index>`. */
export function syntheticSource(counts: Record<string, number>, size: number, seed: number): ImageSource {
  for (const k of Object.keys(counts)) {
    if (!(LEAF_CLASSES as readonly string[]).includes(k)) throw new Error(`synthetic data: unknown class "${k}" in counts (classes: ${LEAF_CLASSES.join(', ')})`);
  }
  const full = Object.fromEntries(LEAF_CLASSES.map((c) => [c, counts[c] ?? 0]));
  const ds = syntheticLeafDataset({ counts: full, size, seed });
  const items: LabeledItem[] = ds.labels.map((l, i) => ({ path: `${SYNTHETIC_PREFIX}${seed}/${i}`, id: `${seed}/${i}`, label: LEAF_CLASSES.indexOf(l) }));
  const set: LabeledImageSet = { classNames: [...LEAF_CLASSES], items, source: `synthetic(seed=${seed}, ${size}px)` };
  return { set, open: (list) => syntheticItems(ds, seed, list) };
}

function syntheticItems(ds: SyntheticLeafDataset, seed: number, list: LabeledItem[]): ImageDataset {
  const idx = list.map((it) => {
    const m = /^synthetic:(-?\d+)\/(\d+)$/.exec(it.path);
    if (!m || Number(m[1]) !== seed) throw new Error(`synthetic data: item "${it.path}" does not belong to the synthetic set with seed ${seed}`);
    return Number(m[2]);
  });
  // rendering costs more than a training image's augmentation: keep each one once rendered
  return cachedDataset({
    length: list.length,
    get: (i: number): Sample => ({ image: ds.get(idx[i]!).image, label: list[i]!.label }),
  });
}

/**
 * A dataset folder (any supported layout), decoded by sharp straight to `size`, cached. Missing image
 * files are an error here unless `skipFileCheck` (the trainer's dataset check lists them with the rest).
 */
export async function folderSource(dir: string, size: number, opts: { skipFileCheck?: boolean } = {}): Promise<ImageSource> {
  const set = await readDataset(dir, { skipFileCheck: opts.skipFileCheck ?? false });
  return {
    set,
    open: (list) => new ImageFileDataset({ ...set, items: list }, { size, cache: true }),
  };
}


/** The images of `config.extraTrain` as labelled items (class names checked against `classNames`). */
export async function readExtraTrain(extras: ExtraTrainImages[], classNames: string[]): Promise<LabeledItem[]> {
  const items: LabeledItem[] = [];
  for (const e of extras) {
    const label = classNames.indexOf(e.className);
    if (label < 0) throw new Error(`extraTrain: unknown class "${e.className}" (classes: ${classNames.join(', ')})`);
    const dir = resolve(e.dir);
    if (!existsSync(dir)) throw new Error(`extraTrain: folder ${dir} (class ${e.className}) does not exist`);
    const files = (await readdir(dir)).filter((f) => isImageFile(f)).sort();
    if (!files.length) throw new Error(`extraTrain: folder ${dir} (class ${e.className}) has no ${IMAGE_EXTENSIONS.join('/')} images`);
    for (const f of files.slice(0, e.limit ?? files.length)) items.push({ path: join(dir, f), id: `extra:${e.className}/${f}`, label });
  }
  return items;
}

/** Two datasets read as one (the dataset's training images, then the extra ones). */
function concatDatasets(a: ImageDataset, b: ImageDataset): ImageDataset {
  return {
    length: a.length + b.length,
    get: (i: number) => (i < a.length ? a.get(i) : b.get(i - a.length)),
  };
}

/** Per-class minimum of `want` and what `set` has: the held-out test counts. */
function capCounts(set: LabeledImageSet, want: number): number[] {
  return classCounts(set).map((n) => Math.min(n, want));
}

export function trainingTransform(config: Pick<TrainConfig, 'imageSize' | 'augment' | 'degrade'>): ImageTransform {
  const base = augmentTransform(config);
  // degradations last, and only when configured: without them every random draw stays as it was
  return config.degrade ? compose(base, randomDegradation(config.degrade)) : base;
}

function augmentTransform(config: Pick<TrainConfig, 'imageSize' | 'augment'>): ImageTransform {
  if (!config.augment) return evalTransform(config.imageSize);
  return trainTransform({
    size: config.imageSize,
    cropScale: [0.5, 1],
    horizontalFlip: true,
    verticalFlip: true,
    rotate90: true, // leaves have no canonical orientation
    // no hue jitter: colour is what tells rust (orange) from scab (olive-brown)
    colorJitter: { brightness: 0.2, contrast: 0.2, saturation: 0.2 },
  });
}

const listIds = (ids: string[], show = 5) => `${ids.slice(0, show).map((i) => `"${i}"`).join(', ')}${ids.length > show ? `, … (${ids.length} in all)` : ''}`;

/**
 * The parts of an explicit split (`config.split`), each in the source's item order. Throws naming
 * ids the source lacks and ids listed in two parts: either would silently change what is measured.
 */
export function explicitSplit(source: LabeledImageSet, split: SplitIdLists): { train: LabeledImageSet; val: LabeledImageSet; test: LabeledImageSet } {
  const parts = ['train', 'val', 'test'] as const;
  const index = new Map<string, number>();
  source.items.forEach((it, i) => {
    if (index.has(it.id)) throw new Error(`split: ${source.source} has the id "${it.id}" twice, so ids cannot name its images`);
    index.set(it.id, i);
  });
  const missing = parts.flatMap((p) => split[p].filter((id) => !index.has(id)));
  if (missing.length) throw new Error(`split: ${missing.length} id(s) are not in ${source.source}: ${listIds(missing)}`);
  const owner = new Map<string, string>();
  const overlaps: string[] = [];
  for (const p of parts) {
    for (const id of split[p]) {
      const prev = owner.get(id);
      if (prev !== undefined) overlaps.push(`"${id}" (${prev} and ${p})`);
      else owner.set(id, p);
    }
  }
  if (overlaps.length) throw new Error(`split: the train/val/test lists overlap in ${overlaps.length} id(s): ${overlaps.slice(0, 5).join(', ')}${overlaps.length > 5 ? ', …' : ''}`);
  const pick = (p: (typeof parts)[number]): LabeledImageSet => {
    const keep = new Set(split[p]);
    return { ...source, items: source.items.filter((it) => keep.has(it.id)), source: `${source.source}#${p}(explicit)` };
  };
  return { train: pick('train'), val: pick('val'), test: pick('test') };
}

interface SplitResult {
  source: ImageSource;
  testSource: ImageSource;
  pool: LabeledImageSet;
  train: LabeledImageSet;
  val: LabeledImageSet;
  test: LabeledImageSet;
  testDesc: string;
  splitHow: string;
}

/** The seeded split of the config (or its explicit one) and where test images are loaded from. */
async function splitData(config: TrainConfig, skipFileCheck: boolean): Promise<SplitResult> {
  const size = config.imageSize;
  const source = config.data === null ? syntheticSource(config.counts ?? {}, size, config.syntheticSeed) : await folderSource(config.data, size, { skipFileCheck });
  if (config.split != null) { // `!=`: configs saved before the key existed lack it
    const parts = explicitSplit(source.set, config.split);
    return { source, testSource: source, pool: source.set, ...parts, testDesc: `test ${parts.test.items.length} (explicit split)`, splitHow: 'the explicit split' };
  }
  let heldOut: ImageSource | null = null;
  let pool = source.set;
  let rest: LabeledImageSet | null = null;
  if (config.data === null) {
    if (config.heldOutTest > 0) {
      const each = Object.fromEntries(LEAF_CLASSES.map((c) => [c, config.heldOutTest]));
      heldOut = syntheticSource(each, size, config.syntheticSeed + HELD_OUT_SEED_OFFSET);
      rest = heldOut.set;
    }
  } else {
    if (config.counts) ({ subset: pool, rest } = subsampleByClass(source.set, config.counts, config.seed));
    if (config.heldOutTest > 0) {
      if (!rest || rest.items.length === 0) throw new Error(`heldOutTest: ${config.data} has no images outside the training pool (set counts to subsample, or use testFraction)`);
      heldOut = source;
    }
  }
  const val = config.valFraction, testF = heldOut ? 0 : config.testFraction;
  const split = stratifiedSplit(pool, { train: 1 - val - testF, val, test: testF }, config.seed);
  let test = split.test;
  if (heldOut && rest) test = subsampleByClass(rest, capCounts(rest, config.heldOutTest), config.seed).subset;
  const testDesc = heldOut ? `held-out test ${test.items.length} (≤${config.heldOutTest}/class)` : `test ${test.items.length}`;
  const splitHow = heldOut
    ? `valFraction ${val}, test: ≤${config.heldOutTest} images per class from outside the pool`
    : `valFraction ${val}, testFraction ${testF}`;
  return { source, testSource: heldOut ?? source, pool, train: split.train, val: split.val, test, testDesc, splitHow };
}

export interface PrepareOptions {
  /**
   * Check the data before anything trains (default false; the trainer sets it): every image of every
   * split decodes, every split is non-empty, every class with images reaches train, val and test, the
   * training split holds a batch. All problems are thrown as one DatasetCheckError (checkData).
   */
  check?: boolean;
  /** Images decoded at once by the check (default 8). */
  concurrency?: number;
}

export async function prepareData(config: TrainConfig, opts: PrepareOptions = {}): Promise<PreparedData> {
  const size = config.imageSize;
  const check = opts.check ?? false;
  const { source, testSource, pool, train, val, test, testDesc, splitHow } = await splitData(config, check);
  const classNames = [...pool.classNames];
  const trainCounts = classCounts(train);
  if (!check && train.items.length < config.batchSize) {
    throw new Error(`training set has ${train.items.length} images, fewer than one batch of ${config.batchSize}`);
  }
  const extra = await readExtraTrain(config.extraTrain, classNames);
  const extraCounts = classCounts({ classNames, items: extra });
  const trainItems = [...train.items, ...extra];
  const trainData = extra.length
    ? concatDatasets(source.open(train.items), new ImageFileDataset({ classNames, items: extra, source: 'extraTrain' }, { size, cache: true }))
    : source.open(train.items);
  const trainLoader = new DataLoader(trainData, {
    batchSize: config.batchSize,
    imageSize: size,
    seed: config.seed,
    dropLast: true, // a batch of one breaks batch-norm statistics
    transform: trainingTransform(config),
    // balanced over the dataset's and the extra images together, like the class weights
    sampler: config.balancedSampling ? classBalancedSampler(trainItems.map((it) => it.label), { seed: config.seed }) : undefined,
  });
  const evalLoader = (set: LabeledImageSet, src: ImageSource) =>
    new DataLoader(src.open(set.items), { batchSize: config.evalBatchSize, imageSize: size, shuffle: false, transform: evalTransform(size) });
  const extraDesc = extra.length ? ` + ${extraCounts.map((n, c) => (n ? `${n} extra ${classNames[c]}` : '')).filter(Boolean).join(', ')}` : '';
  const data: PreparedData = {
    classNames,
    source: pool.source,
    splitHow,
    description: `${pool.source}: train ${train.items.length}${extraDesc}, val ${val.items.length}, ${testDesc}`,
    train,
    val,
    test,
    trainCounts,
    extraCounts,
    trainLoader,
    valLoader: evalLoader(val, source),
    testLoader: evalLoader(test, testSource),
  };
  if (check) await checkData(data, { batchSize: config.batchSize, extra, concurrency: opts.concurrency });
  else {
    trainCounts.forEach((n, c) => {
      if (n === 0 && extraCounts[c] === 0) console.warn(`warning: class "${classNames[c]}" has no training images`);
    });
  }
  return data;
}

const PARTS = ['train', 'val', 'test'] as const;

/**
 * Checks prepared data before training, and throws one DatasetCheckError listing every problem:
 * - a split (train, val, test) that is empty, and a training split smaller than one batch;
 * - a class with images that the split leaves out of train, val or test ("too small for the split",
 *   naming its counts); a class without any image (a count of 0) is only warned about;
 * - every image of every split (and the extra training images) that is missing or does not decode,
 *   with its file, CSV line, id and split. Images are decoded through the loaders' datasets (at the
 *   training size, `concurrency` at a time), so the check fills their caches instead of decoding twice.
 */
export async function checkData(data: PreparedData, opts: { batchSize: number; extra?: LabeledItem[]; concurrency?: number }): Promise<void> {
  const { classNames } = data;
  const problems: DataProblem[] = [];
  const extra = opts.extra ?? [];
  const parts = { train: data.train, val: data.val, test: data.test };
  const counts = { train: classCounts(data.train).map((n, c) => n + (data.extraCounts[c] ?? 0)), val: classCounts(data.val), test: classCounts(data.test) };
  const sizes = { train: data.train.items.length + extra.length, val: data.val.items.length, test: data.test.items.length };
  const perClass = (part: (typeof PARTS)[number]) => classNames.map((c, i) => `${c} ${counts[part][i]}`).join(', ');
  for (const part of PARTS) {
    if (sizes[part] === 0) problems.push({ why: `the ${part} split is empty (${data.splitHow}; pool per class: ${classNames.map((c, i) => `${c} ${PARTS.reduce((a, p) => a + counts[p][i]!, 0)}`).join(', ')})` });
  }
  if (sizes.train > 0 && sizes.train < opts.batchSize) {
    problems.push({ why: `the training split has ${sizes.train} images, fewer than one batch of ${opts.batchSize} (${perClass('train')})` });
  }
  classNames.forEach((name, c) => {
    const total = PARTS.reduce((a, p) => a + counts[p][c]!, 0);
    if (total === 0) {
      console.warn(`warning: class "${name}" has no images (its count is 0)`);
      return;
    }
    const none = PARTS.filter((p) => counts[p][c] === 0 && sizes[p] > 0);
    if (none.length) {
      problems.push({
        why: `class "${name}" is too small for the split (${data.splitHow}): its ${total} image${total === 1 ? '' : 's'} give train ${counts.train[c]}, val ${counts.val[c]}, test ${counts.test[c]}, none in ${none.join(' or ')}`,
      });
    }
  });
  // every image, through the dataset that training and evaluation read (the synthetic ones are rendered, not read)
  const jobs: { item: LabeledItem; part: string; get: () => Promise<unknown> | unknown }[] = [];
  const add = (items: LabeledItem[], ds: { get(i: number): unknown }, part: string, offset = 0) => {
    items.forEach((item, i) => { if (!item.path.startsWith(SYNTHETIC_PREFIX)) jobs.push({ item, part, get: () => ds.get(offset + i) }); });
  };
  add(data.train.items, data.trainLoader.dataset, 'train');
  add(extra, data.trainLoader.dataset, 'extra train', data.train.items.length);
  add(data.val.items, data.valLoader.dataset, 'val');
  add(data.test.items, data.testLoader.dataset, 'test');
  const found = await mapBounded(jobs, opts.concurrency ?? 8, async ({ item, part, get }): Promise<DataProblem | null> => {
    const where = { file: item.path, ...(item.listedAt ? { line: item.listedAt } : {}), id: item.id, part: `${part} split` };
    try {
      await access(item.path);
    } catch {
      return { ...where, why: 'file not found' };
    }
    try {
      await get();
      return null;
    } catch (e) {
      return { ...where, why: `does not decode: ${reasonOf(e, item.path)}` };
    }
  });
  problems.push(...found.filter((p): p is DataProblem => p !== null));
  throwIfProblems(`dataset ${data.source}`, problems);
}
