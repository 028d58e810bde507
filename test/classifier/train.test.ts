/**
 * The classifier's training (on @foliar/nn's runTrainLoop) on the CPU backend with a tiny ResNet-like
 * model and 16x16 synthetic leaves: exact resumption (interrupted + resumed = uninterrupted, bit for
 * bit), no buffer growth across epochs, keep-last-K and best checkpoints (consistent across a crash
 * between their writes), restart after a kill, stale temp files, early stopping, config validation,
 * the report checked against predictions made independently through the model file, and runs of the
 * old one-file checkpoint layout (still loaded; refused for training with what changed named).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync, readFileSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { readCheckpointState } from '@foliar/nn';
import {
  train, resolveConfig, readConfigFile, parseCounts, loadCheckpoint, CheckpointDir, loadTrainedModel, prepareData, predictLoader,
  ConfigError, CHECKPOINT_FORMAT, type TrainConfig, type LoadedCheckpoint,
} from '../../packages/classifier/src/train/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-train-'));
let n = 0;
const dir = () => join(tmp, `run${n++}`);

const base: Partial<TrainConfig> = {
  arch: 'tiny', imageSize: 16, counts: { healthy: 10, multiple_diseases: 6, rust: 10, scab: 10 },
  valFraction: 0.2, testFraction: 0.2, batchSize: 6, evalBatchSize: 16, epochs: 2, lr: 0.05, warmupEpochs: 0.5, keepLast: 2,
};
const quiet = { progress: false, verbose: false } as const;

/** uvu has no assert.rejects: await, and check the error against a pattern or predicate. */
async function rejects(fn: () => Promise<unknown>, check: RegExp | ((e: Error) => boolean)): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const ok = check instanceof RegExp ? check.test((e as Error).message) : check(e as Error);
    assert.ok(ok, `unexpected error: ${(e as Error).message}`);
    return;
  }
  assert.unreachable('expected a rejection');
}

test.before(async () => {
  await ft.init({ backend: 'cpu' });
});
test.after(() => {
  ft.shutdown();
  rmSync(tmp, { recursive: true, force: true });
});

async function lastCheckpoint(runDir: string): Promise<LoadedCheckpoint> {
  const p = await new CheckpointDir(join(runDir, 'checkpoints')).latest();
  assert.ok(p, `no checkpoint in ${runDir}`);
  return loadCheckpoint(p!);
}

function assertSameTensors(a: LoadedCheckpoint['model'], b: LoadedCheckpoint['model'], what: string): void {
  assert.equal([...a.keys()].sort(), [...b.keys()].sort(), `${what}: keys`);
  for (const [k, va] of a) {
    const vb = b.get(k)!;
    assert.equal(va.shape, vb.shape, `${what} ${k}: shape`);
    for (let i = 0; i < va.data.length; i++) {
      if (!Object.is(va.data[i], vb.data[i])) assert.unreachable(`${what} ${k}[${i}]: ${va.data[i]} (uninterrupted) vs ${vb.data[i]} (resumed)`);
    }
  }
}

/** Step records (the loop's lines, without a type) and epoch records of train.jsonl, without timing fields. */
function stepLog(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.type === undefined || r.type === 'epoch')
    .map(({ imagesPerSecond: _i, seconds: _s, liveBuffers: _b, liveTensors: _l, peakBytes: _p, live_buffers: _lb, peak_bytes: _pb, ...r }) => r);
}

