// The classifier's training, on @foliar/nn's training loop (runTrainLoop): epochs of SGD/AdamW steps
// with warmup + cosine, validation each epoch (the loop's `evaluate`), the best checkpoint
// (checkpoints/best/) and early stopping, checkpoints that resume exactly, train.jsonl, progress;
// then the final report on the test set with the best weights.
import { readFile, rm, appendFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  tensor, crossEntropy, manualSeed, defaultGenerator, memory, resetPeakMemory, writeFileAtomic, getBackend, noGrad, type Tensor,
} from '@foliar/tensor';
import { SGD, AdamW, runTrainLoop, latestCheckpoint, existingRunOutputs, filterJsonl, type Optimizer } from '@foliar/nn';
import { classWeights } from '../data/split.js';
import type { Batch } from '../data/loader.js';
import { validateConfig, DEFAULT_CONFIG, type TrainConfig, type MonitorMetric } from './config.js';
import { prepareData, type PreparedData } from './data.js';
import { buildModel, type Classifier } from './model.js';
import {
  CheckpointDir, loadCheckpoint, restoreModel, legacyRunFiles, TRAINER_STATE_FORMAT,
  type EpochRecord, type EpochAccumulator, type ClassifierTrainerState, type LoadedCheckpoint,
} from './checkpoint.js';
import { evaluate, withItems, type ItemEvaluation } from './evaluate.js';
import { writeRunReport, writeTestPredictions, perClassTable, type WrittenReport } from './report.js';
import { saveModelFile } from './model-file.js';

/** The run's log: the training loop's train.jsonl (one line per step), with the classifier's records (start, resume, epoch, test). */
export const LOG_FILE = 'train.jsonl';

export interface TrainOptions {
  /** Run directory (created); holds config.json, train.jsonl, checkpoints/, model.safetensors and the report. */
  runDir: string;
  /**
   * Continue the run in `runDir` from its newest checkpoint (its config wins over `config`). A run
   * that stopped before its first checkpoint starts again with its own config.json.
   */
  resume?: boolean;
  /** Aborting stops after the current step, with a checkpoint to resume from. */
  signal?: AbortSignal;
  /** Stop (as if interrupted) once this many steps have been taken in total: for tests. */
  stopAfterSteps?: number;
  /** Progress bars (default true; plain lines when stderr is not a TTY). */
  progress?: boolean;
  /** Epoch summaries and the final table on stderr (default true). */
  verbose?: boolean;
  /** Skip the final test evaluation and report (tests of the loop itself). */
  skipReport?: boolean;
  onEpoch?: (record: EpochRecord) => void;
  /**
   * Called once each checkpoint folder is in place ('best' before the step checkpoint that records
   * it): tests throw here to simulate a crash between the two.
   */
  onCheckpointWritten?: (kind: 'best' | 'checkpoint', path: string) => void | Promise<void>;
}

export interface TrainResult {
  runDir: string;
  config: TrainConfig;
  classNames: string[];
  history: EpochRecord[];
  /** Stopped by the signal or `stopAfterSteps`; resume to continue. */
  interrupted: boolean;
  /** Stopped before the last epoch because `monitor` stopped improving. */
  earlyStopped: boolean;
  bestEpoch: number | null;
  /** checkpoints/best/ (the full checkpoint of the best epoch; `loadTrainedModel` reads it), or null. */
  bestCheckpoint: string | null;
  globalStep: number;
  /** Training seconds across all sessions of the run (validation included, final test excluded). */
  seconds: number;
  /**
   * Test evaluation of the best (else last) weights, rows tied to item ids (also written to
   * `<runDir>/test-predictions.csv`); absent when interrupted or skipReport.
   */
  test?: ItemEvaluation;
  report?: WrittenReport;
  data: Pick<PreparedData, 'description' | 'trainCounts' | 'extraCounts'>;
}

const monitorValue = (m: MonitorMetric, r: EpochRecord): number | null =>
  m === 'val_loss' ? r.valLoss : m === 'val_accuracy' ? r.valAccuracy : m === 'val_macro_f1' ? r.valMacroF1 : r.valMeanAuc;

