// Training checkpoints of the classifier, in the format of @foliar/nn's training loop
// (runTrainLoop): a folder `checkpoints/checkpoint-<step>/` (trained.safetensors: the model;
// optimizer.safetensors; state.json: step, optimizer, schedule, losses, and under "trainer" the
// classifier's own state: config, class names, epoch and batch position, epoch sums, history,
// early-stopping state, RNG), and `checkpoints/best/`, the full checkpoint of the best epoch so far.
// Folders appear atomically (written under another name, renamed).
//
// Runs written before the move onto the shared loop hold one-file checkpoints
// (`checkpoints/step-<n>.safetensors`, `checkpoints/best.safetensors`: tensors `model.*` and `optim.*`,
// state in the header metadata) and `log.jsonl`: `loadCheckpoint` and `loadTrainedModel` still read
// those files; the trainer refuses to continue such a run, naming what changed.
import { readdir } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, tensor, noGrad, type Tensor } from '@foliar/tensor';
import { readCheckpointState, readSafetensors, BEST_CHECKPOINT, type Module, type Optimizer, type OptimizerState } from '@foliar/nn';
import { DEFAULT_CONFIG, validateConfig, type TrainConfig } from './config.js';

/** The format of the one-file checkpoints written before the shared loop (read only). */
export const CHECKPOINT_FORMAT = 'foliar-classifier-checkpoint';
/** The `format` of the classifier's state in a checkpoint folder's state.json ("trainer"). */
export const TRAINER_STATE_FORMAT = 'foliar-classifier';
const META_KEY = 'foliar.checkpoint';

/** One finished epoch. */
export interface EpochRecord {
  epoch: number;
  steps: number;
  lr: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number;
  valAccuracy: number;
  valMacroF1: number;
  valMeanAuc: number | null;
  seconds: number;
  imagesPerSecond: number;
  liveBuffers: number;
  liveTensors: number;
  peakBytes: number;
}

/** Sums over the steps of the epoch in progress (so a mid-epoch resume reports the same means). */
export interface EpochAccumulator {
  lossSum: number;
  correct: number;
  seen: number;
  steps: number;
  seconds: number;
}

/**
 * The classifier's part of a checkpoint folder's state.json (its "trainer" field). The step, the
 * schedule and the optimizer's scalars are the loop's own fields of state.json.
 */
export interface ClassifierTrainerState {
  format: typeof TRAINER_STATE_FORMAT;
  version: 2;
  config: TrainConfig;
  classNames: string[];
  /** Epoch in progress, or the next to start when `batch` is 0. */
  epoch: number;
  /** Next batch of `epoch` to train on. */
  batch: number;
  accum: EpochAccumulator;
  history: EpochRecord[];
  /** The default generator (model initialisation, dropout). */
  generator: { seed: number; counter: number };
  monitor: { best: number | null; bestEpoch: number | null; badEpochs: number };
  /** Training seconds spent before this checkpoint (across resumes). */
  elapsedSeconds: number;
  /** Set once training finished (early stop or last epoch). */
  finished: boolean;
}

/** A checkpoint's training state as one object, whichever format it was read from. */
export interface TrainingState {
  /** TRAINER_STATE_FORMAT (a checkpoint folder) or CHECKPOINT_FORMAT (an old one-file checkpoint). */
  format: typeof TRAINER_STATE_FORMAT | typeof CHECKPOINT_FORMAT;
  version: 1 | 2;
  config: TrainConfig;
  classNames: string[];
  /** Epoch in progress, or the next to start when `batch` is 0. */
  epoch: number;
  /** Next batch of `epoch` to train on. */
  batch: number;
  globalStep: number;
  accum: EpochAccumulator;
  history: EpochRecord[];
  scheduler: { step: number; baseLrs: number[] };
  optimizer: OptimizerState['meta'];
  generator: { seed: number; counter: number };
  monitor: { best: number | null; bestEpoch: number | null; badEpochs: number };
  /** Old one-file checkpoints only: the length of the run's log.jsonl when it was taken. */
  logBytes?: number;
  /** Training seconds spent before this checkpoint (across resumes). */
  elapsedSeconds: number;
  /** Set once training finished (early stop or last epoch). */
  finished: boolean;
}

type HostTensor = { shape: number[]; data: Float32Array | Int32Array };

export interface LoadedCheckpoint {
  path: string;
  state: TrainingState;
  model: Map<string, HostTensor>;
  optimizer: Map<string, HostTensor>;
}

