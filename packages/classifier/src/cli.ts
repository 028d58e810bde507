#!/usr/bin/env node
// foliar-classify: train, evaluate and apply the leaf classifier.
import { Command, InvalidArgumentError, Option } from 'commander';
import { reportCliError } from '@foliar/nn';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '@foliar/tensor';
import * as ft from '@foliar/tensor';
import { DataLoader } from './data/loader.js';
import { evalTransform } from './data/transforms.js';
import { classCounts } from './data/split.js';
import {
  train, resolveConfig, readConfigFile, parseCounts, parseExtraTrain, prepareData, folderSource, evaluate, writeRunReport, perClassTable,
  loadTrainedModel, listImages, predictImages, predictionsCsv, type TrainConfig, type PreparedData, type ExtraTrainImages,
} from './train/index.js';

const int = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`"${v}" is not an integer`);
  return n;
};
/** Sizes and counts: 0 or less would loop forever (predict) or mean nothing. */
const posInt = (v: string): number => {
  const n = int(v);
  if (n < 1) throw new InvalidArgumentError(`"${v}" is not a positive integer`);
  return n;
};
const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`"${v}" is not a number`);
  return n;
};
/** `all` stays a string here: commander turns a parser's null into '' (flagsToConfig maps it to null). */
const counts = (v: string): Record<string, number> | 'all' => {
  if (v.trim() === 'all') return 'all';
  try {
    return parseCounts(v, '--counts');
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};

const extraTrain = (v: string, prev: ExtraTrainImages[] = []): ExtraTrainImages[] => {
  try {
    const e = parseExtraTrain(v);
    return [...prev, { ...e, dir: resolve(e.dir) }];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};

/** --backend, else FOLIAR_BACKEND, else auto (passing 'auto' explicitly would hide the variable from ft.init). */
async function initBackend(name: string | undefined): Promise<void> {
  const want = name ?? (process.env.FOLIAR_BACKEND || undefined) ?? 'auto';
  if (!['auto', 'webgpu', 'cpu'].includes(want)) throw new Error(`${name !== undefined ? '--backend' : 'FOLIAR_BACKEND'} must be webgpu, cpu or auto, got "${want}"`);
  await ft.init({ backend: want as 'auto' | 'webgpu' | 'cpu' });
}

const PROG = 'foliar-classify';
/** One line on stderr and exit code 1 (see @foliar/nn's reportCliError). */
function reportError(e: unknown): void {
  reportCliError(PROG, e);
}

interface TrainFlags {
  config?: string; data?: string; synthetic?: boolean; counts?: Record<string, number> | 'all'; syntheticSeed?: number; extraTrain?: ExtraTrainImages[];
  imageSize?: number; valFraction?: number; testFraction?: number; heldOutTest?: number; augment?: boolean;
  arch?: TrainConfig['arch']; epochs?: number; batchSize?: number; evalBatchSize?: number; maxStepsPerEpoch?: number;
  optimizer?: TrainConfig['optimizer']; lr?: number; momentum?: number; nesterov?: boolean; weightDecay?: number;
  warmupEpochs?: number; minLrRatio?: number; labelSmoothing?: number; classWeights?: TrainConfig['classWeights'];
  balancedSampling?: boolean; monitor?: TrainConfig['monitor']; patience?: number; seed?: number; keepLast?: number;
  checkpointEvery?: number; out?: string; resume?: string; backend?: string; progress?: boolean;
}

/** Flags as a partial config: only the flags actually given (so they override the file, not the reverse). */
function flagsToConfig(f: TrainFlags): Partial<TrainConfig> {
  if (f.data !== undefined && f.synthetic) throw new Error('give either --data <dir> or --synthetic, not both');
  const p: Partial<TrainConfig> = {
    counts: f.counts === 'all' ? null : f.counts, syntheticSeed: f.syntheticSeed, extraTrain: f.extraTrain, imageSize: f.imageSize, valFraction: f.valFraction, testFraction: f.testFraction,
    heldOutTest: f.heldOutTest, augment: f.augment, arch: f.arch, epochs: f.epochs, batchSize: f.batchSize, evalBatchSize: f.evalBatchSize,
    maxStepsPerEpoch: f.maxStepsPerEpoch, optimizer: f.optimizer, lr: f.lr, momentum: f.momentum, nesterov: f.nesterov, weightDecay: f.weightDecay,
    warmupEpochs: f.warmupEpochs, minLrRatio: f.minLrRatio, labelSmoothing: f.labelSmoothing, classWeights: f.classWeights,
    balancedSampling: f.balancedSampling, monitor: f.monitor, patience: f.patience, seed: f.seed, keepLast: f.keepLast, checkpointEvery: f.checkpointEvery,
  };
  if (f.data !== undefined) p.data = resolve(f.data);
  if (f.synthetic) p.data = null;
  return p;
}

const program = new Command();
program
  .name(PROG)
  .description('Train, evaluate and apply a leaf-disease classifier (ResNet on WebGPU) in TypeScript.')
  .option('--verbose', 'stack traces with errors (also FOLIAR_DEBUG=1)')
  // errors are reported once, as one line, by reportError (inherited by the commands below)
  .exitOverride()
  .configureOutput({ outputError: () => {} });

program
  .command('train')
  .description('train a classifier; writes checkpoints, train.jsonl, model.safetensors and the report into --out')
  .option('--config <file>', 'JSON file of config keys (flags override it)')
  .option('--data <dir>', 'dataset folder: Plant Pathology 2020/2021 CSV layout or one folder per class')
  .option('--synthetic', 'train on the embedded synthetic apple leaves (the default)')
  .option('--counts <list>', 'images per class, e.g. healthy=516,multiple_diseases=91,rust=622,scab=592 (the default), or "all" (every image of --data)', counts)
  .option('--synthetic-seed <n>', 'seed of the synthetic images', int)
  .option('--extra-train <class=dir[:n]>', 'add the images of <dir> (first n) to the training split as <class>, e.g. synthetic ones; repeatable', extraTrain)
  .option('--image-size <px>', 'square input side (default 64)', int)
  .option('--batch-size <n>', 'training batch size (default 32)', int)
  .option('--eval-batch-size <n>', 'evaluation batch size (default 64)', int)
  .option('--epochs <n>', 'epochs (default 10)', int)
  .option('--max-steps-per-epoch <n>', 'cut each epoch after n steps (0 = whole epoch)', int)
  .addOption(new Option('--arch <name>', 'model (default resnet18)').choices(['resnet18', 'resnet34', 'tiny']))
  .addOption(new Option('--optimizer <name>', 'optimizer (default sgd)').choices(['sgd', 'adamw']))
  .option('--lr <x>', 'peak learning rate (default 0.05)', num)
  .option('--momentum <x>', 'SGD momentum (default 0.9)', num)
  .option('--nesterov', 'Nesterov momentum (the default)')
  .option('--no-nesterov', 'plain momentum')
  .option('--weight-decay <x>', 'weight decay (default 5e-4)', num)
  .option('--warmup-epochs <x>', 'linear warmup length, then cosine decay (default 1)', num)
  .option('--min-lr-ratio <x>', 'final LR as a fraction of --lr (default 0.01)', num)
  .option('--label-smoothing <x>', 'label smoothing (default 0)', num)
  .addOption(new Option('--class-weights <mode>', 'class-weighted loss (default none)').choices(['none', 'inverse', 'effective']))
  .option('--balanced-sampling', 'draw class-balanced batches (with replacement)')
  .addOption(new Option('--monitor <metric>', 'selects the best checkpoint, drives early stopping (default val_mean_auc)').choices(['val_loss', 'val_accuracy', 'val_macro_f1', 'val_mean_auc']))
  .option('--patience <n>', 'early stopping: epochs without improvement (0 = off, the default)', int)
  .option('--val-fraction <x>', 'validation share of the pool (default 0.15)', num)
  .option('--test-fraction <x>', 'test share of the pool (default 0.15)', num)
  .option('--held-out-test <n>', 'test on up to n images per class outside the pool instead (needs --counts for a folder)', int)
  .option('--augment', 'augment training images (the default)')
  .option('--no-augment', 'no augmentation')
  .option('--seed <n>', 'seed of init, split, order and augmentation (default 0)', int)
  .option('--keep-last <n>', 'checkpoints kept besides best (default 2)', int)
  .option('--checkpoint-every <n>', 'also checkpoint every n steps (default: epoch ends only)', int)
  .option('--out <dir>', 'run directory (default runs/<arch>-<timestamp>)')
  .option('--resume <dir>', 'continue the run in <dir> from its newest checkpoint (its config is used)')
  .option('--backend <name>', 'webgpu, cpu or auto (default: FOLIAR_BACKEND, else auto)')
  .option('--no-progress', 'no progress bars')
  .action(async (f: TrainFlags) => {
    await initBackend(f.backend);
    let config: TrainConfig;
    if (f.resume) {
      const given = Object.entries(flagsToConfig(f)).filter(([, v]) => v !== undefined).map(([k]) => k);
      if (given.length || f.config) console.warn(`note: --resume uses the run's own config; ignoring ${[...(f.config ? ['--config'] : []), ...given].join(', ')}`);
      config = resolveConfig();
    } else {
      const file = f.config ? await readConfigFile(f.config) : {};
      config = resolveConfig(file, flagsToConfig(f));
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '');
    const runDir = resolve(f.resume ?? f.out ?? join('runs', `${config.arch}-${stamp}`));
    const ac = new AbortController();
    const onSigint = () => {
      if (ac.signal.aborted) process.exit(130);
      process.stderr.write('\nstopping after this step with a checkpoint (Ctrl-C again to quit at once)…\n');
      ac.abort();
    };
    process.on('SIGINT', onSigint);
    const r = await train(config, { runDir, resume: !!f.resume, signal: ac.signal, progress: f.progress });
    process.off('SIGINT', onSigint);
    if (r.interrupted) process.exitCode = 130;
  });

program
  .command('eval')
  .description('evaluate a trained model; writes report.json, report.md and charts')
  .requiredOption('--model <path>', 'run directory, model.safetensors or a checkpoint')
  .addOption(new Option('--split <name>', 'which images of the training run\'s data (default test)').choices(['train', 'val', 'test']))
  .option('--data <dir>', 'evaluate every image of this dataset folder instead (class names must match the model\'s)')
  .option('--batch-size <n>', 'batch size (default 64)', posInt)
  .option('--out <dir>', 'report directory (default <run dir>/eval-<split>)')
  .option('--backend <name>', 'webgpu, cpu or auto (default: FOLIAR_BACKEND, else auto)')
  .option('--no-progress', 'no progress bar')
  .action(async (f: { model: string; split?: 'train' | 'val' | 'test'; data?: string; batchSize?: number; out?: string; backend?: string; progress?: boolean }) => {
    await initBackend(f.backend);
    const { model, info, path } = await loadTrainedModel(f.model);
    const size = info.imageSize;
    const bs = f.batchSize ?? 64;
    let loader: DataLoader;
    let what: string;
    if (f.data) {
      const src = await folderSource(f.data, size);
      const missing = src.set.classNames.filter((c) => !info.classNames.includes(c));
      if (missing.length) throw new Error(`${f.data}: classes ${missing.join(', ')} are unknown to the model (its classes: ${info.classNames.join(', ')})`);
      // relabel into the model's class order
      const items = src.set.items.map((it) => ({ ...it, label: info.classNames.indexOf(src.set.classNames[it.label]!) }));
      loader = new DataLoader(src.open(items), { batchSize: bs, imageSize: size, shuffle: false, transform: evalTransform(size) });
      what = `${src.set.source} (${items.length} images)`;
    } else {
      if (!info.config) throw new Error(`${path}: no training config stored; pass --data <dir> to say what to evaluate`);
      const data: PreparedData = await prepareData({ ...info.config, evalBatchSize: bs });
      const split = f.split ?? 'test';
      const set = data[split];
      loader = split === 'train'
        ? new DataLoader(data.trainLoader.dataset, { batchSize: bs, imageSize: size, shuffle: false, transform: evalTransform(size) })
        : split === 'val' ? data.valLoader : data.testLoader;
      what = `${split} split (${set.items.length} images: ${classCounts(set).map((n, i) => `${info.classNames[i]} ${n}`).join(', ')})`;
    }
    const ev = await evaluate(model, loader, info.classNames, { label: 'eval', progress: f.progress });
    const modelDir = path.replace(/\/[^/]+$/, '');
    const outDir = resolve(f.out ?? join(modelDir, `eval-${f.data ? 'data' : f.split ?? 'test'}`));
    const written = await writeRunReport(outDir, {
      title: `${info.arch} evaluation`, split: what, report: ev.report,
      extra: { model: path, imagesPerSecond: ev.labels.length / ev.seconds, backend: ft.getBackend().describe() },
    });
    console.log(`${what}\n${perClassTable(ev.report)}\nreport: ${written.markdown}`);
    model.dispose();
  });

program
  .command('predict')
  .description('per-image class probabilities (CSV) for image files and/or folders')
  .argument('<images...>', 'image files or folders (searched recursively)')
  .requiredOption('--model <path>', 'run directory, model.safetensors or a checkpoint')
  .option('--output <file>', 'write the CSV here (default: stdout)')
  .option('--batch-size <n>', 'batch size (default 32)', posInt)
  .option('--backend <name>', 'webgpu, cpu or auto (default: FOLIAR_BACKEND, else auto)')
  .action(async (images: string[], f: { model: string; output?: string; batchSize?: number; backend?: string }) => {
    await initBackend(f.backend);
    const { model, info } = await loadTrainedModel(f.model);
    const paths = await listImages(images);
    const preds = await predictImages(model, paths, { imageSize: info.imageSize, numClasses: info.classNames.length, batchSize: f.batchSize });
    const csv = predictionsCsv(preds, info.classNames);
    if (f.output) {
      await writeFileAtomic(resolve(f.output), csv);
      console.error(`${preds.length} predictions written to ${resolve(f.output)}`);
    } else process.stdout.write(csv);
    model.dispose();
  });

// errors that escape the command's promise (a stray rejection) are reported the same way
const stray = (e: unknown) => {
  reportError(e);
  process.exit(1);
};
process.on('uncaughtException', stray);
process.on('unhandledRejection', stray);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  reportError(e);
} finally {
  ft.shutdown();
}
