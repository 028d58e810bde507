/**
 * The study as one experiment: does DreamBooth's synthetic data help a classifier on the rare class,
 * compared with the simple controls, over several seeds?
 *
 *   data        deduplicate by decoded pixels; one stratified train/val/test split per seed (splits.json)
 *   pretrain    VAE and base text-to-image model, once for all seeds, on images no seed evaluates on, never the rare class
 *   per seed:
 *   instrument  a class-balanced gate classifier (longer than an arm, chosen on validation, never tested)
 *   dreambooth  with and without prior preservation, on exactly the rare-class images of the training split
 *   gates       VAE, base model and DreamBooth quality numbers, first, so a reader sees the generator's quality early
 *   arms        baseline · oversample · class_weight (the simple controls)
 *   synthetic   N images per DreamBooth model, and N of the base model's class prompt (the control arm)
 *   verify      the gate classifier scores the synthetic images; threshold fixed on validation
 *   arms        control · dreambooth · dreambooth_no_prior · dreambooth_filtered (+N images each)
 *   drift       with and without prior preservation
 *   report      report.json / report.md / report.html (self-contained), predictions per arm and seed
 *
 *   npm run study                                     # quick profile, embedded procedural leaves
 *   npm run study -- --data ../shared/data/leaves     # photographs (any supported layout)
 *   npm run study -- --profile smoke                  # every stage at toy size (CI)
 *   npm run study -- --profile full --model <SD 1.x diffusers folder> --data <Kaggle 2020 folder>
 *   npm run study -- --queue redis://host:6379 --store <shared folder>   # the expensive stages on workers (npm run study-worker)
 *
 * Each stage is cached under --out by a hash of its configuration and inputs: re-running the same
 * command continues; changing a setting reruns only what depends on it. The test split is read once
 * per arm and seed, by the final evaluation of that arm; every choice (checkpoint, filter threshold)
 * is made on validation images.
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ft from '@foliar/tensor';
import { writeFileAtomic } from '@foliar/tensor';
import { Progress, readPng } from '@foliar/report';
import { splitsJson, loadTrainedModel, type ProtocolSplit } from '@foliar/classifier';
import { studyProfile } from './study/profiles.js';
import { StageRunner, hashOf, type StageResult } from './study/stages.js';
import { loadStudyData, imagesOf, itemsOf, studySplits, classPromptOf } from './study/data.js';
import { trainStudyDreamBooth, sampleSet, StudyInterrupted, type MethodName } from './study/generator.js';
import { pretrainGenerator } from './study/pretrain.js';
import { runArm, classifierBaseConfig, splitStage, armReport, CONTROL_ARMS, type ArmRun, type ArmSpec } from './study/arms.js';
import { classifierScorer, type RgbImage } from './study/features.js';
import { trainGateClassifier, gateClassifierEntries } from './study/scorer.js';
import { verificationFilter, studyGates, gatesStageConfig } from './study/gates.js';
import { DEFAULT_PROBES, studyDrift } from './study/drift.js';
import { labelledGrid } from './study/grids.js';
import { writeReportHtml } from './study/report-html.js';
import { renderReportMarkdown } from './study/report-md.js';
import type { StudyReport, GateEntry, DriftEntry, ReportImage } from './study/report-types.js';
import { StudyQueue, redactRedisUrl } from './study/queue/queue.js';
import { armJob, syntheticJob, gateClassifierJob, dreamboothJob, gatesJob, driftJob, stageRef, locateJob, type StudyJob, type SeedContext } from './study/queue/jobs.js';

const { values: args } = parseArgs({
  options: {
    profile: { type: 'string', default: 'quick' },
    data: { type: 'string' },
    model: { type: 'string' },
    out: { type: 'string' },
    method: { type: 'string', default: 'full' },
    seeds: { type: 'string' },
    count: { type: 'string' },
    class: { type: 'string', default: 'multiple_diseases' },
    'instance-prompt': { type: 'string', default: 'a photo of a <diseaes-leaf> leaf' },
    'class-prompt': { type: 'string', default: 'a photo of a leaf' },
    backend: { type: 'string' },
    queue: { type: 'string' },
    store: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log('usage: npm run study -- [--profile smoke|quick|gpu64|full] [--data <dataset folder>] [--model <SD diffusers folder as base model>] [--method full|lora] [--seeds 0,1,2] [--count 400] [--class multiple_diseases] [--out dir] [--backend webgpu|cpu] [--queue redis://host:port --store <shared dir>]');
  process.exit(0);
}
const P = studyProfile(args.profile);
if (args.seeds) {
  P.seeds = args.seeds.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n)) throw new Error(`--seeds must be comma-separated integers, got "${args.seeds}"`);
    return n;
  });
  if (P.seeds.length < 2) throw new Error('--seeds: at least two seeds are needed for an interval');
}
if (args.count) {
  const n = Number(args.count);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--count must be a positive integer, got "${args.count}"`);
  P.synthetic.count = n;
}
const method = args.method as MethodName;
if (method !== 'full' && method !== 'lora') throw new Error(`--method must be full or lora, got "${args.method}"`);
const rare = args.class!;
const instancePrompt = args['instance-prompt']!;
const classPrompt = args['class-prompt']!;
// --store: the run folder every worker sees (the artifact store of the queued jobs)
if (args.store && args.out && resolve(args.store) !== resolve(args.out)) throw new Error('--store and --out name the same folder (the run folder); give one');
const out = resolve(args.store ?? args.out ?? join('runs', `study-${P.name}`));
const dataDir = args.data ? resolve(args.data) : null;

const backend = await ft.init({ backend: (args.backend as 'webgpu' | 'cpu' | undefined) ?? 'auto' });
const adapter = backend.describe();
console.log(`foliar study, ${P.name} profile, ${P.seeds.length} seeds, method ${method}, on ${adapter}`);
console.log(`expected time on a 2-core machine: about ${P.estimateMinutes} min (stages already done are reused); results in ${out}`);
const stop = new AbortController();
process.on('SIGINT', () => {
  if (stop.signal.aborted) process.exit(130);
  process.stderr.write('\nstopping after this step (Ctrl-C again to quit at once); run the same command again to continue…\n');
  stop.abort();
});

const runner = new StageRunner(out);
const perSeedStages = 14;
const overall = new Progress({ total: 1 + 2 + P.seeds.length * perSeedStages + 1, label: 'study', unit: 'stages/s' });
let stagesDone = 0;
const tick = () => {
  stagesDone++;
  overall.increment();
};

// ---------------------------------------------------------------- the job queue (--queue)
// Classifier arms, gate classifiers, DreamBooth runs, gates, synthetic image sets and drift go to
// workers as jobs (examples/study/queue); the stages below wait for them through runner.offload and
// read their results from the store. A job is enqueued once the jobs it reads are done, so every seed's
// chain runs on the workers side by side. A job that fails for good stops the study at once.
let queue: StudyQueue | null = null;
let queueFailed = false;
const submit = (job: StudyJob, after: readonly Promise<void>[] = []): Promise<void> => {
  if (!queue) return Promise.resolve();
  const done = queue.submit(job, after);
  void done.catch(stopStudy);
  return done;
};
/** Stops a queued study on the first job that failed for good (or the first error in submitting one). */
function stopStudy(e: Error): void {
  if (queueFailed) return;
  queueFailed = true;
  overall.stop();
  console.error(`\nstudy stopped: ${e.message}\nwhat is done is kept in ${out}; run the same command again to continue`);
  void queue?.close().finally(() => {
    ft.shutdown();
    process.exit(1);
  });
}
/** The stages that must come from the queue when --queue is set (a stage of these names run here means its job's config drifted). */
const QUEUED_STAGES = /^(arm-.*|synthetic-.*|gate-classifier|dreambooth|dreambooth_no_prior|gates|drift)$/;
if (args.queue) {
  const q = new StudyQueue(args.queue, out, { onChange: (jobs) => overall.update(stagesDone, { jobs }) });
  queue = q;
  runner.offload = (stage) => {
    const job = q.wait(stage.key);
    // a queued kind that reaches here unsubmitted: the job's config has drifted from the stage's
    if (!job && QUEUED_STAGES.test(stage.name)) throw new Error(`${stage.name} (seed ${stage.seed}, ${stage.key}) was not submitted to the queue: examples/study/queue/jobs.ts no longer builds this stage's config`);
    return job;
  };
  console.log(`queue: ${redactRedisUrl(args.queue)}, store ${out}; start workers with npm run study-worker -- --redis ${redactRedisUrl(args.queue)} --store ${out}`);
}

