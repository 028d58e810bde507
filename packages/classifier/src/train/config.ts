// Training configuration: one flat, JSON-serializable object (so a run directory's config.json,
// a `--config` file and the CLI flags all speak the same keys), defaults and validation.
import { readFile } from 'node:fs/promises';
import type { DegradationOptions } from '../data/transforms.js';

import { ARCHS, type Arch } from './model.js';
export { ARCHS, type Arch };
export type OptimizerName = 'sgd' | 'adamw';
export type ClassWeighting = 'none' | 'inverse' | 'effective';
export type MonitorMetric = 'val_loss' | 'val_accuracy' | 'val_macro_f1' | 'val_mean_auc';

/** Extra training images of one class, e.g. synthetic ones made by a fine-tuned diffusion model. */
export interface ExtraTrainImages {
  /** Class name (must be one of the dataset's classes). */
  className: string;
  /** Folder of images (@foliar/data's IMAGE_EXTENSIONS: .png/.jpg/.jpeg/.webp; sorted by name). */
  dir: string;
  /** Use only the first `limit` images (default: all). */
  limit?: number;
}

/** Item ids of an explicit split (e.g. from `protocolSplit` / splits.json). */
export interface SplitIdLists {
  train: string[];
  val: string[];
  test: string[];
}

export interface TrainConfig {
  /** Dataset folder in any supported layout; null = the embedded synthetic leaves. */
  data: string | null;
  /**
   * Images per class: for synthetic data the counts generated, for a folder a seeded per-class
   * subsample (null = every image). Default: the Plant Pathology 2020 training imbalance.
   */
  counts: Record<string, number> | null;
  /** Seed of the synthetic images (independent of the training seed). */
  syntheticSeed: number;
  /**
   * Images added to the training split only (never to validation or test), e.g. the study's 400
   * synthetic multiple_diseases images.
   */
  extraTrain: ExtraTrainImages[];
  /**
   * Explicit split by item id (dataset ids; `<syntheticSeed>/<index>` for the synthetic pool
   * rendered from `counts`). When set it replaces the seeded split: `valFraction`, `testFraction`,
   * `heldOutTest` and the `counts` subsample of a folder are not used. null = seeded split.
   */
  split: SplitIdLists | null;
  /** Square input side the network sees. */
  imageSize: number;
  /** Stratified split fractions of the pool (train gets the rest). */
  valFraction: number;
  testFraction: number;
  /**
   * When > 0, the test set is instead up to this many held-out images per class that are not in
   * the pool: the images a `counts` subsample left out (folder), or freshly generated ones
   * (synthetic). Gives the rare class a test set large enough to measure.
   */
  heldOutTest: number;
  /** Random resized crop, flips, 90° rotations and light colour jitter on training images. */
  augment: boolean;
  /**
   * Photometric degradations of training images after the augmentation (with `augment` false, after
   * the resize): random down-up resampling, Gaussian blur and pixel noise, each with its probability
   * and strength range. Absent (the default) = none. Optional rather than defaulted so that configs
   * without it resolve, save and hash exactly as before the key existed (stage caches, checkpoints).
   */
  degrade?: DegradationOptions;
  arch: Arch;
  epochs: number;
  batchSize: number;
  evalBatchSize: number;
  /** Stop an epoch after this many steps (0 = the whole epoch): for quick profiles and tests. */
  maxStepsPerEpoch: number;
  optimizer: OptimizerName;
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  /** Linear warmup length in epochs (may be fractional), then cosine decay. */
  warmupEpochs: number;
  /** Final learning rate as a fraction of `lr`. */
  minLrRatio: number;
  labelSmoothing: number;
  /** Class-weighted cross-entropy (weights from the training counts). */
  classWeights: ClassWeighting;
  /** Draw training batches class-balanced (with replacement) instead of shuffling. */
  balancedSampling: boolean;
  /** Metric that selects the best checkpoint and drives early stopping. */
  monitor: MonitorMetric;
  /** Epochs without improvement of `monitor` before stopping (0 = never stop early). */
  patience: number;
  seed: number;
  /** Epoch checkpoints kept (older ones are deleted); `best` is kept separately. */
  keepLast: number;
  /** Also checkpoint every this many steps (0 = at epoch ends only). */
  checkpointEvery: number;
}

export const PP2020_COUNTS: Readonly<Record<string, number>> = { healthy: 516, multiple_diseases: 91, rust: 622, scab: 592 };