test('no buffer growth across epochs; peak memory logged; keep-last-K and best checkpoints', async () => {
  const runDir = dir();
  const r = await train(resolveConfig(base, { epochs: 4, keepLast: 2, lr: 0.02 }), { runDir, ...quiet, skipReport: true });
  const live = r.history.map((h) => h.liveBuffers);
  const tensors = r.history.map((h) => h.liveTensors);
  assert.ok(live.every((v) => v === live[0]), `live buffers per epoch: ${live.join(', ')}`);
  // handles the GC finalizes may only lower the tensor count (runs first in this file, so no earlier run's garbage)
  assert.ok(tensors.every((v, i) => i === 0 || v <= tensors[i - 1]!), `live tensors per epoch: ${tensors.join(', ')}`);
  assert.ok(r.history.every((h) => h.peakBytes > 0), 'peak memory recorded');
  const files = readdirSync(join(runDir, 'checkpoints')).sort();
  assert.equal(files.filter((f) => f.startsWith('checkpoint-')).length, 2, `kept: ${files.join(', ')}`);
  assert.ok(files.includes('best'));
  // best = the epoch with the highest validation mean AUC (the default monitor), first on ties
  const aucs = r.history.map((h) => h.valMeanAuc ?? -1);
  const bestEpoch = aucs.indexOf(Math.max(...aucs)) + 1;
  assert.is(r.bestEpoch, bestEpoch);
  const best = await loadCheckpoint(join(runDir, 'checkpoints', 'best'));
  assert.is(best.state.epoch, bestEpoch);
  assert.is(r.bestCheckpoint, join(runDir, 'checkpoints', 'best'));
  assert.ok(!files.some((f) => f.includes('.tmp-') || f.includes('.partial-')), 'no temporary files left');
});

test('interrupting and resuming gives the same weights, optimizer state and log as an uninterrupted run', async () => {
  const config = resolveConfig(base, { augment: true });
  const whole = dir();
  const a = await train(config, { runDir: whole, ...quiet, skipReport: true });
  assert.is(a.interrupted, false);
  assert.is(a.history.length, 2);
  const stepsPerEpoch = a.history[0]!.steps;
  assert.ok(stepsPerEpoch >= 3, `need several steps per epoch, got ${stepsPerEpoch}`);

  // mid-epoch 1, then at the last step of epoch 1 (before validation), then mid-epoch 2
  const parts = dir();
  const stops = [1, stepsPerEpoch, stepsPerEpoch + 2];
  let r = await train(config, { runDir: parts, ...quiet, skipReport: true, stopAfterSteps: stops[0] });
  assert.is(r.interrupted, true);
  for (const s of stops.slice(1)) {
    r = await train(resolveConfig({ epochs: 7 }) /* ignored: the checkpoint's config wins */, { runDir: parts, resume: true, ...quiet, skipReport: true, stopAfterSteps: s });
    assert.is(r.interrupted, true);
    assert.is(r.globalStep, s);
  }
  r = await train(config, { runDir: parts, resume: true, ...quiet, skipReport: true });
  assert.is(r.interrupted, false);
  assert.is(r.globalStep, a.globalStep);

  const ca = await lastCheckpoint(whole), cb = await lastCheckpoint(parts);
  assertSameTensors(ca.model, cb.model, 'model');
  assertSameTensors(ca.optimizer, cb.optimizer, 'optimizer');
  assert.equal(cb.state.scheduler, ca.state.scheduler);
  // the loop's per-step losses (state.json), carried across the three resumes
  const la = (await readCheckpointState(ca.path)).losses, lb = (await readCheckpointState(cb.path)).losses;
  assert.is(la.length, a.globalStep);
  assert.equal(lb, la);
  const strip = (h: typeof a.history) => h.map(({ seconds: _s, imagesPerSecond: _i, peakBytes: _p, liveBuffers: _b, liveTensors: _t, ...rest }) => rest);
  assert.equal(strip(r.history), strip(a.history));
  assert.equal(stepLog(parts), stepLog(whole));
});

test('early stopping stops at the first epoch that exhausts the patience', async () => {
  const r = await train(resolveConfig(base, { epochs: 6, patience: 1, monitor: 'val_loss', lr: 0.3, warmupEpochs: 0 }), { runDir: dir(), ...quiet, skipReport: true });
  const losses = r.history.map((h) => h.valLoss);
  // independent replay of the rule: stop after the first epoch whose val loss is not below the best so far
  let best = Infinity, stopAt = losses.length;
  for (let i = 0; i < losses.length; i++) {
    if (losses[i]! < best) best = losses[i]!;
    else { stopAt = i + 1; break; }
  }
  assert.is(r.history.length, stopAt, `val losses ${losses.map((l) => l.toFixed(4)).join(', ')}`);
  assert.is(r.earlyStopped, stopAt < 6);
});