// ---------------------------------------------------------------- data, splits
const data = await loadStudyData(P, dataDir);
console.log(`data: ${data.describe}`);
const classNames = [...data.set.classNames];
if (!classNames.includes(rare)) throw new Error(`--class ${rare}: not a class of the data (${classNames.join(', ')})`);
const common = classNames.filter((c) => c !== rare);
const prompt = classPromptOf;
const splits = studySplits(P, data.set);
await writeFileAtomic(join(out, 'splits.json'), JSON.stringify(splitsJson(splits), null, 2) + '\n');
await writeFileAtomic(join(out, 'dedup.json'), JSON.stringify({ counts: data.dedup.counts, groups: data.dedup.groups, removed: data.dedup.removed }, null, 2) + '\n');
tick();

const classifierBase = classifierBaseConfig(P, data);
const controls = CONTROL_ARMS;
const extraArm = (name: string, description: string, dir: string): ArmSpec => ({ name, description, config: { extraTrain: [{ className: rare, dir }] } });
// the controls and the gate classifiers need only the splits: on a queue they train while this process pretrains the generator
const instJobs = P.seeds.map((seed, si) => gateClassifierJob(seed, classifierBase, P.gateClassifier, splits[si]!, [splitStage(splits[si]!, out)], out, backend.name));
for (const [si, seed] of P.seeds.entries()) {
  for (const spec of controls) submit(armJob(spec, seed, classifierBase, splits[si]!, [splitStage(splits[si]!, out)], out, backend.name));
  submit(instJobs[si]!);
}