export const DEFAULT_CONFIG: Readonly<TrainConfig> = Object.freeze({
  data: null,
  counts: { ...PP2020_COUNTS },
  syntheticSeed: 0,
  extraTrain: [],
  split: null,
  imageSize: 64,
  valFraction: 0.15,
  testFraction: 0.15,
  heldOutTest: 0,
  augment: true,
  arch: 'resnet18',
  epochs: 10,
  batchSize: 32,
  evalBatchSize: 64,
  maxStepsPerEpoch: 0,
  optimizer: 'sgd',
  lr: 0.05,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  warmupEpochs: 1,
  minLrRatio: 0.01,
  labelSmoothing: 0,
  classWeights: 'none',
  balancedSampling: false,
  monitor: 'val_mean_auc',
  patience: 0,
  seed: 0,
  keepLast: 2,
  checkpointEvery: 0,
} satisfies TrainConfig);

/** Optional keys: absent from DEFAULT_CONFIG (see `degrade`), still known. */
const OPTIONAL_KEYS: readonly (keyof TrainConfig)[] = ['degrade'];
const KEYS = [...(Object.keys(DEFAULT_CONFIG) as (keyof TrainConfig)[]), ...OPTIONAL_KEYS];

export class ConfigError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** `multiple_diseases=runs/synthetic` (optionally `…:400` for a limit) → ExtraTrainImages. */
export function parseExtraTrain(text: string, source = '--extra-train'): ExtraTrainImages {
  const m = /^([^=]+)=(.+?)(?::(\d+))?$/.exec(text.trim());
  if (!m) throw new ConfigError(source, `expected <class>=<folder>[:<limit>], got "${text}"`);
  return { className: m[1]!.trim(), dir: m[2]!, ...(m[3] ? { limit: Number(m[3]) } : {}) };
}

/** `healthy=516,rust=622` → `{ healthy: 516, rust: 622 }`. */
export function parseCounts(text: string, source = 'counts'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([^=]+)=(\d+)$/.exec(part);
    if (!m) throw new ConfigError(source, `expected name=count pairs separated by commas, got "${part}"`);
    out[m[1]!.trim()] = Number(m[2]);
  }
  if (Object.keys(out).length === 0) throw new ConfigError(source, 'no class counts given');
  return out;
}

const SPLIT_PARTS = ['train', 'val', 'test'] as const;

/** Shape of `split`: three non-empty arrays of unique id strings (overlaps are checked against the data). */
function checkSplitIds(split: unknown, source: string): void {
  const s = split as Record<string, unknown>;
  if (typeof split !== 'object' || split === null || Array.isArray(split)) throw new ConfigError(source, '"split" must be { train: string[], val: string[], test: string[] } or null');
  const extra = Object.keys(s).filter((k) => !(SPLIT_PARTS as readonly string[]).includes(k));
  if (extra.length) throw new ConfigError(source, `"split" has unknown key(s) ${extra.map((k) => `"${k}"`).join(', ')} (known: train, val, test)`);
  for (const part of SPLIT_PARTS) {
    const ids = s[part];
    if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string' || id === '')) throw new ConfigError(source, `"split.${part}" must be an array of item id strings`);
    if (ids.length === 0) throw new ConfigError(source, `"split.${part}" is empty (training needs images in train, val and test)`);
    const seen = new Set<string>();
    const twice = (ids as string[]).filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
    if (twice.length) throw new ConfigError(source, `"split.${part}" lists ${twice.length} id(s) twice: ${twice.slice(0, 5).map((i) => `"${i}"`).join(', ')}${twice.length > 5 ? ', …' : ''}`);
  }
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Upper bounds of the degradations' strengths: past them an image no longer shows its class at any size used here. */
const DEGRADE_LIMITS = { resample: { key: 'factor', lo: 1, hi: 8, unit: '' }, blur: { key: 'sigma', lo: 0, hi: 16, unit: ' px' }, noise: { key: 'std', lo: 0, hi: 64, unit: ' (of 255)' } } as const;

/** Shape and ranges of `degrade`; errors name the offending field, e.g. "degrade.blur.sigma". */
function checkDegrade(d: unknown, source: string): void {
  const fail = (field: string, want: string, got: unknown): never => {
    throw new ConfigError(source, `"${field}" must be ${want}, got ${JSON.stringify(got)}`);
  };
  if (typeof d !== 'object' || d === null || Array.isArray(d)) fail('degrade', 'an object { resample?, blur?, noise? }', d);
  const o = d as Record<string, unknown>;
  const names = Object.keys(DEGRADE_LIMITS);
  const extra = Object.keys(o).filter((k) => !names.includes(k));
  if (extra.length) throw new ConfigError(source, `"degrade" has unknown key(s) ${extra.map((k) => `"${k}"`).join(', ')} (known: ${names.join(', ')})`);
  for (const [name, lim] of Object.entries(DEGRADE_LIMITS)) {
    const e = o[name];
    if (e === undefined) continue;
    const field = `degrade.${name}`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) fail(field, `an object { p, ${lim.key}${name === 'noise' ? ', kind?' : ''} }`, e);
    const r = e as Record<string, unknown>;
    const allowed = ['p', lim.key, ...(name === 'noise' ? ['kind'] : [])];
    const unknownKeys = Object.keys(r).filter((k) => !allowed.includes(k));
    if (unknownKeys.length) throw new ConfigError(source, `"${field}" has unknown key(s) ${unknownKeys.map((k) => `"${k}"`).join(', ')} (known: ${allowed.join(', ')})`);
    if (!isNum(r.p) || r.p < 0 || r.p > 1) fail(`${field}.p`, 'a probability in [0, 1]', r.p);
    const range = r[lim.key];
    const ok = Array.isArray(range) && range.length === 2 && range.every(isNum) && range[0] >= lim.lo && range[0] <= range[1] && range[1] <= lim.hi;
    if (!ok) fail(`${field}.${lim.key}`, `a range [lo, hi] with ${lim.lo} ≤ lo ≤ hi ≤ ${lim.hi}${lim.unit}`, range);
    if (name === 'noise' && r.kind !== undefined && r.kind !== 'gaussian' && r.kind !== 'uniform') fail(`${field}.kind`, '"gaussian" or "uniform"', r.kind);
  }
}

