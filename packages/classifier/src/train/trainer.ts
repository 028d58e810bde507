// The training loop: epochs of SGD/AdamW steps with warmup + cosine, validation each epoch,
// checkpoints (keep-last-K + best), early stopping, exact resumption, JSONL log, progress bars,
// and the final report on the test set with the best weights.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  tensor, tidy, crossEntropy, manualSeed, defaultGenerator, memory, resetPeakMemory, writeFileAtomic, getBackend, type Tensor,
} from '@foliar/tensor';
import { SGD, AdamW, LRScheduler, warmupCosine, Progress, cleanStaleTemps, type Optimizer } from '@foliar/nn';
import { classWeights } from '../data/split.js';
import { validateConfig, DEFAULT_CONFIG, type TrainConfig, type MonitorMetric } from './config.js';
import { prepareData, type PreparedData } from './data.js';
import { buildModel, type Classifier } from './model.js';
import {
  CheckpointDir, saveCheckpoint, loadCheckpoint, restoreModel, restoreOptimizer, CHECKPOINT_FORMAT,
  type EpochRecord, type EpochAccumulator, type TrainingState,
} from './checkpoint.js';
import { evaluate, withItems, type ItemEvaluation } from './evaluate.js';
import { writeRunReport, writeTestPredictions, perClassTable, type WrittenReport } from './report.js';
import { saveModelFile } from './model-file.js';
import { JsonlLog } from './log.js';