const armRuns = new Map<string, ArmRun[]>();
const armSpecs = new Map<string, ArmSpec>();
const gates: GateEntry[] = [];
const drift: DriftEntry[] = [];
const images: ReportImage[] = [];
const instanceIds: Record<string, string[]> = {};
const verification: StudyReport['verification']['per_seed'] = [];
const addRun = (spec: ArmSpec, r: StageResult<ArmRun>) => {
  armSpecs.set(spec.name, spec);
  armRuns.set(spec.name, [...(armRuns.get(spec.name) ?? []), r.value]);
};
const relImage = (path: string, caption: string, section: string) => images.push({ path: relative(out, path), caption, section });
const PROBES = P.drift.probes ?? [...DEFAULT_PROBES];
const dbVariants = [
  { name: 'dreambooth', classPrompt: classPrompt as string | null, description: `+N images from DreamBooth (${method}) with prior preservation` },
  { name: 'dreambooth_no_prior', classPrompt: null, description: `+N images from DreamBooth (${method}) without prior preservation` },
];
const dbValidationPrompts = [instancePrompt, ...PROBES.slice(0, 2)];

/**
 * --queue: every seed's generator chain as jobs, each enqueued once its inputs are done (DreamBooth
 * after the split and base model; gates and drift after the DreamBooth runs and the gate classifier;
 * image sets after their generator). The loop below then only waits for them, seed after seed.
 */
