// Training checkpoints: one safetensors file per checkpoint holding the model (`model.*`), the
// optimizer state (`optim.*`) and, in the header metadata, everything else needed to continue
// exactly (config, epoch and batch position, scheduler, RNG, early-stopping state, history).
// One file means one atomic rename: a crash leaves the previous checkpoint intact.
import { readdir, unlink, copyFile, rename, link, open } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors, tensor, noGrad, type Tensor, type TensorToWrite } from '@foliar/tensor';
import type { Module, Optimizer, OptimizerState } from '@foliar/nn';
import { DEFAULT_CONFIG, validateConfig, type TrainConfig } from './config.js';

export const CHECKPOINT_FORMAT = 'foliar-classifier-checkpoint';
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

export interface TrainingState {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
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
  /** Length of the run's log.jsonl when this checkpoint was taken (resume truncates to it). */
  logBytes: number;
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

async function toWrite(t: Tensor): Promise<TensorToWrite> {
  const data = await t.data();
  return t.dtype === 'int32'
    ? { dtype: 'I32', shape: [...t.shape], data: data as Int32Array }
    : { dtype: 'F32', shape: [...t.shape], data: data as Float32Array };
}

/** Writes model + optimizer + state to `path` atomically. */
export async function saveCheckpoint(path: string, model: Module, optimizer: Optimizer<{ lr: number }> | null, state: Omit<TrainingState, 'optimizer'>): Promise<void> {
  const entries: [string, TensorToWrite][] = [];
  for (const [k, t] of model.stateDict()) entries.push([`model.${k}`, await toWrite(t)]);
  const opt = optimizer?.stateDict();
  if (opt) for (const [k, t] of opt.tensors) entries.push([`optim.${k}`, await toWrite(t)]);
  const full: TrainingState = { ...state, optimizer: opt?.meta ?? { scalars: {}, groups: [] } };
  await writeSafetensors(path, entries, { [META_KEY]: JSON.stringify(full) });
}

/** Reads a checkpoint written by `saveCheckpoint`; errors name the file. */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
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
  if (!isInt(s.logBytes) || s.logBytes < 0) bad('logBytes', 'a non-negative integer');
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

const STEP_FILE = /^step-(\d+)\.safetensors$/;

/**
 * Checkpoint files of a run: `checkpoints/step-<globalStep>.safetensors`, plus `best.safetensors`
 * (the full checkpoint of the best epoch so far; written before the step checkpoint that records it).
 */
export class CheckpointDir {
  constructor(readonly dir: string, private readonly keepLast: number) {}

  pathForStep(step: number): string {
    return join(this.dir, `step-${String(step).padStart(8, '0')}.safetensors`);
  }
  get bestPath(): string {
    return join(this.dir, 'best.safetensors');
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
      .map((n) => ({ m: STEP_FILE.exec(n), n }))
      .filter((x): x is { m: RegExpExecArray; n: string } => x.m !== null)
      .map(({ m, n }) => ({ step: Number(m[1]), path: join(this.dir, n) }))
      .sort((a, b) => a.step - b.step);
  }

  async latest(): Promise<string | null> {
    const l = await this.list();
    return l.length ? l[l.length - 1]!.path : null;
  }

  /** Deletes step checkpoints beyond the newest `keepLast`. */
  async prune(): Promise<void> {
    const l = await this.list();
    for (const { path } of l.slice(0, Math.max(0, l.length - this.keepLast))) await unlink(path).catch(() => {});
  }

  /**
   * Puts the file `src` (a complete checkpoint) at `dest` as well, atomically: a hard link (no
   * second copy on disk; every writer replaces files by rename, never in place), else a copy.
   */
  async cloneTo(src: string, dest: string): Promise<void> {
    const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await link(src, tmp);
    } catch {
      await copyFile(src, tmp);
      const fh = await open(tmp, 'r+');
      await fh.sync().finally(() => fh.close());
    }
    try {
      await rename(tmp, dest);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }
}
