import { mkdir, readdir, rm, appendFile, readFile, rename, stat, link, copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { tidy, noGrad, Generator, clipGradNorm, type Tensor } from '@foliar/tensor';
import { AdamW } from './optim/adam.js';
import type { Optimizer, OptimizerState } from './optim/optimizer.js';
import { LRScheduler, constantSchedule, warmupCosine, warmupLinear, linearWarmup } from './schedules/lr.js';
import { Progress, writePng, lineChart } from '@foliar/report';
import { saveSafetensors, readSafetensors } from './weights.js';
import { cleanStaleTemps, filterJsonl } from './run-dir.js';

/** Optimizer, schedule, checkpointing and logging options shared by every foliar trainer. */
export interface TrainLoopOptions {
  maxTrainSteps: number;
  learningRate: number;
  adamBetas?: [number, number];
  adamWeightDecay?: number;
  adamEpsilon?: number;
  /** Global gradient-norm clip (default 1; 0 disables). */
  maxGradNorm?: number;
  gradientAccumulationSteps?: number;
  lrScheduler?: 'constant' | 'constant_with_warmup' | 'cosine' | 'linear';
  lrWarmupSteps?: number;
  /** Where the cosine schedule ends, as a fraction of the learning rate (default 0). */
  lrMinRatio?: number;
  /**
   * Exponential moving average of the trained weights (diffusers' EMAModel): at optimisation step k the
   * average moves with decay min(emaDecay, (1 + k) / (10 + k)), so a short run is not dominated by the
   * initial weights. Saved as final/ema_weights.safetensors (keyed by parameter index); with
   * `finalWeights: 'ema'` the trained tensors also hold the average when the loop returns.
   */
  emaDecay?: number | null;
  /**
   * What the trained tensors hold after a finished run, so what the caller saves as its final model:
   * 'last' (default) the last step's weights, 'ema' the moving average (diffusers' train_text_to_image
   * --use_ema copies it into the model before saving). Needs emaDecay.
   */
  finalWeights?: 'last' | 'ema';
  /** Seeds the training generator (noise, timesteps, latent samples). */
  seed?: number;
  checkpointingSteps?: number;
  checkpointsTotalLimit?: number;
  outputDir: string;
  /**
   * Resume from 'latest' (the newest checkpoint under outputDir/checkpoints; none: start fresh) or a
   * checkpoint folder. Without it, an outputDir that already holds a run is refused (see `overwrite`).
   */
  resumeFrom?: string | null;
  /** Start fresh in an outputDir that holds a run: its checkpoints, final/, logs and validation images are deleted first. */
  overwrite?: boolean;
  /** Stops the run after the current step, writing a checkpoint to resume from (e.g. on Ctrl-C). */
  signal?: AbortSignal;
  /**
   * How a user continues this run, in the loop's messages (default: "resume with 'latest'", the API's
   * spelling). A CLI passes its own, e.g. "resume with --resume runs/x", so the message names a command that works.
   */
  resumeHint?: string;
  /**
   * Steps between train.jsonl lines (default 1). Losses and gradient norms stay on the device and are
   * read back together only at a logged step, a checkpoint and the end: with `logEvery: 10` the loop
   * waits on the device once per 10 steps, not once per micro-batch. Every step is still logged
   * (each line is written when its step's values come back).
   */
  logEvery?: number;
  /**
   * Called for every step once its loss has been read back (at each logged step, for the steps since
   * the last), with the step's extra logs (see `TrainLoopHooks.loss`) averaged over its micro-batches.
   */
  onStep?: (s: { step: number; loss: number; lr: number; logs: Record<string, number> }) => void;
  /** No messages and no progress bar. */
  quiet?: boolean;
  /** Show the progress bar (default: unless quiet). */
  progressBar?: boolean;
}

/** What the loop hands to `start` and `evaluate`. */
export interface TrainLoopContext {
  /** The checkpoint folder this session resumed from, or null (a fresh run). */
  resumedFrom: string | null;
  /** What `trainerState()` returned when that checkpoint was written (null for a fresh run). */
  trainerState: unknown;
  /**
   * Appends a record to train.jsonl, after the steps logged so far. Give it a `step`: a resume drops
   * the records whose step lies past its checkpoint (records without one are kept).
   */
  log(record: Record<string, unknown>): Promise<void>;
}

/** What an evaluation decides. */
export interface EvaluationOutcome {
  /**
   * The weights of this step are the best so far: the step's checkpoint is written as
   * checkpoints/best/ first, then linked as checkpoint-<step>/ (best/ is never pruned).
   */
  best?: boolean;
  /** Stop training here (early stopping): the checkpoint records it, and a resume trains no further. */
  stop?: boolean;
}

export interface TrainLoopHooks {
  /** Progress-bar label and loss-curve title. */
  label: string;
  /** The trained parameters. */
  params: Tensor[];
  /** Named trained tensors written to checkpoints and restored on resume. */
  stateDict(): Map<string, Tensor>;
  /**
   * The loss of micro-batch `k` (a global index: step · accumulation + micro). Random draws must come
   * from `gen` so a resumed run repeats them. Extra scalars returned in `logs` go to train.jsonl.
   */
  loss(k: number, gen: Generator): Tensor | { loss: Tensor; logs?: Record<string, Tensor> };
  /** After each optimizer step (e.g. restore frozen rows). */
  afterStep?(): void;
  /** The optimizer of `params` (default: AdamW with the options' learning rate, betas, weight decay, epsilon). */
  optimizer?(params: Tensor[]): Optimizer<{ lr: number }>;
  /** Asynchronous work before micro-batch `k`'s `loss` (e.g. reading its batch from disk). */
  prepare?(k: number): Promise<void>;
  /** Once the output folder is ready and any checkpoint restored, before the first step. */
  start?(ctx: TrainLoopContext): Promise<void> | void;
  /**
   * Evaluation every `evaluationSteps` steps (e.g. once per epoch), after the step's losses are read
   * back; a checkpoint of the step always follows (with `best`, also checkpoints/best/).
   */
  evaluate?(step: number, ctx: TrainLoopContext): Promise<EvaluationOutcome | void>;
  evaluationSteps?: number;
  /** The trainer's own state (JSON), saved in each checkpoint's state.json and handed back on resume. */
  trainerState?(): unknown;
  /** Called once a checkpoint folder is in place ('best' before the step checkpoint that records it). */
  onCheckpoint?(kind: 'best' | 'checkpoint', dir: string): Promise<void> | void;
  /** Validation at `step` (0 = before training), every `validationSteps`. */
  validate?(step: number): Promise<void>;
  validationSteps?: number;
}

export interface TrainLoopResult {
  steps: number;
  losses: number[];
  /** True when `signal` stopped the run before maxTrainSteps (a checkpoint was written). */
  interrupted: boolean;
  /** An evaluation stopped the run (early stopping), in this session or the one it resumed. */
  stopped: boolean;
  /** checkpoints/best/ when an evaluation has marked a best step, else null. */
  bestCheckpoint: string | null;
}

/**
 * The training loop of foliar's trainers (the diffusion fine-tuners and the classifier), after
 * diffusers' scripts: AdamW (or the trainer's optimizer), an LR schedule with warm-up, gradient
 * accumulation and clipping, optional EMA; evaluations with a best checkpoint and early stopping;
 * train.jsonl (step, loss, lr, grad norm, live buffers, seconds, and the trainer's records), loss.png,
 * and checkpoints that resume exactly (trained tensors, optimizer state, schedule, generator state,
 * step, losses, the trainer's state).
 */
export async function runTrainLoop(o: TrainLoopOptions, h: TrainLoopHooks): Promise<TrainLoopResult> {
  const out = o.outputDir;
  const accum = o.gradientAccumulationSteps ?? 1;
  if (!Number.isInteger(o.maxTrainSteps) || o.maxTrainSteps < 1) throw new RangeError(`maxTrainSteps must be a positive integer, got ${o.maxTrainSteps}`);
  if (!Number.isInteger(accum) || accum < 1) throw new RangeError(`gradientAccumulationSteps must be a positive integer, got ${accum}`);
  await prepareOutputDir(out, { resume: !!o.resumeFrom, overwrite: o.overwrite ?? false });
  const params = h.params;
  const opt = h.optimizer ? h.optimizer(params) : new AdamW(params, {
    lr: o.learningRate,
    betas: o.adamBetas ?? [0.9, 0.999],
    weightDecay: o.adamWeightDecay ?? 1e-2,
    eps: o.adamEpsilon ?? 1e-8,
  });
  const warm = o.lrWarmupSteps ?? 0;
  const lambda =
    o.lrScheduler === 'cosine' ? warmupCosine(warm, o.maxTrainSteps, o.lrMinRatio ?? 0) : o.lrScheduler === 'linear' ? warmupLinear(warm, o.maxTrainSteps) : o.lrScheduler === 'constant_with_warmup' ? linearWarmup(warm) : constantSchedule();
  const sched = new LRScheduler(opt, lambda);
  const gen = new Generator(o.seed ?? 0);
  if (o.finalWeights === 'ema' && !o.emaDecay) throw new Error("finalWeights 'ema' needs emaDecay (the moving average is only kept with it)");
  const ema = o.emaDecay ? params.map((p) => ft.keep(noGrad(() => p.clone()))) : null;
  const ck: CkState = { stateDict: h.stateDict, opt, sched, gen, losses: [], ema, finished: false, ...(h.trainerState ? { trainerState: h.trainerState } : {}) };

  let step = 0;
  const ckDir = join(out, 'checkpoints');
  const logEvery = o.logEvery ?? 1;
  if (!Number.isInteger(logEvery) || logEvery < 1) throw new RangeError(`logEvery must be a positive integer, got ${logEvery}`);
  // steps whose loss, extra logs and gradient norm are still on the device
  const pending: PendingStep[] = [];
  try {
    let resumedFrom: string | null = null;
    let trainerState: unknown = null;
    if (o.resumeFrom) {
      const dir = o.resumeFrom === 'latest' ? await latestCheckpoint(ckDir) : o.resumeFrom;
      if (dir) {
        const r = await loadCheckpoint(dir, ck);
        step = r.step;
        trainerState = r.trainer;
        resumedFrom = dir;
        if (!o.quiet) console.error(`resumed from ${dir} at step ${step}`);
      } else if (!o.quiet) console.error('no checkpoint to resume from; starting fresh');
    }

    const log = join(out, 'train.jsonl');
    const bestDir = join(ckDir, BEST_CHECKPOINT);
    // steps logged after the checkpoint (or by a run that never reached one) are about to be redone
    await filterJsonl(log, (r) => typeof r.step !== 'number' || r.step <= step);
    const bar = !(o.progressBar ?? !o.quiet) ? null : new Progress({ total: o.maxTrainSteps, label: h.label, unit: 'it/s', initial: step });
    const t0 = performance.now();
    if (h.validate && h.validationSteps && step === 0) await h.validate(0);

    let interrupted = false;
    // the step whose checkpoint this session has written (a step is never saved twice)
    let savedAt = -1;
    const save = async (): Promise<string> => {
      const dir = join(ckDir, `checkpoint-${step}`);
      await saveCheckpoint(dir, { ...ck, step });
      savedAt = step;
      await h.onCheckpoint?.('checkpoint', dir);
      return dir;
    };
    const flush = async (): Promise<void> => {
      if (!pending.length) return;
      const scalars = pending.flatMap((p) => [...p.losses, ...Object.values(p.logs).flat(), p.gradNorm]);
      const all = noGrad(() => tidy(() => ft.stack(scalars.map((t) => t.reshape([1])), 0)));
      const v = await all.data();
      all.dispose();
      let at = 0;
      let lines = '';
      const done: { step: number; loss: number; lr: number; logs: Record<string, number> }[] = [];
      for (const p of pending) {
        let lossSum = 0;
        for (let i = 0; i < p.losses.length; i++) lossSum += v[at++]!;
        const logSums: Record<string, number> = {};
        for (const [name, ts] of Object.entries(p.logs)) {
          for (let i = 0; i < ts.length; i++) logSums[name] = (logSums[name] ?? 0) + v[at++]! / accum;
        }
        const gradNorm = v[at++]!;
        const loss = lossSum / accum;
        ck.losses.push(loss);
        lines += JSON.stringify({ step: p.step, loss, ...logSums, lr: p.lr, grad_norm: gradNorm, live_buffers: p.liveBuffers, peak_bytes: p.peakBytes, seconds: p.seconds }) + '\n';
        done.push({ step: p.step, loss, lr: p.lr, logs: logSums });
      }
      for (const t of scalars) t.dispose();
      pending.length = 0;
      await appendFile(log, lines);
      for (const d of done) o.onStep?.(d);
      const last = done.at(-1)!;
      bar?.update(last.step, { loss: last.loss, lr: last.lr });
    };
    ck.flush = flush;
    const ctx: TrainLoopContext = {
      resumedFrom,
      trainerState,
      log: async (record) => {
        await flush();
        await appendFile(log, JSON.stringify(record) + '\n');
      },
    };
    await h.start?.(ctx);
    while (!ck.finished && step < o.maxTrainSteps) {
      const losses: Tensor[] = [];
      const logs: Record<string, Tensor[]> = {};
      for (let micro = 0; micro < accum; micro++) {
        await h.prepare?.(step * accum + micro);
        const r = tidy(() => {
          const res = h.loss(step * accum + micro, gen);
          const { loss, logs } = res instanceof ft.Tensor ? { loss: res, logs: {} } : { loss: res.loss, logs: res.logs ?? {} };
          (accum > 1 ? loss.mul(1 / accum) : loss).backward();
          return { loss, logs };
        });
        losses.push(r.loss);
        for (const [name, t] of Object.entries(r.logs)) (logs[name] ??= []).push(t);
      }
      const gradNorm = clipGrads(params, o.maxGradNorm ?? 1);
      opt.step();
      h.afterStep?.();
      opt.zeroGrad();
      sched.step();
      step++;
      if (ema) updateEma(ema, params, emaDecayAt(o.emaDecay!, step));
      const m = ft.memory();
      pending.push({ step, losses, logs, gradNorm, lr: sched.lastLr[0]!, liveBuffers: m.liveBuffers, peakBytes: m.peakBytes, seconds: (performance.now() - t0) / 1000 });
      if (step % logEvery === 0 || step === o.maxTrainSteps || o.signal?.aborted) await flush();
      else bar?.update(step);
      // validation before this step's checkpoint: a run killed while validating resumes from the
      // previous checkpoint and validates again (after the checkpoint, the grid would be lost for good)
      if (h.validate && h.validationSteps && step % h.validationSteps === 0) {
        try {
          await h.validate(step);
        } catch (e) {
          // a failing validation (e.g. a user's onValidation scorer) must not lose the training so far
          const dir = join(ckDir, `checkpoint-${step}`);
          if (!existsSync(join(dir, 'state.json'))) await saveCheckpoint(dir, { ...ck, step });
          throw new Error(`validation at step ${step} failed: ${(e as Error).message} (training state saved in ${dir}; ${o.resumeHint ?? "resume with 'latest'"})`, { cause: e });
        }
      }
      if (h.evaluate && h.evaluationSteps && step % h.evaluationSteps === 0) {
        await flush();
        const r = (await h.evaluate(step, ctx)) ?? {};
        if (r.stop) ck.finished = true;
        if (r.best) {
          // the best weights first, then the checkpoint that records them (the same files, linked): no
          // checkpoint ever names a best step whose weights are missing, and pruning cannot lose them
          await saveCheckpoint(bestDir, { ...ck, step });
          await h.onCheckpoint?.('best', bestDir);
          const dir = join(ckDir, `checkpoint-${step}`);
          await cloneCheckpoint(bestDir, dir);
          savedAt = step;
          await h.onCheckpoint?.('checkpoint', dir);
        } else await save();
        await pruneCheckpoints(ckDir, o.checkpointsTotalLimit ?? 3);
        writeLossCurve(join(out, 'loss.png'), ck.losses, h.label);
        if (ck.finished) break;
      }
      if (o.signal?.aborted && step < o.maxTrainSteps) {
        interrupted = true;
        const dir = savedAt === step ? join(ckDir, `checkpoint-${step}`) : await save();
        if (!o.quiet) console.error(`\nstopped at step ${step}; checkpoint written to ${dir} (${o.resumeHint ?? "resume with 'latest'"})`);
        break;
      }
      if (o.checkpointingSteps && step % o.checkpointingSteps === 0 && step < o.maxTrainSteps && savedAt !== step) {
        await save();
        await pruneCheckpoints(ckDir, o.checkpointsTotalLimit ?? 3);
        writeLossCurve(join(out, 'loss.png'), ck.losses, h.label);
      }
    }
    bar?.stop();
    writeLossCurve(join(out, 'loss.png'), ck.losses, h.label);
    if (!interrupted) {
      if (o.checkpointingSteps && savedAt !== step) {
        await save();
        await pruneCheckpoints(ckDir, o.checkpointsTotalLimit ?? 3);
      }
      if (ema) {
        await saveSafetensors(new Map(ema.map((e, i) => [String(i), e])), join(out, 'final', 'ema_weights.safetensors'));
        if (o.finalWeights === 'ema') noGrad(() => params.forEach((p, i) => ft.copy_(p, ema[i]!)));
      }
    }
    return { steps: step, losses: [...ck.losses], interrupted, stopped: ck.finished, bestCheckpoint: existsSync(join(bestDir, 'state.json')) ? bestDir : null };
  } finally {
    for (const p of pending) [...p.losses, ...Object.values(p.logs).flat(), p.gradNorm].forEach((t) => t.dispose());
    opt.zeroGrad();
    opt.dispose();
    ema?.forEach((e) => e.dispose());
  }
}

/** What a trainer writes into its output folder: the run's own outputs, deleted by `overwrite`. */
const RUN_OUTPUTS = ['checkpoints', 'final', 'train.jsonl', 'loss.png', 'validation'];

/**
 * The outputs of an earlier run in `dir` that a fresh one would mix with or overwrite: checkpoint
 * folders, a non-empty final/, a non-empty train.jsonl. Anything else (config.json, class images) does
 * not count: callers write those before training.
 */
export async function existingRunOutputs(dir: string): Promise<string[]> {
  const found: string[] = [];
  const ck = join(dir, 'checkpoints');
  if (existsSync(ck) && (await readdir(ck)).some((n) => /^checkpoint-\d+$/.test(n))) found.push('checkpoints/');
  if (existsSync(join(dir, 'final')) && (await readdir(join(dir, 'final'))).length) found.push('final/');
  if (existsSync(join(dir, 'train.jsonl')) && (await stat(join(dir, 'train.jsonl'))).size > 0) found.push('train.jsonl');
  return found;
}

/**
 * Makes `dir` ready for a run: refuses one that holds another run unless resuming or `overwrite`
 * (which deletes that run's outputs), removes what killed writers left (temp files, partial
 * checkpoints), and creates checkpoints/ (so callers that resume when it exists also resume a run
 * killed before its first checkpoint). runTrainLoop calls it; CLIs call it first to fail early.
 */
export async function prepareOutputDir(dir: string, o: { resume: boolean; overwrite?: boolean }): Promise<void> {
  if (o.resume && o.overwrite) throw new Error(`${dir}: resuming and overwriting exclude each other (--resume / resumeFrom, --overwrite / overwrite)`);
  if (!o.resume) {
    const found = await existingRunOutputs(dir);
    if (found.length && !o.overwrite) {
      throw new Error(`${dir} already holds a training run (${found.join(', ')}): continue it with --resume latest (resumeFrom: 'latest'), start over with --overwrite (overwrite: true), or choose another output folder`);
    }
    if (o.overwrite) for (const name of RUN_OUTPUTS) await rm(join(dir, name), { recursive: true, force: true });
  }
  await cleanStaleTemps(dir, { within: ['checkpoints', 'final', 'validation'] });
  await mkdir(join(dir, 'checkpoints'), { recursive: true });
}

/** diffusers' EMAModel decay after optimisation step `step` (1-based): 0 at the first, rising as (1 + k) / (10 + k). */
export function emaDecayAt(decay: number, step: number): number {
  const k = step - 1;
  return k <= 0 ? 0 : Math.min(decay, (1 + k) / (10 + k));
}

/** ema ← decay·ema + (1 − decay)·param, one fused kernel per tensor; the array's entries are replaced. */
function updateEma(ema: Tensor[], params: Tensor[], decay: number): void {
  noGrad(() => {
    ema.forEach((e, i) => {
      ema[i] = ft.keep(ft.axpby(decay, e, 1 - decay, params[i]!));
      e.dispose();
    });
  });
}

/**
 * Clips the global gradient norm in place with the fused `clipGradNorm` (torch's clip_grad_norm_, on
 * the device, no readback); returns the norm before clipping as a [] tensor. maxNorm 0 only measures.
 */
function clipGrads(params: Tensor[], maxNorm: number): Tensor {
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
  if (!grads.length) return ft.zeros([]);
  if (maxNorm > 0) return clipGradNorm(grads, maxNorm);
  return noGrad(() => tidy(() => grads.map((g) => g.square().sum()).reduce((a, b) => a.add(b)).sqrt()));
}

/** A loss curve PNG (raw and smoothed). */
export function writeLossCurve(path: string, losses: number[], title: string): void {
  if (!losses.length) return;
  writePng(path, lineChart({ series: [{ name: 'loss', points: losses.map((l, i) => [i + 1, l] as [number, number]) }], title: `${title} training loss`, xLabel: 'step', yLabel: 'loss', width: 640, height: 400, smoothing: 0.6 }));
}

interface CkState {
  stateDict: () => Map<string, Tensor>;
  opt: Optimizer<{ lr: number }>;
  sched: LRScheduler;
  gen: Generator;
  losses: number[];
  ema: Tensor[] | null;
  /** An evaluation stopped the run (saved; a resume trains no further). */
  finished: boolean;
  trainerState?: () => unknown;
  /** Reads back and logs the steps still pending on the device. */
  flush?: () => Promise<void>;
}

interface PendingStep {
  step: number;
  losses: Tensor[];
  logs: Record<string, Tensor[]>;
  gradNorm: Tensor;
  lr: number;
  liveBuffers: number;
  peakBytes: number;
  seconds: number;
}

/** A checkpoint's state.json. */
export interface TrainCheckpointState {
  step: number;
  optimizer: OptimizerState['meta'];
  scheduler: { step: number; baseLrs: number[] };
  generator: { seed: number; counter: number };
  /** One loss per step (JSON writes a NaN loss as null). */
  losses: (number | null)[];
  /** Present (true) once an evaluation stopped the run. */
  finished?: boolean;
  /** The trainer's own state (`TrainLoopHooks.trainerState`), when it has one. */
  trainer?: unknown;
}
type CkMeta = TrainCheckpointState;

/** The folder under checkpoints/ that holds the best evaluated step's full checkpoint. */
export const BEST_CHECKPOINT = 'best';

async function saveCheckpoint(dir: string, s: CkState & { step: number }): Promise<void> {
  // the losses of every step up to this one go into state.json
  await s.flush?.();
  const tmp = `${dir}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  // contiguous() returns a new tensor (a view when already contiguous): free them after writing
  const trained = noGrad(() => new Map([...s.stateDict()].map(([k, t]) => [k, t.contiguous()])));
  try {
    await saveSafetensors(trained, join(tmp, 'trained.safetensors'));
  } finally {
    for (const t of trained.values()) t.dispose();
  }
  const os = s.opt.stateDict();
  await saveSafetensors(os.tensors, join(tmp, 'optimizer.safetensors'));
  if (s.ema) await saveSafetensors(new Map(s.ema.map((e, i) => [String(i), e])), join(tmp, 'ema.safetensors'));
  const state: CkMeta = {
    step: s.step, optimizer: os.meta, scheduler: s.sched.state(), generator: s.gen.getState(), losses: s.losses,
    ...(s.finished ? { finished: true } : {}), ...(s.trainerState ? { trainer: s.trainerState() } : {}),
  };
  await ft.writeFileAtomic(join(tmp, 'state.json'), JSON.stringify(state));
  // the folder appears complete or not at all; one already there (the same step saved again, as when
  // a finished run is resumed) is moved out of the way first and deleted once the new one is in place,
  // never deleted in place: a kill half-way through would leave a checkpoint-<step> without some of
  // its files for the next resume (only between the two renames is there no checkpoint-<step>)
  const old = existsSync(dir) ? `${dir}.old.partial-${process.pid}` : null;
  if (old) {
    await rm(old, { recursive: true, force: true });
    await rename(dir, old);
  }
  await rename(tmp, dir);
  if (old) await rm(old, { recursive: true, force: true });
}

/**
 * Deletes a checkpoint folder: renamed to `<dir>.old.partial-<pid>` first (one atomic step; the start
 * of the next run removes such folders), then deleted, so no half-deleted `checkpoint-<step>` is ever
 * left for `latestCheckpoint` to pick.
 */
async function removeCheckpointDir(dir: string): Promise<void> {
  const old = `${dir}.old.partial-${process.pid}`;
  await rm(old, { recursive: true, force: true });
  await rename(dir, old);
  await rm(old, { recursive: true, force: true });
}

/** state.json, checked: a tampered step or history would resume at the wrong place; errors name the file and field. */
function checkCkMeta(text: string, path: string): CkMeta {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message})`);
  }
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
  if (!isObj(j)) throw new Error(`${path}: expected a JSON object, got ${JSON.stringify(j)}`);
  const bad = (field: string, want: string): never => {
    throw new Error(`${path}: "${field}" must be ${want}, got ${JSON.stringify(j[field]) ?? 'nothing'}`);
  };
  if (!isInt(j.step) || j.step < 0) bad('step', 'a non-negative integer');
  // one loss per step (JSON writes a NaN loss as null)
  if (!Array.isArray(j.losses) || j.losses.length !== j.step || !j.losses.every((l) => l === null || typeof l === 'number')) bad('losses', `${String(j.step)} losses (one per step)`);
  const sc = j.scheduler;
  if (!isObj(sc) || !isInt(sc.step) || sc.step < 0 || !Array.isArray(sc.baseLrs) || !sc.baseLrs.every((x) => typeof x === 'number' && Number.isFinite(x))) bad('scheduler', '{step, baseLrs}');
  const g = j.generator;
  if (!isObj(g) || !isInt(g.seed) || !isInt(g.counter) || g.counter < 0) bad('generator', '{seed, counter} integers');
  const o = j.optimizer;
  if (!isObj(o) || !isObj(o.scalars) || !Array.isArray(o.groups)) bad('optimizer', '{scalars, groups}');
  if (j.finished !== undefined && typeof j.finished !== 'boolean') bad('finished', 'true or false');
  // cast: every field of CkMeta was checked above; the parsed JSON's type cannot be narrowed to it
  return j as unknown as CkMeta;
}