function submitSeedJobs(baseModel: string, baseStage: StageResult<unknown>, vaeStage: StageResult<{ model: string }> | null): void {
  if (!queue) return;
  for (const [si, seed] of P.seeds.entries()) {
    const split = splits[si]!;
    const splitDep = splitStage(split, out);
    const c: SeedContext = { profile: P, dataDir, seed, splitDep, rare, store: out, backend: backend.name };
    const instances = itemsOf(split.train, rare).map((it) => it.id).sort();
    const inst = instJobs[si]!;
    const instDone = submit(inst);
    const dbs = dbVariants.map((v) => dreamboothJob(c, { variant: v.name, baseModel, baseStage, instancePrompt, classPrompt: v.classPrompt, method, validationPrompts: dbValidationPrompts, instances }));
    const dbDone = dbs.map((j) => submit(j));
    const dbRefs = dbs.map((j) => stageRef(locateJob(j, out).key));
    const instRef = stageRef(locateJob(inst, out).key);
    submit(gatesJob(c, { classPrompt, instancePrompt, baseModel, vaeModel: vaeStage?.value.model ?? null, instrument: inst, dreambooth: dbs, deps: [baseStage, ...dbRefs, instRef, ...(vaeStage ? [vaeStage] : [])] }), [...dbDone, instDone]);
    submit(driftJob(c, { classPrompt, probes: PROBES, baseModel, instrument: inst, dreambooth: dbs, deps: [baseStage, ...dbRefs, instRef] }), [...dbDone, instDone]);
    submit(syntheticJob(P, 'control', seed, baseModel, classPrompt, baseStage, out, backend.name));
    // an image set reads its generator's model folder from the DreamBooth stage's result
    // (an error here stops the study by name, not as an unhandled rejection)
    dbs.forEach((j, k) => void dbDone[k]!.then(() => {
      const { dir } = runner.locate(j.stage.name, seed, j.stage.config, j.stage.deps);
      const { value } = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as { value: { model: string } };
      submit(syntheticJob(P, j.variant, seed, value.model, instancePrompt, stageRef(dbRefs[k]!.key), out, backend.name));
    }, () => { /* the DreamBooth job's own failure stops the study */ }).catch((e: Error) => stopStudy(new Error(`submitting ${j.variant}'s image set (seed ${seed}): ${e.message}`))));
  }
}