/** Throws a ConfigError naming the first invalid key; returns the config typed. */
export function validateConfig(c: TrainConfig, source = 'config'): TrainConfig {
  const bad = (key: string, want: string): never => {
    // cast: reads the offending key by name for the message; TrainConfig has no index signature
    throw new ConfigError(source, `"${key}" must be ${want}, got ${JSON.stringify((c as unknown as Record<string, unknown>)[key])}`);
  };
  const unknown = Object.keys(c).filter((k) => !KEYS.includes(k as keyof TrainConfig));
  if (unknown.length) throw new ConfigError(source, `unknown key(s) ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${KEYS.join(', ')})`);
  if (c.data !== null && (typeof c.data !== 'string' || c.data === '')) bad('data', 'a folder path or null (synthetic)');
  if (c.counts === null) {
    if (c.data === null) throw new ConfigError(source, '"counts" null (--counts all: every image) needs a dataset folder ("data", --data); the synthetic leaves need counts per class');
  } else {
    if (typeof c.counts !== 'object' || Array.isArray(c.counts)) bad('counts', 'an object {class: count} or null (every image of a folder)');
    for (const [k, v] of Object.entries(c.counts)) if (!isInt(v) || v < 0) throw new ConfigError(source, `"counts.${k}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  if (!isInt(c.syntheticSeed)) bad('syntheticSeed', 'an integer');
  if (!Array.isArray(c.extraTrain)) bad('extraTrain', 'an array of { className, dir, limit? }');
  c.extraTrain.forEach((e, i) => {
    if (typeof e !== 'object' || e === null || typeof e.className !== 'string' || typeof e.dir !== 'string' || !e.dir) {
      throw new ConfigError(source, `"extraTrain[${i}]" must be { className: string, dir: string, limit?: number }, got ${JSON.stringify(e)}`);
    }
    if (e.limit !== undefined && (!isInt(e.limit) || e.limit < 1)) throw new ConfigError(source, `"extraTrain[${i}].limit" must be a positive integer, got ${JSON.stringify(e.limit)}`);
  });
  if (c.split != null) checkSplitIds(c.split, source); // `!=`: configs saved before the key existed lack it
  if (!isInt(c.imageSize) || c.imageSize < 16) bad('imageSize', 'an integer ≥ 16');
  if (!isNum(c.valFraction) || c.valFraction <= 0 || c.valFraction >= 1) bad('valFraction', 'in (0, 1)');
  if (!isNum(c.testFraction) || c.testFraction < 0 || c.testFraction >= 1) bad('testFraction', 'in [0, 1)');
  if (c.valFraction + c.testFraction >= 1) throw new ConfigError(source, `valFraction + testFraction must be < 1, got ${c.valFraction + c.testFraction}`);
  if (!isInt(c.heldOutTest) || c.heldOutTest < 0) bad('heldOutTest', 'a non-negative integer');
  if (c.split == null && c.testFraction === 0 && c.heldOutTest === 0) throw new ConfigError(source, 'no test set: set testFraction > 0 or heldOutTest > 0');
  if (typeof c.augment !== 'boolean') bad('augment', 'true or false');
  if (c.degrade !== undefined) checkDegrade(c.degrade, source);
  if (!['resnet18', 'resnet34', 'tiny'].includes(c.arch)) bad('arch', '"resnet18", "resnet34" or "tiny"');
  if (!isInt(c.epochs) || c.epochs < 1) bad('epochs', 'a positive integer');
  if (!isInt(c.batchSize) || c.batchSize < 2) bad('batchSize', 'an integer ≥ 2 (batch norm needs two samples)');
  if (!isInt(c.evalBatchSize) || c.evalBatchSize < 1) bad('evalBatchSize', 'a positive integer');
  if (!isInt(c.maxStepsPerEpoch) || c.maxStepsPerEpoch < 0) bad('maxStepsPerEpoch', 'a non-negative integer');
  if (!['sgd', 'adamw'].includes(c.optimizer)) bad('optimizer', '"sgd" or "adamw"');
  if (!isNum(c.lr) || c.lr <= 0) bad('lr', 'a positive number');
  if (!isNum(c.momentum) || c.momentum < 0 || c.momentum >= 1) bad('momentum', 'in [0, 1)');
  if (typeof c.nesterov !== 'boolean') bad('nesterov', 'true or false');
  if (c.optimizer === 'sgd' && c.nesterov && c.momentum === 0) throw new ConfigError(source, 'nesterov needs momentum > 0');
  if (!isNum(c.weightDecay) || c.weightDecay < 0) bad('weightDecay', 'a non-negative number');
  if (!isNum(c.warmupEpochs) || c.warmupEpochs < 0) bad('warmupEpochs', 'a non-negative number');
  if (!isNum(c.minLrRatio) || c.minLrRatio < 0 || c.minLrRatio > 1) bad('minLrRatio', 'in [0, 1]');
  if (!isNum(c.labelSmoothing) || c.labelSmoothing < 0 || c.labelSmoothing >= 1) bad('labelSmoothing', 'in [0, 1)');
  if (!['none', 'inverse', 'effective'].includes(c.classWeights)) bad('classWeights', '"none", "inverse" or "effective"');
  if (typeof c.balancedSampling !== 'boolean') bad('balancedSampling', 'true or false');
  if (!['val_loss', 'val_accuracy', 'val_macro_f1', 'val_mean_auc'].includes(c.monitor)) bad('monitor', '"val_loss", "val_accuracy", "val_macro_f1" or "val_mean_auc"');
  if (!isInt(c.patience) || c.patience < 0) bad('patience', 'a non-negative integer');
  if (!isInt(c.seed) || c.seed < 0) bad('seed', 'a non-negative integer');
  if (!isInt(c.keepLast) || c.keepLast < 1) bad('keepLast', 'a positive integer');
  if (!isInt(c.checkpointEvery) || c.checkpointEvery < 0) bad('checkpointEvery', 'a non-negative integer');
  return c;
}

/** Defaults ← file ← overrides (later wins; `undefined` values in overrides are ignored). */
export function resolveConfig(...layers: Partial<TrainConfig>[]): TrainConfig {
  const out: Record<string, unknown> = { ...DEFAULT_CONFIG, counts: DEFAULT_CONFIG.counts ? { ...DEFAULT_CONFIG.counts } : null };
  for (const layer of layers) for (const [k, v] of Object.entries(layer)) if (v !== undefined) out[k] = v;
  // cast: the merged layers are validated field by field by validateConfig
  return validateConfig(out as unknown as TrainConfig);
}

/** Reads a JSON config file (a partial TrainConfig); errors name the file. */
export async function readConfigFile(path: string): Promise<Partial<TrainConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, `cannot read config file (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, `invalid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(path, 'expected a JSON object of config keys');
  const unknown = Object.keys(json).filter((k) => !KEYS.includes(k as keyof TrainConfig));
  if (unknown.length) throw new ConfigError(path, `unknown key(s) ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${KEYS.join(', ')})`);
  // a split is long and often written by a tool: check it here so its errors name the file
  const split = (json as Record<string, unknown>).split;
  if (split !== undefined && split !== null) checkSplitIds(split, path);
  const degrade = (json as Record<string, unknown>).degrade;
  if (degrade !== undefined) checkDegrade(degrade, path);
  return json as Partial<TrainConfig>;
}