/**
 * A checkpoint folder's state.json, checked (step, losses, schedule, generator, optimizer fields);
 * errors name the file and the field. The trainer's own state (`trainer`) is the trainer's to check.
 */
export async function readCheckpointState(dir: string): Promise<TrainCheckpointState> {
  const statePath = join(dir, 'state.json');
  if (!existsSync(statePath)) throw new Error(`${dir} is not a checkpoint: ${statePath} is missing`);
  return checkCkMeta(await readFile(statePath, 'utf8'), statePath);
}

async function loadCheckpoint(dir: string, s: CkState): Promise<{ step: number; trainer: unknown }> {
  const state = await readCheckpointState(dir);
  await loadTrainedWeights(dir, s.stateDict());
  const optT = await readSafetensors(join(dir, 'optimizer.safetensors'));
  const be = s.opt.paramGroups[0]!.params[0]!.backend;
  const tensors = new Map([...optT].map(([k, v]) => [k, ft.tensor(v.data, { shape: v.shape, backend: be })]));
  s.opt.loadStateDict({ tensors, meta: state.optimizer });
  for (const t of tensors.values()) t.dispose();
  s.sched.load(state.scheduler);
  s.gen.setState(state.generator);
  // cast: a NaN loss comes back as null, and stays one in the next state.json
  s.losses.splice(0, s.losses.length, ...(state.losses as number[]));
  s.finished = state.finished === true;
  if (s.ema) {
    if (!existsSync(join(dir, 'ema.safetensors'))) throw new Error(`checkpoint ${dir} has no ema.safetensors, but EMA is on`);
    await loadEmaWeights(dir, s.ema);
  }
  return { step: state.step, trainer: state.trainer ?? null };
}

