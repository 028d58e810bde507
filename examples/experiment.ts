/**
 * The study's main job: a ResNet18 trained from scratch on apple leaves with the Plant Pathology
 * 2020 class imbalance (516 healthy, 91 multiple_diseases, 622 rust, 592 scab), scored per class
 * (accuracy = recall, precision, F1, ROC AUC and their mean: the Kaggle metric) on a class-balanced
 * held-out test set, so the rare class's numbers rest on more than a dozen images.
 *
 *   npm run experiment                                  # embedded synthetic leaves, --profile quick
 *   npm run experiment -- --data ../shared/data/leaves  # the real photographs
 *   npm run experiment -- --profile full                # the longer study setting
 *   npm run experiment -- --data ../shared/data/leaves --extra-train multiple_diseases=runs/synthetic:400
 *                                                       # the study's retraining with synthetic images
 *
 * Writes runs/experiment-<timestamp>/ (report.md, report.json, charts, checkpoints, train.jsonl).
 * Interrupt with Ctrl-C and continue with `-- --resume runs/experiment-<timestamp>`.
 * Errors are one line on stderr (exit code 1); `--verbose` or FOLIAR_DEBUG=1 adds the stack.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ft from '@foliar/tensor';
import { train, resolveConfig, parseExtraTrain, PP2020_COUNTS } from '@foliar/classifier';
import { CLASSIFIER_PROFILES as PROFILES, profileOf, intFlag as num } from './lib/profiles.js';

const USAGE = `usage: npm run experiment -- [options]
  --data <dir>                dataset folder (Plant Pathology 2020/2021 CSV layout or one folder per class);
                              default: the embedded synthetic leaves
  --profile quick|full        training profile (default quick)
  --out <dir>                 run directory (default runs/experiment-<timestamp>)
  --resume <dir>              continue the run in <dir> from its newest checkpoint
  --epochs <n>, --image-size <px>, --seed <n>
                              override the profile
  --extra-train <class=dir[:n]>
                              add the images of <dir> to the training split as <class> (repeatable)
  --backend webgpu|cpu|auto   default: FOLIAR_BACKEND, else auto
  --verbose                   stack traces with errors (also FOLIAR_DEBUG=1)
  --help                      this text`;

/** parseArgs errors (unknown option, missing value) with a pointer to --help, without Node's error code. */
function parseFlags(): ReturnType<typeof parse> {
  try {
    return parse();
  } catch (e) {
    const err = e as Error & { code?: string };
    if (typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS')) throw new Error(`${err.message.split('\n')[0]!.replace(/\.?$/, '')} (see --help)`);
    throw e;
  }
}

function parse() {
  return parseArgs({
    options: {
      data: { type: 'string' },
      profile: { type: 'string', default: 'quick' },
      out: { type: 'string' },
      resume: { type: 'string' },
      epochs: { type: 'string' },
      'image-size': { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      'extra-train': { type: 'string', multiple: true },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

async function main(): Promise<void> {
  const { values: args } = parseFlags();
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const profile = profileOf(args.profile);

  // --backend, else FOLIAR_BACKEND (read by ft.init when no backend is passed), else auto
  const want = args.backend ?? (process.env.FOLIAR_BACKEND || undefined);
  if (want !== undefined && !['auto', 'webgpu', 'cpu'].includes(want)) throw new Error(`${args.backend !== undefined ? '--backend' : 'FOLIAR_BACKEND'} must be webgpu, cpu or auto, got "${want}"`);
  const backend = await ft.init({ backend: (want ?? 'auto') as 'auto' | 'webgpu' | 'cpu' });
  const config = resolveConfig(PROFILES[profile], {
    arch: 'resnet18',
    data: args.data ? resolve(args.data) : null,
    counts: { ...PP2020_COUNTS },
    epochs: num(args.epochs, 'epochs'),
    imageSize: num(args['image-size'], 'image-size'),
    seed: num(args.seed, 'seed'),
    ...(args['extra-train'] ? { extraTrain: args['extra-train'].map((v) => { const e = parseExtraTrain(v); return { ...e, dir: resolve(e.dir) }; }) } : {}),
  });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '');
  const runDir = args.resume ? resolve(args.resume) : resolve(args.out ?? join('runs', `experiment-${stamp}`));

  const ac = new AbortController();
  process.on('SIGINT', () => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after this step (Ctrl-C again to quit at once)…\n');
    ac.abort();
  });

  console.log(`foliar experiment (${profile}): ResNet18 from scratch on ${config.data ?? 'the embedded synthetic leaves'}, ${config.imageSize}x${config.imageSize}`);
  console.log(`device: ${backend.describe()}`);
  console.log(`run directory: ${runDir}`);
  const t0 = performance.now();
  const r = await train(config, { runDir, resume: !!args.resume, signal: ac.signal });
  const wall = (performance.now() - t0) / 1000;
  if (r.interrupted) {
    console.log(`interrupted after ${wall.toFixed(0)} s; continue with: npm run experiment -- --resume ${runDir}`);
    process.exitCode = 130;
  } else if (r.test) {
    const rep = r.test.report;
    const seen = r.history.reduce((a, h) => a + h.steps * config.batchSize, 0);
    const trainSeconds = r.history.reduce((a, h) => a + h.steps * config.batchSize / h.imagesPerSecond, 0);
    console.log(`\ntraining pool (train split): ${r.classNames.map((c, i) => `${c} ${r.data.trainCounts[i]}${r.data.extraCounts[i] ? ` + ${r.data.extraCounts[i]} extra` : ''}`).join(', ')}`);
    // Where the rare class stands: the class with the fewest training images against the others.
    const rare = r.data.trainCounts.indexOf(Math.min(...r.data.trainCounts));
    const rc = rep.perClass[rare]!;
    const others = rep.perClass.filter((_, i) => i !== rare);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const share = r.data.trainCounts[rare]! / r.data.trainCounts.reduce((a, b) => a + b, 0);
    console.log(
      `rare class "${rc.name}" (${(100 * share).toFixed(1)}% of training images): accuracy ${(100 * rc.recall).toFixed(1)}%, precision ${(100 * rc.precision).toFixed(1)}%, AUC ${rc.auc?.toFixed(3) ?? '–'}` +
        ` vs the other classes' mean accuracy ${(100 * mean(others.map((o) => o.recall))).toFixed(1)}%, AUC ${mean(others.map((o) => o.auc ?? NaN)).toFixed(3)}`,
    );
    console.log(`mean ROC AUC (Kaggle metric): ${rep.macro.auc?.toFixed(4) ?? '–'}; accuracy ${(100 * rep.accuracy).toFixed(1)}%`);
    console.log(`wall time ${wall.toFixed(0)} s (${(wall / 60).toFixed(1)} min); training ${seen} images at ${(seen / trainSeconds).toFixed(1)} img/s; peak memory ${(Math.max(...r.history.map((h) => h.peakBytes)) / 2 ** 20).toFixed(0)} MiB`);
    console.log(`report: ${r.report?.markdown}`);
  }
}

function report(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  console.error(`experiment: ${err.message}`);
  if (process.argv.includes('--verbose') || process.env.FOLIAR_DEBUG === '1') console.error(err.stack);
  process.exitCode = 1;
}
// errors that escape main's promise (a stray rejection) are reported the same way
const stray = (e: unknown) => {
  report(e);
  process.exit(1);
};
process.on('uncaughtException', stray);
process.on('unhandledRejection', stray);
try {
  await main();
} catch (e) {
  report(e);
} finally {
  ft.shutdown();
}