// ---------------------------------------------------------------- generator pretraining (once, all seeds)
// The VAE and base model play Stable Diffusion: trained once on images no seed evaluates on, never on
// the rare class (examples/study/pretrain.ts says where the images come from).
let baseModel: string;
let vaeStage: StageResult<{ model: string }> | null = null;
let baseStage: StageResult<unknown>;
let pretrainSource: string;
try {
  if (args.model) {
    baseModel = resolve(args.model);
    baseStage = { key: hashOf({ model: baseModel }), dir: baseModel, value: null, seconds: 0, cached: true };
    pretrainSource = `base model: ${args.model} (given)`;
    tick();
    tick();
  } else {
    const pre = await pretrainGenerator({ runner, profile: P, data, splits, photographs: dataDir !== null, common, classPrompt, promptOf: prompt, signal: stop.signal, onStage: tick });
    pretrainSource = pre.pool.describe;
    vaeStage = pre.vae;
    baseStage = pre.base;
    baseModel = pre.base.value.model;
  }
  submitSeedJobs(baseModel, baseStage, vaeStage);

  for (const [si, seed] of P.seeds.entries()) {
    const split = splits[si]!;
    const splitDep = splitStage(split, out);
    // ---- the gates' instrument: class-balanced, longer than an arm, chosen on validation, never tested
    const inst = await trainGateClassifier(runner, seed, classifierBase, P.gateClassifier, split, [splitDep], stop.signal);
    gates.push(...gateClassifierEntries(inst.value, seed, split.val.items.length));
    tick();
    const loaded = await loadTrainedModel(inst.value.checkpoint);
    const scorer = classifierScorer(loaded.model, { classNames, imageSize: P.imageSize });
    // ---- DreamBooth's instance images: exactly the rare class of this seed's training split
    const rareTrain = itemsOf(split.train, rare);
    instanceIds[String(seed)] = rareTrain.map((it) => it.id).sort();
    // ---- DreamBooth with and without prior preservation, on the rare class of the training split
    const rareImages = await imagesOf(data, rareTrain);
    const dbStages: Record<string, StageResult<{ model: string }>> = {};
    for (const v of dbVariants) {
      dbStages[v.name] = await runner.run(v.name, seed, { db: P.dreambooth, method, instancePrompt, classPrompt: v.classPrompt, instances: instanceIds[String(seed)] }, [splitDep, baseStage], (dir) =>
        trainStudyDreamBooth(P, dir, baseModel, { instanceImages: rareImages, instancePrompt, classPrompt: v.classPrompt, method, validationPrompts: dbValidationPrompts }, seed, stop.signal),
      );
      tick();
    }
    // ---- gates (before the arms: a reader sees the generator's quality first)
    // (the stage's body is gates.ts: studyGates, the same function a queued `gates` job runs)
    const dbModels = dbVariants.map((v) => ({ name: v.name, model: dbStages[v.name]!.value.model }));
    const g = await runner.run('gates', seed, gatesStageConfig(P), [baseStage, ...Object.values(dbStages), inst, ...(vaeStage ? [vaeStage] : [])], (dir) =>
      studyGates({ profile: P, data, split, seed, rare, classPrompt, instancePrompt, scorer, vaeModel: vaeStage ? vaeStage.value.model : null, baseModel, dreambooth: dbModels }, dir),
    );
    gates.push(...g.value.entries);
    relImage(join(g.dir, 'samples.png'), `seed ${seed}: real ${rare} training images, base-model class-prompt samples, DreamBooth instance-prompt samples`, 'gates');
    relImage(join(g.dir, 'conditioning.png'), `seed ${seed}: each class prompt of the base model under real training images of that class`, 'gates');
    tick();
    // ---- the simple controls
    const ctl: Record<string, StageResult<ArmRun>> = {};
    for (const spec of controls) {
      ctl[spec.name] = await runArm(runner, spec, seed, classifierBase, split, [splitDep], stop.signal);
      addRun(spec, ctl[spec.name]!);
      tick();
    }
    // ---- synthetic sets
    const setSeed = 1_000_000 * (seed + 1);
    const sample = (name: string, model: string, p: string, dep: StageResult<unknown>) =>
      runner.run(`synthetic-${name}`, seed, { count: P.synthetic.count, prompt: p, s: P.synthetic, setSeed }, [dep], async (dir) => ({
        dir: join(dir, 'images'),
        files: await sampleSet(P, model, p, P.synthetic.count, join(dir, 'images'), setSeed),
      }));
    submit(syntheticJob(P, 'control', seed, baseModel, classPrompt, baseStage, out, backend.name));
    for (const v of dbVariants) submit(syntheticJob(P, v.name, seed, dbStages[v.name]!.value.model, instancePrompt, dbStages[v.name]!, out, backend.name));
    const controlSet = await sample('control', baseModel, classPrompt, baseStage);
    const dbSets: Record<string, StageResult<{ dir: string; files: string[] }>> = {};
    for (const v of dbVariants) dbSets[v.name] = await sample(v.name, dbStages[v.name]!.value.model, instancePrompt, dbStages[v.name]!);
    tick();
    // ---- verification: the gate classifier scores the synthetic images; threshold on validation only
    const valRare = await imagesOf(data, itemsOf(split.val, rare));
    const valOther = await imagesOf(data, common.flatMap((c) => itemsOf(split.val, c)));
    const readSet = async (files: string[]) => Promise.all(files.map(async (f) => readPng(f)));
    const ver = await runner.run('verification', seed, { keep: 0.9 }, [dbSets.dreambooth!, controlSet, inst], async (dir) => {
      const synthetic = await readSet(dbSets.dreambooth!.value.files);
      // the feature check compares each image with the real rare-class training images and with the
      // base model's class-prompt images (DreamBooth's class images)
      const classImages = await readSet(controlSet.value.files.slice(0, 100));
      const v = await verificationFilter({ scorer, rareClass: rare, synthetic, valRare, valOther, realRare: rareImages, classImages, seed });
      const keep = join(dir, 'accepted');
      mkdirSync(keep, { recursive: true });
      const accepted = dbSets.dreambooth!.value.files.filter((_, i) => v.accepted[i]);
      for (const f of accepted) copyFileSync(f, join(keep, basename(f)));
      const reject = dbSets.dreambooth!.value.files.filter((_, i) => !v.accepted[i]);
      await labelledGrid([
        { label: 'accepted', images: await readSet(accepted.slice(0, 8)) },
        { label: 'rejected', images: await readSet(reject.slice(0, 8)) },
      ].filter((r) => r.images.length), join(dir, 'verification.png'));
      return { dir: keep, scored: synthetic.length, accepted: accepted.length, threshold: v.threshold, meanRareProbability: v.meanRareProbability, entries: v.entries };
    });
    gates.push(...ver.value.entries);
    verification.push({ seed, scored: ver.value.scored, accepted: ver.value.accepted, threshold: ver.value.threshold, mean_rare_probability: ver.value.meanRareProbability });
    relImage(join(ver.dir, 'verification.png'), `seed ${seed}: DreamBooth images accepted / rejected by the filter`, 'verification');
    tick();
    // ---- retraining arms
    const retrain: [ArmSpec, StageResult<unknown>][] = [
      [extraArm('control', `+N images of the base model's "${classPrompt}" labelled ${rare} (non-informative)`, controlSet.value.dir), controlSet],
      [extraArm('dreambooth', dbVariants[0]!.description, dbSets.dreambooth!.value.dir), dbSets.dreambooth!],
      [extraArm('dreambooth_no_prior', dbVariants[1]!.description, dbSets.dreambooth_no_prior!.value.dir), dbSets.dreambooth_no_prior!],
    ];
    if (ver.value.accepted > 0) retrain.push([extraArm('dreambooth_filtered', 'the dreambooth images the verification accepted', ver.value.dir), ver]);
    else {
      console.warn(`seed ${seed}: the filter accepted no synthetic image; dreambooth_filtered gets none for this seed`);
      tick();
    }
    for (const [spec, dep] of retrain) submit(armJob(spec, seed, classifierBase, split, [splitDep, dep], out, backend.name));
    for (const [spec, dep] of retrain) {
      addRun(spec, await runArm(runner, spec, seed, classifierBase, split, [splitDep, dep], stop.signal));
      tick();
    }
    // ---- drift, with and without prior preservation
    // (the stage's body is drift.ts: studyDrift, the same function a queued `drift` job runs)
    const d = await runner.run('drift', seed, { drift: P.drift, probes: PROBES }, [baseStage, ...Object.values(dbStages), inst], (dir) =>
      studyDrift({ profile: P, seed, classNames, rare, classPrompt, probes: PROBES, scorer, baseModel, dreambooth: dbModels }, dir),
    );
    drift.push(...d.value.entries);
    for (const f of d.value.pics) relImage(f, `seed ${seed}: drift of ${basename(f, '.png')} — base (left) vs fine-tuned (right), same seeds`, 'drift');
    loaded.model.dispose?.();
    tick();
  }
} catch (e) {
  overall.stop();
  await queue?.close();
  if (e instanceof StudyInterrupted || stop.signal.aborted) {
    console.error((e as Error).message);
    ft.shutdown();
    process.exit(130);
  }
  throw e;
}