function makeOptimizer(c: TrainConfig, params: Tensor[]): Optimizer<{ lr: number }> {
  return c.optimizer === 'sgd'
    ? new SGD(params, { lr: c.lr, momentum: c.momentum, nesterov: c.nesterov, weightDecay: c.weightDecay })
    : new AdamW(params, { lr: c.lr, weightDecay: c.weightDecay });
}

const say = (msg: string, verbose: boolean) => { if (verbose) process.stderr.write(`${msg}\n`); };

/** Reads the per-step losses back from the log (for the loss chart): the loop's lines, which have no `type`. */
async function stepLosses(path: string): Promise<[number, number][]> {
  if (!existsSync(path)) return [];
  const out: [number, number][] = [];
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    if (!line.startsWith('{"step"')) continue;
    const r = JSON.parse(line) as { step: number; loss: number | null; type?: string };
    if (r.type === undefined && typeof r.loss === 'number') out.push([r.step, r.loss]);
  }
  return out;
}

export async function train(configIn: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const runDir = resolve(opts.runDir);
  const verbose = opts.verbose ?? true;
  const ckdir = join(runDir, 'checkpoints');
  const checkpoints = new CheckpointDir(ckdir);
  const configPath = join(runDir, 'config.json');
  const logPath = join(runDir, LOG_FILE);
  const legacy = await legacyRunFiles(runDir);
  if (legacy.length) {
    throw new Error(`${runDir} holds a run of an older foliar-classify (${legacy.join(', ')}), which ${opts.resume ? 'cannot be resumed' : 'a new run would mix with'}: checkpoints are now folders (checkpoints/checkpoint-<step>/, checkpoints/best/, in the format of @foliar/nn's training loop) and the log is ${LOG_FILE}. Its model.safetensors and checkpoints/best.safetensors still load for eval and predict; train again with another --out`);
  }
  let resumed: LoadedCheckpoint | null = null;
  let own: Partial<TrainConfig> | null = null;
  if (opts.resume) {
    const latest = await latestCheckpoint(ckdir);
    if (latest) resumed = await loadCheckpoint(latest);
    // checkpoints/ is made after config.json: a run killed before its first checkpoint restarts with its config
    else if (existsSync(ckdir) && existsSync(configPath)) {
      const { classNames: _c, dataDescription: _d, ...c } = JSON.parse(readFileSync(configPath, 'utf8')) as Partial<TrainConfig> & { classNames?: unknown; dataDescription?: unknown };
      own = c;
      say(`no checkpoint in ${ckdir} yet (the run stopped before its first): starting it again with its config.json`, verbose);
    } else throw new Error(`--resume ${runDir}: no checkpoints in ${ckdir}`);
  } else {
    const found = await existingRunOutputs(runDir);
    if (found.length) throw new Error(`${runDir} already holds a training run (${found.join(', ')}): resume it with --resume, or choose another --out`);
  }
  const config = validateConfig(resumed ? { ...DEFAULT_CONFIG, ...resumed.state.config } : own ? { ...DEFAULT_CONFIG, ...own } : configIn, resumed ? resumed.path : own ? configPath : 'config');

  const data = await prepareData(config, { check: true });
  const { classNames } = data;
  if (resumed && resumed.state.classNames.join('\n') !== classNames.join('\n')) {
    throw new Error(`${resumed.path}: checkpoint classes [${resumed.state.classNames.join(', ')}] differ from the data's [${classNames.join(', ')}]`);
  }
  const batches = data.trainLoader.batchesPerEpoch();
  const stepsPerEpoch = config.maxStepsPerEpoch > 0 ? Math.min(batches, config.maxStepsPerEpoch) : batches;
  const totalSteps = config.epochs * stepsPerEpoch;
  if (resumed) {
    // the position must fit this data: a tampered or foreign checkpoint would skip or repeat training
    const { epoch, batch, globalStep } = resumed.state;
    // batch = stepsPerEpoch would be an epoch trained but never evaluated (the loop evaluates, then checkpoints)
    if (batch >= stepsPerEpoch) throw new Error(`${resumed.path}: checkpoint field "batch" is ${batch}, beyond the last of the ${stepsPerEpoch} batches per epoch of this data`);
    if (globalStep !== epoch * stepsPerEpoch + batch) {
      throw new Error(`${resumed.path}: checkpoint field "globalStep" (the step) is ${globalStep}, but epoch ${epoch} and batch ${batch} at ${stepsPerEpoch} batches per epoch make ${epoch * stepsPerEpoch + batch} (tampered, or the data changed since)`);
    }
    // a finished run resumed scores its test set again
    await filterJsonl(logPath, (r) => r.type !== 'test');
  } else {
    await writeFileAtomic(configPath, JSON.stringify({ ...config, classNames, dataDescription: data.description }, null, 2) + '\n');
    // a run killed before its first checkpoint left steps (and maybe best weights) nothing will continue
    await rm(logPath, { force: true });
    await rm(checkpoints.bestPath, { recursive: true, force: true });
  }

  manualSeed(config.seed);
  const model: Classifier = buildModel(config.arch, classNames.length);
  const weights = config.classWeights === 'none' ? null : tensor(classWeights(data.trainCounts.map((n, c) => n + (data.extraCounts[c] ?? 0)), config.classWeights));

  const freshAccum = (): EpochAccumulator => ({ lossSum: 0, correct: 0, seen: 0, steps: 0, seconds: 0 });
  let st: ClassifierTrainerState = {
    format: TRAINER_STATE_FORMAT, version: 2, config, classNames,
    epoch: 0, batch: 0, accum: freshAccum(), history: [],
    generator: defaultGenerator.getState(),
    monitor: { best: null, bestEpoch: null, badEpochs: 0 }, elapsedSeconds: 0, finished: false,
  };
  let globalStep = 0;
  if (resumed) {
    const { globalStep: g, scheduler: _s, optimizer: _o, logBytes: _l, ...rest } = resumed.state;
    st = { ...rest, format: TRAINER_STATE_FORMAT, version: 2 };
    globalStep = g;
    defaultGenerator.setState(st.generator);
    say(`resuming ${runDir} at epoch ${st.epoch + 1}, batch ${st.batch} (step ${globalStep})`, verbose);
  } else {
    say(`training ${config.arch} on ${data.description}`, verbose);
    say(`backend: ${getBackend().describe()}; ${stepsPerEpoch} steps/epoch x ${config.epochs} epochs, batch ${config.batchSize}, ${config.imageSize}px`, verbose);
  }

  const sessionStart = performance.now();
  const elapsed = () => st.elapsedSeconds + (performance.now() - sessionStart) / 1000;
  // the signal, or stopAfterSteps reached
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  if (opts.signal?.aborted) stop.abort();
  opts.signal?.addEventListener('abort', onAbort);

  // the batch of the step in progress, read by `prepare` from the epoch's iterator
  let iter: { epoch: number; next: number; it: AsyncGenerator<Batch> } | null = null;
  let cur: { b: Batch; x: Tensor | null; y: Tensor | null; t0: number } | null = null;
  const freeBatch = () => {
    cur?.x?.dispose();
    cur?.y?.dispose();
    if (cur) cur.x = cur.y = null;
  };
  const closeIter = async (): Promise<void> => {
    await iter?.it.return(undefined);
    iter = null;
  };
  let optimizer: Optimizer<{ lr: number }> | null = null;

  let interrupted = false;
  resetPeakMemory();
  try {
    const r = await runTrainLoop(
      {
        outputDir: runDir, maxTrainSteps: totalSteps, learningRate: config.lr, lrScheduler: 'cosine',
        lrWarmupSteps: Math.round(config.warmupEpochs * stepsPerEpoch), lrMinRatio: config.minLrRatio,
        maxGradNorm: 0, seed: config.seed, resumeFrom: resumed?.path ?? null,
        checkpointingSteps: config.checkpointEvery > 0 ? config.checkpointEvery : undefined, checkpointsTotalLimit: config.keepLast,
        signal: stop.signal, quiet: !verbose, progressBar: opts.progress !== false,
        resumeHint: `resume with --resume ${runDir}`,
        onStep: ({ step, loss, logs }) => {
          if (!Number.isFinite(loss)) throw new Error(`loss is ${loss} at epoch ${st.epoch + 1}, step ${step}: lower the learning rate (${config.lr})`);
          const b = cur!.b;
          const a = st.accum;
          a.lossSum += loss * b.size; a.correct += Math.round(logs.accuracy! * b.size); a.seen += b.size; a.steps++; a.seconds += (performance.now() - cur!.t0) / 1000;
          globalStep = step;
          st.batch = b.batchIndex + 1;
          if (opts.stopAfterSteps !== undefined && step >= opts.stopAfterSteps) stop.abort();
        },
      },
      {
        label: config.arch,
        params: model.parameters(),
        stateDict: () => model.stateDict() as Map<string, Tensor>,
        optimizer: (params) => (optimizer = makeOptimizer(config, params)),
        trainerState: () => ({ ...st, generator: defaultGenerator.getState(), elapsedSeconds: elapsed() }),
        start: async (ctx) => {
          if (ctx.resumedFrom) await ctx.log({ type: 'resume', from: ctx.resumedFrom, epoch: st.epoch, batch: st.batch, step: globalStep });
          else await ctx.log({ type: 'start', backend: getBackend().describe(), config, classNames, data: data.description, trainCounts: data.trainCounts });
          model.train();
        },
        prepare: async (k) => {
          const epoch = Math.floor(k / stepsPerEpoch), batch = k % stepsPerEpoch;
          if (!iter || iter.epoch !== epoch || iter.next !== batch) {
            await closeIter();
            iter = { epoch, next: batch, it: data.trainLoader.epoch(epoch, { fromBatch: batch }) };
          }
          const n = await iter.it.next();
          if (n.done) throw new Error(`the training data ran out at batch ${batch + 1} of epoch ${epoch + 1} (expected ${stepsPerEpoch} batches)`);
          iter.next++;
          const b = n.value;
          freeBatch();
          cur = { b, x: tensor(b.images, { shape: [b.size, 3, b.height, b.width] }), y: tensor(b.labels), t0: performance.now() };
        },
        loss: () => {
          const { x, y, b } = cur!;
          const logits = model.forward(x!);
          const loss = crossEntropy(logits, y!, { labelSmoothing: config.labelSmoothing, ...(weights ? { weight: weights } : {}) });
          const accuracy = noGrad(() => logits.argmax(1).eq(y!).sum().mul(1 / b.size));
          return { loss, logs: { accuracy } };
        },
        afterStep: freeBatch,
        evaluationSteps: stepsPerEpoch,
        evaluate: async (step, ctx) => {
          const epoch = st.epoch;
          const val = await evaluate(model, data.valLoader, classNames, { label: 'val', progress: opts.progress });
          model.train();
          const a = st.accum;
          const mem = memory();
          const rec: EpochRecord = {
            epoch: epoch + 1, steps: a.steps, lr: optimizer!.lr,
            trainLoss: a.lossSum / Math.max(1, a.seen), trainAccuracy: a.correct / Math.max(1, a.seen),
            valLoss: val.report.logLoss, valAccuracy: val.report.accuracy, valMacroF1: val.report.macro.f1, valMeanAuc: val.report.macro.auc,
            seconds: a.seconds + val.seconds, imagesPerSecond: a.seen / Math.max(1e-9, a.seconds),
            liveBuffers: mem.liveBuffers, liveTensors: mem.liveTensors, peakBytes: mem.peakBytes,
          };
          st.history.push(rec);
          const v = monitorValue(config.monitor, rec);
          const m = st.monitor;
          const improved = v !== null && (m.best === null || (config.monitor === 'val_loss' ? v < m.best : v > m.best));
          if (improved) { m.best = v; m.bestEpoch = epoch + 1; m.badEpochs = 0; } else m.badEpochs++;
          const earlyStopped = config.patience > 0 && m.badEpochs >= config.patience && epoch + 1 < config.epochs;
          st.epoch = epoch + 1;
          st.batch = 0;
          st.accum = freshAccum();
          st.finished = earlyStopped || st.epoch >= config.epochs;
          await ctx.log({ type: 'epoch', step, ...rec, monitor: config.monitor, monitorValue: v, improved, earlyStopped });
          opts.onEpoch?.(rec);
          const auc = rec.valMeanAuc === null ? '–' : rec.valMeanAuc.toFixed(3);
          say(`${opts.progress === false ? '' : '\n'}epoch ${rec.epoch}/${config.epochs}: train loss ${rec.trainLoss.toFixed(4)} acc ${(100 * rec.trainAccuracy).toFixed(1)}% | val loss ${rec.valLoss.toFixed(4)} acc ${(100 * rec.valAccuracy).toFixed(1)}% macro-F1 ${rec.valMacroF1.toFixed(3)} mean AUC ${auc}${improved ? ' *' : ''} | ${rec.imagesPerSecond.toFixed(1)} img/s, ${rec.seconds.toFixed(0)} s, live buffers ${rec.liveBuffers}, peak ${(rec.peakBytes / 2 ** 20).toFixed(0)} MiB`, verbose);
          if (earlyStopped) say(`early stop: ${config.monitor} has not improved for ${config.patience} epoch(s) (best ${m.best?.toFixed(4)} at epoch ${m.bestEpoch})`, verbose);
          return { best: improved, stop: earlyStopped };
        },
        ...(opts.onCheckpointWritten ? { onCheckpoint: opts.onCheckpointWritten } : {}),
      },
    );
    interrupted = r.interrupted;
  } catch (e) {
    weights?.dispose();
    model.dispose();
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    freeBatch();
    await closeIter();
  }
  const seconds = elapsed();
  const bestCheckpoint = st.monitor.bestEpoch !== null && existsSync(join(checkpoints.bestPath, 'state.json')) ? checkpoints.bestPath : null;
  const result: TrainResult = {
    runDir, config, classNames, history: st.history, interrupted, earlyStopped: st.finished && st.epoch < config.epochs,
    bestEpoch: st.monitor.bestEpoch, bestCheckpoint, globalStep, seconds, data: { description: data.description, trainCounts: data.trainCounts, extraCounts: data.extraCounts },
  };
  try {
    if (!interrupted && !opts.skipReport) {
      // the report scores the best weights (by `monitor`), falling back to the last epoch's
      let epochOfWeights = st.history.length;
      if (bestCheckpoint) {
        const best = await loadCheckpoint(bestCheckpoint);
        restoreModel(model, best);
        epochOfWeights = best.state.epoch; // the checkpoint's own epoch: it is what gets scored
      }
      await saveModelFile(join(runDir, 'model.safetensors'), model, { arch: config.arch, classNames, imageSize: config.imageSize, config });
      const test = withItems(await evaluate(model, data.testLoader, classNames, { label: 'test', progress: opts.progress }), data.test.items);
      await writeTestPredictions(runDir, test, classNames);
      const split = config.split != null ? `explicit test split (${test.labels.length} images)`
        : config.heldOutTest > 0 ? `held-out test set (${test.labels.length} images)` : `test split (${test.labels.length} images)`;
      await appendFile(logPath, JSON.stringify({ type: 'test', epoch: epochOfWeights, accuracy: test.report.accuracy, meanAuc: test.report.macro.auc, perClass: test.report.perClass, confusion: test.report.confusion.matrix }) + '\n');
      result.test = test;
      result.report = await writeRunReport(runDir, {
        title: `${config.arch} on ${config.data ?? 'synthetic leaves'}`,
        split, epoch: epochOfWeights, report: test.report, history: st.history, stepLoss: await stepLosses(logPath),
        extra: { data: data.description, trainCounts: Object.fromEntries(classNames.map((c, i) => [c, data.trainCounts[i]])), extraTrainCounts: Object.fromEntries(classNames.map((c, i) => [c, data.extraCounts[i]])), trainingSeconds: seconds, globalStep, earlyStopped: result.earlyStopped, backend: getBackend().describe(), config },
      });
      if (verbose) {
        say(`\n${split}, weights of epoch ${epochOfWeights}:\n${perClassTable(test.report)}\n`, true);
        say(`report: ${result.report.markdown}`, true);
      }
    }
  } finally {
    weights?.dispose();
    model.dispose();
  }
  return result;
}