test('class-weighted loss, label smoothing, balanced sampling and AdamW train with finite losses', async () => {
  const r = await train(resolveConfig(base, { epochs: 1, classWeights: 'effective', labelSmoothing: 0.1, balancedSampling: true, optimizer: 'adamw', lr: 1e-3, weightDecay: 0.01 }), { runDir: dir(), ...quiet, skipReport: true });
  assert.ok(Number.isFinite(r.history[0]!.trainLoss));
});

test('the report agrees with predictions made through the saved model file', async () => {
  const runDir = dir();
  const config = resolveConfig(base, { epochs: 1 });
  const r = await train(config, { runDir, ...quiet });
  for (const f of ['report.json', 'report.md', 'confusion.png', 'per-class.png', 'loss.png', 'accuracy.png', 'model.safetensors', 'config.json', 'train.jsonl', 'test-predictions.csv']) {
    assert.ok(existsSync(join(runDir, f)), `${f} written`);
  }
  const rep = JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')) as { perClass: { name: string; recall: number; support: number; auc: number | null }[]; confusion: { matrix: number[][] }; macro: { auc: number | null }; accuracy: number };
  // independent: reload the model file, predict the test split, count the confusion matrix by hand
  const { model, info } = await loadTrainedModel(runDir);
  assert.equal(info.classNames, r.classNames);
  const data = await prepareData(config);
  const p = await predictLoader(model, data.testLoader, info.classNames.length, { progress: false });
  const C = info.classNames.length;
  const conf = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  for (let i = 0; i < p.labels.length; i++) {
    const row = Array.from(p.probs.subarray(i * C, (i + 1) * C));
    assert.ok(Math.abs(row.reduce((s, v) => s + v, 0) - 1) < 1e-5, 'probabilities sum to 1');
    conf[p.labels[i]!]![row.indexOf(Math.max(...row))]++;
  }
  assert.equal(rep.confusion.matrix, conf);
  rep.perClass.forEach((c, k) => {
    const support = conf[k]!.reduce((s, v) => s + v, 0);
    assert.is(c.support, support);
    if (support > 0) assert.ok(Math.abs(c.recall - conf[k]![k]! / support) < 1e-12, `recall of ${c.name}`);
  });
  const aucs = rep.perClass.map((c) => c.auc).filter((x): x is number => x !== null);
  assert.ok(Math.abs(rep.macro.auc! - aucs.reduce((s, v) => s + v, 0) / aucs.length) < 1e-12, 'mean AUC = mean of per-class AUCs');
  // the seeded split's test images, one CSV row each, tied to TrainResult.test by id
  const rows = readFileSync(join(runDir, 'test-predictions.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
  assert.equal(rows.map((r) => r[0]), r.test!.ids);
  assert.equal([...r.test!.ids].sort(), data.test.items.map((it) => it.id).sort());
  rows.forEach((row, i) => assert.is(row[2], info.classNames[r.test!.labels[i]!]));
  const md = readFileSync(join(runDir, 'report.md'), 'utf8');
  for (const name of r.classNames) assert.ok(md.includes(name), `report.md names ${name}`);
  model.dispose();
});

test('starting a new run in a directory that holds one is refused; resuming an empty one explains', async () => {
  const runDir = dir();
  await train(resolveConfig(base, { epochs: 1 }), { runDir, ...quiet, skipReport: true, stopAfterSteps: 1 });
  await rejects(() => train(resolveConfig(base), { runDir, ...quiet }), /already holds a training run/);
  await rejects(() => train(resolveConfig(base), { runDir: dir(), resume: true, ...quiet }), /no checkpoints/);
});

/** The pid of a process that has exited (its temp files are stale). */
const deadPid = (): number => spawnSync('true').pid!;

test('a crash between writing the best weights and the checkpoint that records them loses nothing', async () => {
  // keepLast 1 and a checkpoint every step: pruning runs as often as it can
  const config = resolveConfig(base, { epochs: 3, monitor: 'val_loss', checkpointEvery: 1, keepLast: 1 });
  const whole = dir();
  const a = await train(config, { runDir: whole, ...quiet, skipReport: true });
  const spe = a.history[0]!.steps;
  const ckdir = (runDir: string) => new CheckpointDir(join(runDir, 'checkpoints'));

  // crash right after the first file written at the end of epoch 1 (which improves: the first epoch always does)
  const crashed = dir();
  const endOfEpoch1 = ckdir(crashed).pathForStep(spe);
  await rejects(() => train(config, {
    runDir: crashed, ...quiet, skipReport: true,
    onCheckpointWritten: (kind, path) => {
      if (kind === 'best' || path === endOfEpoch1) throw new Error('simulated crash');
    },
  }), /simulated crash/);
  // at this instant every checkpoint's best epoch has its weights in checkpoints/best/
  const bestPath = join(crashed, 'checkpoints', 'best');
  for (const { path } of await ckdir(crashed).list()) {
    const c = await loadCheckpoint(path);
    if (c.state.monitor.bestEpoch === null) continue;
    assert.ok(existsSync(bestPath), `${path} records best epoch ${c.state.monitor.bestEpoch}, but checkpoints/best/ is missing`);
    assert.is((await loadCheckpoint(bestPath)).state.epoch, c.state.monitor.bestEpoch);
  }
  // what the killed writer left behind goes when the run resumes
  const dead = deadPid();
  const stale = [join(crashed, 'checkpoints', `checkpoint-99.partial-${dead}`), join(crashed, 'checkpoints', `best.old.partial-${dead}`), join(crashed, `config.json.tmp-${dead}-ff`)];
  mkdirSync(stale[0]!);
  writeFileSync(join(stale[0]!, 'trained.safetensors'), 'partial');
  mkdirSync(stale[1]!);
  writeFileSync(stale[2]!, 'partial');

  const r = await train(config, { runDir: crashed, resume: true, ...quiet, skipReport: true });
  assert.is(r.bestEpoch, a.bestEpoch);
  for (const f of stale) assert.not.ok(existsSync(f), `${f} cleaned`);
  const best = await loadCheckpoint(bestPath);
  assert.is(best.state.epoch, r.bestEpoch, 'checkpoints/best/ holds the best epoch');
  assert.is((await lastCheckpoint(crashed)).state.monitor.bestEpoch, best.state.epoch);
  assertSameTensors((await loadCheckpoint(join(whole, 'checkpoints', 'best'))).model, best.model, 'best weights');
  assert.equal(stepLog(crashed), stepLog(whole), 'log without repeated steps');
});

test('resuming a run killed before its first checkpoint starts it again with its own config and a clean log', async () => {
  const config = resolveConfig(base, { epochs: 1, seed: 3 });
  const runDir = dir();
  await rejects(() => train(config, { runDir, ...quiet, skipReport: true, onCheckpointWritten: () => { throw new Error('killed'); } }), /killed/);
  const steps = stepLog(runDir).filter((x) => x.type === undefined).length;
  assert.ok(steps > 0, 'steps were logged before the kill');
  assert.ok(existsSync(join(runDir, 'checkpoints', 'best', 'state.json')), 'best weights written before the kill');
  const r = await train(resolveConfig({ epochs: 5 }) /* ignored: the run's config.json wins */, { runDir, resume: true, ...quiet, skipReport: true });
  assert.is(r.interrupted, false);
  assert.is(r.config.seed, 3);
  assert.is(r.history.length, 1);
  assert.is((await loadCheckpoint(join(runDir, 'checkpoints', 'best'))).state.globalStep, r.globalStep, 'best weights of this run');
  const log = readFileSync(join(runDir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type?: string; step?: number });
  assert.is(log.filter((x) => x.type === 'start').length, 1, 'one start record');
  assert.equal(log.filter((x) => x.type === undefined).map((x) => x.step), Array.from({ length: r.globalStep }, (_, i) => i + 1));
});

/** Host tensors under `prefix`, as safetensors entries. */
const entries = (prefix: string, m: LoadedCheckpoint['model']): [string, ft.TensorToWrite][] =>
  [...m].map(([k, v]) => [prefix + k, v.data instanceof Int32Array ? { dtype: 'I32', shape: v.shape, data: v.data } : { dtype: 'F32', shape: v.shape, data: v.data }]);

async function sameWeights(model: { stateDict(): Map<string, ft.Tensor> }, want: LoadedCheckpoint['model'], what: string): Promise<void> {
  const got = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>();
  for (const [k, t] of model.stateDict()) got.set(k, { shape: [...t.shape], data: (await t.data()) as Float32Array | Int32Array });
  assertSameTensors(want, got, what);
}

test('runs of the old one-file layout: their checkpoints still load; continuing one is refused naming what changed', async () => {
  const runDir = dir();
  await train(resolveConfig(base, { epochs: 1 }), { runDir, ...quiet, skipReport: true });
  const bestDir = join(runDir, 'checkpoints', 'best');
  const best = await loadCheckpoint(bestDir);
  // a run of the old trainer: one-file checkpoints (model.*, optim.*, the state in the metadata) and log.jsonl
  const old = dir();
  mkdirSync(join(old, 'checkpoints'), { recursive: true });
  const meta = { 'foliar.checkpoint': JSON.stringify({ ...best.state, format: CHECKPOINT_FORMAT, version: 1, logBytes: 0 }) };
  for (const f of ['best.safetensors', `step-${String(best.state.globalStep).padStart(8, '0')}.safetensors`]) {
    await ft.writeSafetensors(join(old, 'checkpoints', f), [...entries('model.', best.model), ...entries('optim.', best.optimizer)], meta);
  }
  writeFileSync(join(old, 'log.jsonl'), '');
  const legacy = await loadCheckpoint(join(old, 'checkpoints', 'best.safetensors'));
  assert.is(legacy.state.version, 1);
  assert.is(legacy.state.epoch, best.state.epoch);
  assertSameTensors(legacy.model, best.model, 'old checkpoint');
  for (const source of [join(old, 'checkpoints', 'best.safetensors'), bestDir]) {
    const { model, info } = await loadTrainedModel(source);
    assert.is(info.arch, 'tiny');
    await sameWeights(model, best.model, source);
    model.dispose();
  }
  // the old path in a new run: the error names the folder to use
  await rejects(() => loadTrainedModel(join(runDir, 'checkpoints', 'best.safetensors')), (e) => e.message.includes('checkpoints are folders now') && e.message.includes(`use ${bestDir}`));
  await rejects(() => loadCheckpoint(join(runDir, 'checkpoints', `step-${String(best.state.globalStep).padStart(8, '0')}.safetensors`)), (e) => e.message.includes(`use ${join(runDir, 'checkpoints', `checkpoint-${best.state.globalStep}`)}`));
  // resuming the old run, or starting a new one in its folder, is refused naming the change
  for (const resume of [true, false]) {
    await rejects(() => train(resolveConfig(base), { runDir: old, resume, ...quiet }), (e) =>
      e.message.includes('older foliar-classify') && e.message.includes('checkpoints/best.safetensors') && e.message.includes('checkpoints/checkpoint-<step>/') && e.message.includes('train.jsonl'));
  }
});

test('config: defaults, precedence, and errors that name the key or file', async () => {
  const c = resolveConfig({ epochs: 3 }, { epochs: 5, lr: undefined });
  assert.is(c.epochs, 5);
  assert.is(c.lr, 0.05);
  assert.equal(c.counts, { healthy: 516, multiple_diseases: 91, rust: 622, scab: 592 });
  assert.equal(parseCounts('healthy=1, rust=2'), { healthy: 1, rust: 2 });
  assert.throws(() => parseCounts('healthy:1'), /name=count/);
  assert.throws(() => resolveConfig({ batchSize: 1 }), (e: Error) => e instanceof ConfigError && /"batchSize"/.test(e.message));
  assert.throws(() => resolveConfig({ valFraction: 0.6, testFraction: 0.5 }), /valFraction \+ testFraction/);
  assert.throws(() => resolveConfig({ optimizer: 'rmsprop' as 'sgd' }), /"optimizer"/);
  const f = join(tmp, 'bad.json');
  writeFileSync(f, JSON.stringify({ epochs: 2, learningRate: 0.1 }));
  await rejects(() => readConfigFile(f), (e: Error) => e.message.includes(f) && e.message.includes('"learningRate"'));
  writeFileSync(f, '{ "epochs": 2, }');
  await rejects(() => readConfigFile(f), (e: Error) => e.message.includes(f) && /invalid JSON/.test(e.message));
});

test.run();