/**
 * Reads a checkpoint: a folder written by the training loop (`checkpoints/checkpoint-<step>/`,
 * `checkpoints/best/`) or an old one-file checkpoint (`*.safetensors`). Every field is checked;
 * errors name the file (state.json for a folder) and the field.
 */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  if (!existsSync(path)) {
    const moved = movedCheckpointHint(path);
    throw new Error(`${path}: no such checkpoint${moved ? ` (${moved})` : ''}`);
  }
  if (!statSync(path).isDirectory()) return loadLegacyCheckpoint(path);
  const statePath = join(path, 'state.json');
  const loop = await readCheckpointState(path);
  const t = loop.trainer;
  if (!isObj(t) || t.format !== TRAINER_STATE_FORMAT) {
    throw new Error(`${statePath}: not a classifier checkpoint (its "trainer" state is ${isObj(t) ? `of format ${JSON.stringify(t.format)}` : 'missing'}; written by another trainer?)`);
  }
  if (t.version !== 2) throw new Error(`${statePath}: unsupported classifier state version ${JSON.stringify(t.version)}`);
  // cast: checked field by field by checkTrainingState below
  const state = { ...(t as unknown as ClassifierTrainerState), globalStep: loop.step, scheduler: loop.scheduler, optimizer: loop.optimizer } as TrainingState;
  checkTrainingState(state, statePath);
  const model = await readSafetensors(join(path, 'trained.safetensors'));
  const optimizer = await readSafetensors(join(path, 'optimizer.safetensors'));
  return { path, state, model, optimizer };
}

/**
 * For a missing `checkpoints/best.safetensors` or `checkpoints/step-<n>.safetensors` whose run has the
 * new folders: what changed, and the folder to use instead.
 */
export function movedCheckpointHint(path: string): string | null {
  const m = /^(.*)[\\/](best|step-0*(\d+))\.safetensors$/.exec(path);
  if (!m) return null;
  const folder = join(m[1]!, m[2] === 'best' ? BEST_CHECKPOINT : `checkpoint-${m[3]}`);
  if (!existsSync(folder)) return null;
  return `classifier checkpoints are folders now, in the format of @foliar/nn's training loop: use ${folder}`;
}

/** Reads an old one-file checkpoint (written before the shared training loop); errors name the file. */
async function loadLegacyCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const f = await SafetensorsFile.open(path);
  try {
    const raw = f.metadata[META_KEY];
    if (raw === undefined) throw new Error(`${path}: not a foliar classifier checkpoint (no "${META_KEY}" metadata; a plain weights file? use it with --weights)`);
    let state: TrainingState;
    try {
      state = JSON.parse(raw) as TrainingState;
    } catch (e) {
      throw new Error(`${path}: corrupt checkpoint metadata (${(e as Error).message})`);
    }
    if (state === null || typeof state !== 'object' || Array.isArray(state)) throw new Error(`${path}: corrupt checkpoint metadata (${JSON.stringify(state)} is not an object)`);
    if (state.format !== CHECKPOINT_FORMAT || state.version !== 1) throw new Error(`${path}: unsupported checkpoint format ${String(state.format)} v${String(state.version)}`);
    checkTrainingState(state, path);
    const model = new Map<string, HostTensor>();
    const optimizer = new Map<string, HostTensor>();
    for (const name of f.keys()) {
      const e = f.entry(name)!;
      const isInt = e.dtype.startsWith('I') || e.dtype.startsWith('U');
      const r = await f.read(name, { as: isInt ? 'int32' : 'float32' });
      const v = { shape: [...e.shape], data: r.data as Float32Array | Int32Array };
      if (name.startsWith('model.')) model.set(name.slice(6), v);
      else if (name.startsWith('optim.')) optimizer.set(name.slice(6), v);
      else throw new Error(`${path}: unexpected tensor "${name}" (expected model.* or optim.*)`);
    }
    return { path, state, model, optimizer };
  } finally {
    f.close();
  }
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The position and bookkeeping a resume trusts, checked against each other and the run's config
 * (a tampered `epoch: 99` or `batch: -3` would skip training or index past the data); errors name
 * the file and the field.
 */