// ---------------------------------------------------------------- report
const reportDir = out;
const baseline = armRuns.get('baseline')!;
const control = armRuns.get('control') ?? null;
const order = ['baseline', 'oversample', 'class_weight', 'control', 'dreambooth', 'dreambooth_no_prior', 'dreambooth_filtered'];
const arms = order.filter((n) => armRuns.has(n)).map((n) => {
  const runs = armRuns.get(n)!;
  const seedsOf = runs.map((r) => r.seed);
  // paired differences need the same seeds on both sides
  const pick = (ref: ArmRun[] | null) => (ref ? ref.filter((r) => seedsOf.includes(r.seed)) : null);
  return armReport(armSpecs.get(n)!, runs, pick(baseline)!, pick(control), classNames.length, reportDir, runs.map((r) => join(r.runDir, 'test-predictions.csv')));
});
const countsOf = (s: ProtocolSplit['train']) => Object.fromEntries(classNames.map((c, k) => [c, s.items.filter((it) => it.label === k).length]));
const report: StudyReport = {
  title: `Synthetic ${rare} images from DreamBooth: do they help the classifier?`,
  profile: P.name,
  created: new Date().toISOString(),
  adapter,
  rare_class: rare,
  class_names: classNames,
  seeds: P.seeds,
  method,
  data: {
    source: data.describe,
    dedup: { images: data.dedup.counts.images, unique: data.dedup.counts.unique, duplicate_groups: data.dedup.counts.duplicateGroups, conflicting_groups: data.dedup.counts.conflictingGroups, removed: data.dedup.counts.removed },
    splits: Object.fromEntries(splits.map((s) => [String(s.seed), { train: countsOf(s.train), val: countsOf(s.val), test: countsOf(s.test) }])),
    generator_data: args.model
      ? `base model: ${args.model} (given); DreamBooth: the ${rare} images of each seed's training split only`
      : `VAE and base model, trained once for all seeds, never on ${rare}: ${pretrainSource}; DreamBooth: exactly the ${rare} images of each seed's training split; nothing generative saw validation or test images`,
  },
  arms,
  gates,
  drift,
  instance_ids: instanceIds,
  verification: {
    per_seed: verification,
    detail: 'P(rare) from the gate classifier of the same seed (class-balanced sampling, longer than an arm, weights chosen on validation, never evaluated on test: it does recognise the rare class); the threshold keeps 90% of the real rare-class validation images (fixed on validation, never on test); only accepted images enter dreambooth_filtered. The gates table adds the feature check: the share of synthetic images whose nearest ResNet-feature neighbour among real rare-class training images is nearer than among the base model\'s class-prompt images.',
  },
  images,
  timings: runner.timings,
  config: { profile: P, rare_class: rare, instance_prompt: instancePrompt, class_prompt: classPrompt, method, data: dataDir, base_model: args.model ?? null },
  findings: [],
};
report.findings = findingsOf(report);
await writeFileAtomic(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
await writeFileAtomic(join(out, 'report.md'), renderReportMarkdown(report));
await writeReportHtml(join(out, 'report.html'), report);
tick();
overall.stop();
await queue?.close();
console.log(`\nreport: ${join(out, 'report.html')} (also report.md, report.json, splits.json)`);
for (const f of report.findings) console.log(`  - ${f}`);
ft.shutdown();

/** Plain-language reading of the primary endpoints: which differences have intervals that exclude zero. */
function findingsOf(r: StudyReport): string[] {
  const out: string[] = [];
  const fmt = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : (100 * v).toFixed(1));
  for (const arm of r.arms) {
    if (arm.name === 'baseline') continue;
    for (const [ref, diff] of [['baseline', arm.diff_vs_baseline], ['control', arm.diff_vs_control]] as const) {
      const d = diff?.[r.rare_class]?.recall;
      if (!d || d.mean === null) continue;
      const ci = d.ci95 ? `[${fmt(d.ci95[0])}, ${fmt(d.ci95[1])}]` : '(no interval)';
      const sure = d.ci95 && (d.ci95[0] > 0 || d.ci95[1] < 0);
      out.push(`${arm.name} vs ${ref}: ${r.rare_class} recall ${d.mean >= 0 ? '+' : ''}${fmt(d.mean)} points ${ci} over ${d.per_seed.length} seeds — ${sure ? (d.mean > 0 ? 'a gain whose interval excludes zero' : 'a loss whose interval excludes zero') : 'not distinguishable from no change'}`);
    }
  }
  const dbShare = r.gates.filter((g) => g.stage === 'dreambooth' && g.name === 'rare_share');
  // read against the control: the base model's own class-prompt samples that the same classifier calls rare
  const control = r.gates.filter((g) => g.stage === 'dreambooth' && g.name === 'base_rare_share');
  const ctl = control.length ? `; the base model's own samples: ${control.map((g) => fmt(g.value)).join(', ')}%` : '';
  if (dbShare.length) out.push(`DreamBooth instance samples classified as ${r.rare_class}: ${dbShare.map((g) => fmt(g.value)).join(', ')}% per seed (target ≥ 50%${ctl})`);
  return out;
}