/** trained.safetensors into the tensors of a state dict, every key and size checked. */
async function loadTrainedWeights(dir: string, own: Map<string, Tensor>): Promise<void> {
  const trained = await readSafetensors(join(dir, 'trained.safetensors'));
  noGrad(() => {
    for (const [k, t] of own) {
      const v = trained.get(k);
      if (!v) throw new Error(`checkpoint ${dir} has no '${k}' (it holds ${trained.size} tensors; was it written by another method or model?)`);
      if (v.data.length !== t.size) throw new Error(`checkpoint ${dir}: '${k}' has ${v.data.length} values, the model's has ${t.size} (shape [${t.shape.join(', ')}])`);
      const src = ft.tensor(v.data, { shape: [...t.shape], backend: t.backend });
      ft.copy_(t, src);
      src.dispose();
    }
  });
}

/** ema.safetensors (keyed by the trained parameters' order) into `params`, count and sizes checked. */
async function loadEmaWeights(dir: string, params: Tensor[]): Promise<void> {
  const e = await readSafetensors(join(dir, 'ema.safetensors'));
  if (e.size !== params.length) {
    throw new Error(`checkpoint ${dir}: ema.safetensors holds ${e.size} tensors, the model trains ${params.length} (was it written by another method or model?)`);
  }
  noGrad(() => params.forEach((t, i) => {
    const v = e.get(String(i));
    if (!v) throw new Error(`checkpoint ${dir}: ema.safetensors has no tensor '${i}'`);
    if (v.data.length !== t.size) throw new Error(`checkpoint ${dir}: EMA tensor ${i} has ${v.data.length} values, parameter ${i} has ${t.size} (shape [${t.shape.join(', ')}])`);
    ft.setData_(t, v.data);
  }));
}