export function checkTrainingState(state: TrainingState, path: string): void {
  // cast: the state comes from a file; each field is checked by name below
  const s = state as unknown as Record<string, unknown>;
  const bad = (field: string, want: string, v: unknown = s[field]): never => {
    throw new Error(`${path}: checkpoint field "${field}" must be ${want}, got ${JSON.stringify(v) ?? String(v)}`);
  };
  if (!isObj(s.config)) bad('config', 'the run\'s config object');
  // the run's config as the trainer will use it (defaults for keys older checkpoints lack)
  const config = validateConfig({ ...DEFAULT_CONFIG, ...(s.config as Partial<TrainConfig>) }, `${path}: checkpoint config`);
  if (!Array.isArray(s.classNames) || s.classNames.length < 2 || !s.classNames.every((c) => typeof c === 'string' && c !== '')) bad('classNames', 'an array of at least two class names');
  if (new Set(s.classNames as string[]).size !== (s.classNames as string[]).length) bad('classNames', 'distinct names');
  if (!isInt(s.epoch) || s.epoch < 0 || s.epoch > config.epochs) bad('epoch', `an integer in [0, ${config.epochs}] (the config's epochs)`);
  const epoch = s.epoch as number;
  if (!isInt(s.batch) || s.batch < 0) bad('batch', 'a non-negative integer');
  if ((s.batch as number) > 0 && epoch >= config.epochs) bad('batch', `0 once all ${config.epochs} epochs are done`);
  if (!isInt(s.globalStep) || s.globalStep < 0) bad('globalStep', 'a non-negative integer');
  if (typeof s.finished !== 'boolean') bad('finished', 'true or false');
  if (!Array.isArray(s.history) || s.history.length !== epoch || !s.history.every(isObj)) bad('history', `one record per finished epoch (${epoch})`, Array.isArray(s.history) ? `${s.history.length} records` : s.history);
  const a = s.accum;
  if (!isObj(a) || !isNum(a.lossSum) || !isInt(a.correct) || a.correct < 0 || !isInt(a.seen) || a.seen < a.correct || !isInt(a.steps) || a.steps < 0 || !isNum(a.seconds) || a.seconds < 0) {
    bad('accum', '{lossSum, correct ≤ seen, steps, seconds ≥ 0}');
  }
  const sc = s.scheduler;
  if (!isObj(sc) || !isInt(sc.step) || sc.step < 0 || !Array.isArray(sc.baseLrs) || !sc.baseLrs.every((x) => isNum(x) && x >= 0)) bad('scheduler', '{step ≥ 0, baseLrs: numbers ≥ 0}');
  const g = s.generator;
  if (!isObj(g) || !isInt(g.seed) || !isInt(g.counter) || g.counter < 0) bad('generator', '{seed, counter ≥ 0} integers');
  const m = s.monitor;
  if (!isObj(m) || !(m.best === null || isNum(m.best)) || !isInt(m.badEpochs) || m.badEpochs < 0 || m.badEpochs > epoch) bad('monitor', `{best, bestEpoch, badEpochs ≤ ${epoch}}`);
  const be = (m as Record<string, unknown>).bestEpoch;
  if (!(be === null || (isInt(be) && be >= 1 && be <= epoch))) bad('monitor.bestEpoch', `null or an epoch in [1, ${epoch}]`, be);
  if (s.logBytes !== undefined && (!isInt(s.logBytes) || s.logBytes < 0)) bad('logBytes', 'a non-negative integer');
  if (!isNum(s.elapsedSeconds) || s.elapsedSeconds < 0) bad('elapsedSeconds', 'a non-negative number');
  const o = s.optimizer;
  if (!isObj(o) || !isObj(o.scalars) || !Array.isArray(o.groups)) bad('optimizer', '{scalars, groups}');
}

/** Copies a checkpoint's weights into `model` (strict: every key must match). */
export function restoreModel(model: Module, ckpt: Pick<LoadedCheckpoint, 'model' | 'path'>): void {
  model.loadStateDict(ckpt.model, { context: ckpt.path });
}

/** Restores the optimizer's per-parameter tensors, scalars and group hyper-parameters. */
export function restoreOptimizer(optimizer: Optimizer<{ lr: number }>, ckpt: LoadedCheckpoint): void {
  const tensors = new Map<string, Tensor>();
  try {
    noGrad(() => {
      for (const [k, v] of ckpt.optimizer) tensors.set(k, tensor(v.data, { shape: v.shape }));
    });
    optimizer.loadStateDict({ tensors, meta: ckpt.state.optimizer });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/**
 * The checkpoint folders of a run: `checkpoints/checkpoint-<step>/` (the newest `keepLast`, pruned by
 * the training loop) and `checkpoints/best/` (the full checkpoint of the best epoch so far, written
 * before the step checkpoint that records it, which links the same files).
 */
export class CheckpointDir {
  constructor(readonly dir: string) {}

  pathForStep(step: number): string {
    return join(this.dir, `checkpoint-${step}`);
  }
  get bestPath(): string {
    return join(this.dir, BEST_CHECKPOINT);
  }

  /** Step checkpoints, oldest first. */
  async list(): Promise<{ step: number; path: string }[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    return names
      .map((n) => ({ m: /^checkpoint-(\d+)$/.exec(n), n }))
      .filter((x): x is { m: RegExpExecArray; n: string } => x.m !== null)
      .map(({ m, n }) => ({ step: Number(m[1]), path: join(this.dir, n) }))
      .sort((a, b) => a.step - b.step);
  }

  async latest(): Promise<string | null> {
    const l = await this.list();
    return l.length ? l[l.length - 1]!.path : null;
  }
}

/**
 * The files of a run written before the shared training loop (one-file checkpoints, log.jsonl),
 * relative to `runDir`; empty for a run of this version.
 */
export async function legacyRunFiles(runDir: string): Promise<string[]> {
  const found: string[] = [];
  const ck = join(runDir, 'checkpoints');
  if (existsSync(ck)) {
    const names = await readdir(ck);
    const steps = names.filter((n) => /^step-\d+\.safetensors$/.test(n));
    if (steps.length) found.push(`checkpoints/${steps.length === 1 ? steps[0] : 'step-<n>.safetensors'}`);
    if (names.includes('best.safetensors')) found.push('checkpoints/best.safetensors');
  }
  if (existsSync(join(runDir, 'log.jsonl'))) found.push('log.jsonl');
  return found;
}