export interface TrainOptions {
  /** Run directory (created); holds config.json, log.jsonl, checkpoints/, model.safetensors and the report. */
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
   * Called once each checkpoint file is in place ('best' before the step checkpoint that records
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

/** Reads the per-step losses back from the log (for the loss chart). */
async function stepLosses(path: string): Promise<[number, number][]> {
  if (!existsSync(path)) return [];
  const out: [number, number][] = [];
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    if (!line.startsWith('{"time"') || !line.includes('"type":"step"')) continue;
    const r = JSON.parse(line) as { step: number; loss: number };
    out.push([r.step, r.loss]);
  }
  return out;
}

export async function train(configIn: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const runDir = resolve(opts.runDir);
  const verbose = opts.verbose ?? true;
  const ckdir = join(runDir, 'checkpoints');
  const configPath = join(runDir, 'config.json');
  let resumed: Awaited<ReturnType<typeof loadCheckpoint>> | null = null;
  let own: Partial<TrainConfig> | null = null;
  if (opts.resume) {
    const latest = await new CheckpointDir(ckdir, 1).latest();
    if (latest) resumed = await loadCheckpoint(latest);
    // checkpoints/ is made after config.json: a run killed before its first checkpoint restarts with its config
    else if (existsSync(ckdir) && existsSync(configPath)) {
      const { classNames: _c, dataDescription: _d, ...c } = JSON.parse(readFileSync(configPath, 'utf8')) as Partial<TrainConfig> & { classNames?: unknown; dataDescription?: unknown };
      own = c;
      say(`no checkpoint in ${ckdir} yet (the run stopped before its first): starting it again with its config.json`, verbose);
    } else throw new Error(`--resume ${runDir}: no checkpoints in ${ckdir}`);
  } else if (await new CheckpointDir(ckdir, 1).latest()) {
    throw new Error(`${runDir} already holds a training run (checkpoints/): resume it with --resume, or choose another --out`);
  }
  const config = validateConfig(resumed ? { ...DEFAULT_CONFIG, ...resumed.state.config } : own ? { ...DEFAULT_CONFIG, ...own } : configIn, resumed ? resumed.path : own ? configPath : 'config');
  const checkpoints = new CheckpointDir(ckdir, config.keepLast);
  // what killed writers left (temp files of atomic writes) goes before this run writes anything
  await cleanStaleTemps(runDir, { within: ['checkpoints'] });

  const data = await prepareData(config, { check: true });
  const { classNames } = data;
  if (resumed && resumed.state.classNames.join('\n') !== classNames.join('\n')) {
    throw new Error(`${resumed.path}: checkpoint classes [${resumed.state.classNames.join(', ')}] differ from the data's [${classNames.join(', ')}]`);
  }
  const log = new JsonlLog(join(runDir, 'log.jsonl'));
  if (!resumed) {
    await writeFileAtomic(configPath, JSON.stringify({ ...config, classNames, dataDescription: data.description }, null, 2) + '\n');
    await mkdir(ckdir, { recursive: true });
    // a run killed before its first checkpoint left steps (and maybe best weights) nothing will continue
    await log.truncate(0);
    await rm(checkpoints.bestPath, { force: true });
    log.write({ type: 'start', backend: getBackend().describe(), config, classNames, data: data.description, trainCounts: data.trainCounts });
  }

  manualSeed(config.seed);
  const model: Classifier = buildModel(config.arch, classNames.length);
  const optimizer = makeOptimizer(config, model.parameters());
  const batches = data.trainLoader.batchesPerEpoch();
  const stepsPerEpoch = config.maxStepsPerEpoch > 0 ? Math.min(batches, config.maxStepsPerEpoch) : batches;
  const totalSteps = config.epochs * stepsPerEpoch;
  if (resumed) {
    // the position must fit this data: a tampered or foreign checkpoint would skip or repeat training
    const { epoch, batch, globalStep } = resumed.state;
    if (batch > stepsPerEpoch) throw new Error(`${resumed.path}: checkpoint field "batch" is ${batch}, beyond the ${stepsPerEpoch} batches per epoch of this data`);
    if (globalStep !== epoch * stepsPerEpoch + batch) {
      throw new Error(`${resumed.path}: checkpoint field "globalStep" is ${globalStep}, but epoch ${epoch} and batch ${batch} at ${stepsPerEpoch} batches per epoch make ${epoch * stepsPerEpoch + batch} (tampered, or the data changed since)`);
    }
  }
  const scheduler = new LRScheduler(optimizer, warmupCosine(Math.round(config.warmupEpochs * stepsPerEpoch), totalSteps, config.minLrRatio));
  const weights = config.classWeights === 'none' ? null : tensor(classWeights(data.trainCounts.map((n, c) => n + (data.extraCounts[c] ?? 0)), config.classWeights));

  const freshAccum = (): EpochAccumulator => ({ lossSum: 0, correct: 0, seen: 0, steps: 0, seconds: 0 });
  let st: Omit<TrainingState, 'optimizer'> = {
    format: CHECKPOINT_FORMAT, version: 1, config, classNames,
    epoch: 0, batch: 0, globalStep: 0, accum: freshAccum(), history: [],
    scheduler: scheduler.state(), generator: defaultGenerator.getState(),
    monitor: { best: null, bestEpoch: null, badEpochs: 0 }, logBytes: 0, elapsedSeconds: 0, finished: false,
  };
  if (resumed) {
    restoreModel(model, resumed);
    restoreOptimizer(optimizer, resumed);
    scheduler.load(resumed.state.scheduler);
    defaultGenerator.setState(resumed.state.generator);
    const { optimizer: _o, ...rest } = resumed.state;
    st = rest;
    await log.truncate(st.logBytes);
    log.write({ type: 'resume', from: resumed.path, epoch: st.epoch, batch: st.batch, step: st.globalStep });
    say(`resuming ${runDir} at epoch ${st.epoch + 1}, batch ${st.batch} (step ${st.globalStep})`, verbose);
  } else {
    say(`training ${config.arch} on ${data.description}`, verbose);
    say(`backend: ${getBackend().describe()}; ${stepsPerEpoch} steps/epoch x ${config.epochs} epochs, batch ${config.batchSize}, ${config.imageSize}px`, verbose);
  }

  const sessionStart = performance.now();
  const elapsed = () => st.elapsedSeconds + (performance.now() - sessionStart) / 1000;
  const snapshot = async (best = false): Promise<string> => {
    const path = checkpoints.pathForStep(st.globalStep);
    const state = { ...st, scheduler: scheduler.state(), generator: defaultGenerator.getState(), logBytes: log.bytes, elapsedSeconds: elapsed() };
    if (best) {
      // the best weights first, then the checkpoint that records them (the same file, linked): no
      // checkpoint ever names a best epoch whose weights are missing, and pruning cannot lose them
      await saveCheckpoint(checkpoints.bestPath, model, optimizer, state);
      await opts.onCheckpointWritten?.('best', checkpoints.bestPath);
      await checkpoints.cloneTo(checkpoints.bestPath, path);
    } else await saveCheckpoint(path, model, optimizer, state);
    await opts.onCheckpointWritten?.('checkpoint', path);
    return path;
  };

  let interrupted = false;
  let earlyStopped = false;
  resetPeakMemory();
  try {
    while (!st.finished && st.epoch < config.epochs) {
      const epoch = st.epoch;
      const C = classNames.length;
      const bar = opts.progress === false ? null : new Progress({ total: (stepsPerEpoch - st.batch) * config.batchSize, label: `epoch ${epoch + 1}/${config.epochs}`, unit: 'img/s' });
      let images = 0;
      model.train();
      try {
        if (st.batch < stepsPerEpoch) {
          for await (const b of data.trainLoader.epoch(epoch, { fromBatch: st.batch })) {
            const t0 = performance.now();
            const x = tensor(b.images, { shape: [b.size, 3, b.height, b.width] });
            const y = tensor(b.labels);
            const out = tidy(() => {
              const logits = model.forward(x);
              const loss = crossEntropy(logits, y, { labelSmoothing: config.labelSmoothing, ...(weights ? { weight: weights } : {}) });
              loss.backward();
              return { loss: loss.detach(), logits: logits.detach() };
            });
            x.dispose();
            y.dispose();
            optimizer.step();
            optimizer.zeroGrad();
            const lr = optimizer.lr;
            scheduler.step();
            const loss = (await out.loss.data())[0]!;
            const lg = await out.logits.data();
            out.loss.dispose();
            out.logits.dispose();
            if (!Number.isFinite(loss)) throw new Error(`loss is ${loss} at epoch ${epoch + 1}, step ${st.globalStep + 1}: lower the learning rate (${config.lr})`);
            let correct = 0;
            for (let i = 0; i < b.size; i++) {
              let arg = 0;
              for (let c = 1; c < C; c++) if (lg[i * C + c]! > lg[i * C + arg]!) arg = c;
              if (arg === b.labels[i]) correct++;
            }
            const dt = (performance.now() - t0) / 1000;
            const a = st.accum;
            a.lossSum += loss * b.size; a.correct += correct; a.seen += b.size; a.steps++; a.seconds += dt;
            st.globalStep++;
            st.batch = b.batchIndex + 1;
            images += b.size;
            log.write({ type: 'step', epoch: epoch + 1, step: st.globalStep, batch: b.batchIndex, loss, accuracy: correct / b.size, lr, imagesPerSecond: b.size / dt });
            bar?.update(images, { loss: a.lossSum / a.seen, acc: a.correct / a.seen });
            const stop = opts.signal?.aborted || (opts.stopAfterSteps !== undefined && st.globalStep >= opts.stopAfterSteps);
            if (stop) {
              interrupted = true;
              const p = await snapshot();
              log.write({ type: 'interrupt', step: st.globalStep, checkpoint: p });
              await checkpoints.prune();
              say(`\ninterrupted at step ${st.globalStep}; checkpoint ${p} (resume with --resume ${runDir})`, verbose);
              break;
            }
            if (config.checkpointEvery > 0 && st.globalStep % config.checkpointEvery === 0 && st.batch < stepsPerEpoch) {
              await snapshot();
              await checkpoints.prune();
            }
            if (st.batch >= stepsPerEpoch) break;
          }
        }
      } finally {
        bar?.stop();
      }
      if (interrupted) break;

      // validation, bookkeeping, checkpoint
      const val = await evaluate(model, data.valLoader, classNames, { label: 'val', progress: opts.progress });
      const a = st.accum;
      const mem = memory();
      const rec: EpochRecord = {
        epoch: epoch + 1, steps: a.steps, lr: optimizer.lr,
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
      earlyStopped = config.patience > 0 && m.badEpochs >= config.patience && epoch + 1 < config.epochs;
      st.epoch = epoch + 1;
      st.batch = 0;
      st.accum = freshAccum();
      st.finished = earlyStopped || st.epoch >= config.epochs;
      log.write({ type: 'epoch', ...rec, monitor: config.monitor, monitorValue: v, improved, earlyStopped });
      await snapshot(improved);
      await checkpoints.prune();
      opts.onEpoch?.(rec);
      const auc = rec.valMeanAuc === null ? '–' : rec.valMeanAuc.toFixed(3);
      say(`epoch ${rec.epoch}/${config.epochs}: train loss ${rec.trainLoss.toFixed(4)} acc ${(100 * rec.trainAccuracy).toFixed(1)}% | val loss ${rec.valLoss.toFixed(4)} acc ${(100 * rec.valAccuracy).toFixed(1)}% macro-F1 ${rec.valMacroF1.toFixed(3)} mean AUC ${auc}${improved ? ' *' : ''} | ${rec.imagesPerSecond.toFixed(1)} img/s, ${rec.seconds.toFixed(0)} s, live buffers ${rec.liveBuffers}, peak ${(rec.peakBytes / 2 ** 20).toFixed(0)} MiB`, verbose);
      if (earlyStopped) say(`early stop: ${config.monitor} has not improved for ${config.patience} epoch(s) (best ${m.best?.toFixed(4)} at epoch ${m.bestEpoch})`, verbose);
    }
  } catch (e) {
    weights?.dispose();
    optimizer.dispose();
    model.dispose();
    throw e;
  }
  const seconds = elapsed();
  const result: TrainResult = {
    runDir, config, classNames, history: st.history, interrupted, earlyStopped: earlyStopped || (st.finished && st.epoch < config.epochs),
    bestEpoch: st.monitor.bestEpoch, globalStep: st.globalStep, seconds, data: { description: data.description, trainCounts: data.trainCounts, extraCounts: data.extraCounts },
  };
  try {
    if (!interrupted && !opts.skipReport) {
      // the report scores the best weights (by `monitor`), falling back to the last epoch's
      let epochOfWeights = st.history.length;
      if (st.monitor.bestEpoch !== null && existsSync(checkpoints.bestPath)) {
        const best = await loadCheckpoint(checkpoints.bestPath);
        restoreModel(model, best);
        epochOfWeights = best.state.epoch; // the file's own epoch: it is what gets scored
      }
      await saveModelFile(join(runDir, 'model.safetensors'), model, { arch: config.arch, classNames, imageSize: config.imageSize, config });
      const test = withItems(await evaluate(model, data.testLoader, classNames, { label: 'test', progress: opts.progress }), data.test.items);
      await writeTestPredictions(runDir, test, classNames);
      const split = config.split != null ? `explicit test split (${test.labels.length} images)`
        : config.heldOutTest > 0 ? `held-out test set (${test.labels.length} images)` : `test split (${test.labels.length} images)`;
      log.write({ type: 'test', epoch: epochOfWeights, accuracy: test.report.accuracy, meanAuc: test.report.macro.auc, perClass: test.report.perClass, confusion: test.report.confusion.matrix });
      result.test = test;
      result.report = await writeRunReport(runDir, {
        title: `${config.arch} on ${config.data ?? 'synthetic leaves'}`,
        split, epoch: epochOfWeights, report: test.report, history: st.history, stepLoss: await stepLosses(log.path),
        extra: { data: data.description, trainCounts: Object.fromEntries(classNames.map((c, i) => [c, data.trainCounts[i]])), extraTrainCounts: Object.fromEntries(classNames.map((c, i) => [c, data.extraCounts[i]])), trainingSeconds: seconds, globalStep: st.globalStep, earlyStopped: result.earlyStopped, backend: getBackend().describe(), config },
      });
      if (verbose) {
        say(`\n${split}, weights of epoch ${epochOfWeights}:\n${perClassTable(test.report)}\n`, true);
        say(`report: ${result.report.markdown}`, true);
      }
    }
  } finally {
    weights?.dispose();
    optimizer.dispose();
    model.dispose();
  }
  return result;
}