/**
 * A checkpoint's weights into a model for sampling or evaluation, not to resume training: 'trained'
 * (the step's weights, by state-dict key) or 'ema' (the moving average, by the order of the parameters
 * the loop trained: pass them in the same order). Errors name the checkpoint and the tensor.
 */
export async function loadCheckpointWeights(
  dir: string, target: { stateDict: Map<string, Tensor>; params: Tensor[] }, weights: 'trained' | 'ema' = 'trained',
): Promise<void> {
  await readCheckpointState(dir); // a folder that is not a checkpoint says so first
  if (weights === 'trained') return loadTrainedWeights(dir, target.stateDict);
  if (!existsSync(join(dir, 'ema.safetensors'))) throw new Error(`checkpoint ${dir} has no ema.safetensors (the run kept no moving average: train with emaDecay)`);
  return loadEmaWeights(dir, target.params);
}

/**
 * Puts the checkpoint folder `src` at `dest` as well, atomically: its files hard-linked (no second
 * copy on disk; every writer replaces files by renaming folders, never in place), else copied, into
 * `<dest>.partial-<pid>`, which is then renamed (a `dest` already there is moved aside first).
 */
async function cloneCheckpoint(src: string, dest: string): Promise<void> {
  const tmp = `${dest}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  for (const name of await readdir(src)) {
    try {
      await link(join(src, name), join(tmp, name));
    } catch {
      await copyFile(join(src, name), join(tmp, name));
    }
  }
  const old = existsSync(dest) ? `${dest}.old.partial-${process.pid}` : null;
  if (old) {
    await rm(old, { recursive: true, force: true });
    await rename(dest, old);
  }
  await rename(tmp, dest);
  if (old) await rm(old, { recursive: true, force: true });
}

/** The newest `checkpoint-<step>` folder under `dir`, or null. */
export async function latestCheckpoint(dir: string): Promise<string | null> {
  if (!existsSync(dir)) return null;
  const steps = (await readdir(dir)).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1]));
  return steps.length ? join(dir, `checkpoint-${Math.max(...steps)}`) : null;
}

async function pruneCheckpoints(dir: string, keep: number): Promise<void> {
  const steps = (await readdir(dir)).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1])).sort((a, b) => a - b);
  for (const s of steps.slice(0, Math.max(0, steps.length - keep))) await removeCheckpointDir(join(dir, `checkpoint-${s}`));
}
