/**
 * The study's jobs: stage units that any worker process can recompute from the job's payload alone
 * (plain JSON, no closures) plus the shared store. A job's id is its stage's cache key
 * (StageRunner.locate: a hash of the stage's name, seed, configuration and inputs' keys), and its
 * result is the stage folder under the shared store, done when result.json is there — written
 * atomically by StageRunner, so a partial result is never visible and a finished job is never redone.
 *
 * Kinds (each runs the same stage body as the in-process study; test/queue checks the results equal):
 *   arm             one classifier training of one arm on one seed (arms.ts: trainArm)
 *   synthetic       one image set sampled from a generator (generator.ts: sampleSet)
 *   gate-classifier one seed's gates instrument (scorer.ts: trainGateClassifierIn)
 *   dreambooth      one DreamBooth fine-tuning run, per seed and variant (generator.ts: trainStudyDreamBooth)
 *   gates           one seed's generator gates (gates.ts: studyGates)
 *   drift           one seed's drift samples (drift.ts: studyDrift)
 * The last three read images of the study's data: the payload names the data dir (null: the procedural
 * leaves, rendered identically everywhere) and the seed, the worker re-reads the data and rebuilds the
 * seed's split, and refuses the job unless that split hashes to the key the study used. Models come
 * from the store: a given base model by its path, the others from their stage's result.json (found by
 * the stage folder, whose name is its content hash).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainConfig, ProtocolSplit } from '@foliar/classifier';
import { loadTrainedModel, splitsJson } from '@foliar/classifier';
import type { BackendName } from '@foliar/tensor';
import { StageRunner, hashOf, stableJson, type StageResult } from '../stages.js';
import { armConfig, trainArm, type ArmSpec } from '../arms.js';
import { sampleSet, trainStudyDreamBooth, type MethodName } from '../generator.js';
import { gateClassifierConfig, trainGateClassifierIn } from '../scorer.js';
import { studyGates, gatesStageConfig } from '../gates.js';
import { studyDrift } from '../drift.js';
import { classifierScorer, type ImageScorer } from '../features.js';
import { loadStudyData, studySplit, imagesOf, itemsOf, type StudyData } from '../data.js';
import type { StudyProfile } from '../profiles.js';

/** What identifies a stage: the same fields StageRunner hashes into its key. */
export interface StageRef {
  name: string;
  seed: number | null;
  config: unknown;
  deps: string[];
}

interface JobBase {
  stage: StageRef;
  /** The store as the study sees it: values hold absolute paths, so every worker must see the same path. */
  store: string;
  /** The study's backend: another backend would give other numbers. */
  backend: BackendName;
}

export interface ArmJob extends JobBase {
  kind: 'arm';
  arm: string;
  seed: number;
  config: TrainConfig;
}

export interface SyntheticJob extends JobBase {
  kind: 'synthetic';
  seed: number;
  profile: StudyProfile;
  /** The generator's folder (a stage result under the store, or a given base model). */
  model: string;
  prompt: string;
  setSeed: number;
}

export interface GateClassifierJob extends JobBase {
  kind: 'gate-classifier';
  seed: number;
  config: TrainConfig;
}

/** What a job on one seed's images carries: enough to rebuild the study's data and that seed's split. */
interface SeedDataJob extends JobBase {
  seed: number;
  profile: StudyProfile;
  /** The study's --data folder (the same path on every worker), or null: the procedural leaves. */
  dataDir: string | null;
  /** splitStage(split).key: the rebuilt split must hash to it. */
  splitKey: string;
  rare: string;
}

export interface DreamBoothJob extends SeedDataJob {
  kind: 'dreambooth';
  /** 'dreambooth' (with prior preservation) or 'dreambooth_no_prior'. */
  variant: string;
  baseModel: string;
  instancePrompt: string;
  classPrompt: string | null;
  method: MethodName;
  validationPrompts: string[];
}

/** A stage the job reads: its folder in the store (its name is the stage's key) and what is read from its result. */
export interface StoreInput {
  dir: string;
}

export interface GatesJob extends SeedDataJob {
  kind: 'gates';
  classPrompt: string;
  instancePrompt: string;
  baseModel: string;
  vaeModel: string | null;
  /** The gate-classifier stage (its result's checkpoint scores the images). */
  instrument: StoreInput;
  /** The DreamBooth stages in the study's order (their results' model folders). */
  dreambooth: (StoreInput & { name: string })[];
}

export interface DriftJob extends SeedDataJob {
  kind: 'drift';
  classPrompt: string;
  probes: string[];
  baseModel: string;
  instrument: StoreInput;
  dreambooth: (StoreInput & { name: string })[];
}

export type StudyJob = ArmJob | SyntheticJob | GateClassifierJob | DreamBoothJob | GatesJob | DriftJob;
export type JobKind = StudyJob['kind'];

/** The key (= job id) and folder of a job's stage in `store`. */
export function locateJob(job: StudyJob, store: string): { key: string; dir: string } {
  const s = job.stage;
  return new StageRunner(store, () => {}).locate(s.name, s.seed, s.config, s.deps);
}

/** A short name for logs and errors. */
export function jobLabel(job: StudyJob): string {
  return `${job.stage.name}${job.stage.seed === null ? '' : ` [seed ${job.stage.seed}]`}`;
}

const keysOf = (deps: readonly StageResult<unknown>[]) => deps.map((d) => d.key);

/** The job of `runArm(runner, spec, seed, base, split, deps)`: the same stage name, config and key. */
export function armJob(spec: ArmSpec, seed: number, base: Partial<TrainConfig>, split: ProtocolSplit, deps: readonly StageResult<unknown>[], store: string, backend: BackendName): ArmJob {
  const config = armConfig(spec, seed, base, split);
  return { kind: 'arm', arm: spec.name, seed, config, stage: { name: `arm-${spec.name}`, seed, config, deps: keysOf(deps) }, store, backend };
}

/** The job of the study's `sample(name, model, prompt, dep)`: `P.synthetic.count` images of `prompt`. */
export function syntheticJob(P: StudyProfile, name: string, seed: number, model: string, prompt: string, dep: StageResult<unknown>, store: string, backend: BackendName): SyntheticJob {
  const setSeed = 1_000_000 * (seed + 1);
  const config = { count: P.synthetic.count, prompt, s: P.synthetic, setSeed };
  return { kind: 'synthetic', seed, profile: P, model, prompt, setSeed, stage: { name: `synthetic-${name}`, seed, config, deps: keysOf([dep]) }, store, backend };
}

/** The job of `trainGateClassifier(runner, seed, base, overrides, split, deps)` (scorer.ts). */
export function gateClassifierJob(seed: number, base: Partial<TrainConfig>, overrides: Partial<TrainConfig>, split: ProtocolSplit, deps: readonly StageResult<unknown>[], store: string, backend: BackendName): GateClassifierJob {
  const config = gateClassifierConfig(seed, base, overrides, split);
  return { kind: 'gate-classifier', seed, config, stage: { name: 'gate-classifier', seed, config, deps: keysOf(deps) }, store, backend };
}

/** What every seed-data job of one study run shares. */
export interface SeedContext {
  profile: StudyProfile;
  dataDir: string | null;
  seed: number;
  /** splitStage(split, store): its key enters every such stage's key. */
  splitDep: StageResult<unknown>;
  rare: string;
  store: string;
  backend: BackendName;
}

function seedBase(c: SeedContext): Omit<SeedDataJob, 'stage'> {
  return { seed: c.seed, profile: c.profile, dataDir: c.dataDir, splitKey: c.splitDep.key, rare: c.rare, store: c.store, backend: c.backend };
}

/** The DreamBooth stage's config as the study builds it (study.ts); `instances` are the sorted ids of the rare class in the training split. */
export function dreamboothConfig(P: StudyProfile, method: MethodName, instancePrompt: string, classPrompt: string | null, instances: string[]): unknown {
  return { db: P.dreambooth, method, instancePrompt, classPrompt, instances };
}

/** The job of the study's DreamBooth stage `variant` on one seed (deps: the split, the base model). */
export function dreamboothJob(
  c: SeedContext, o: { variant: string; baseModel: string; baseStage: StageResult<unknown>; instancePrompt: string; classPrompt: string | null; method: MethodName; validationPrompts: string[]; instances: string[] },
): DreamBoothJob {
  const config = dreamboothConfig(c.profile, o.method, o.instancePrompt, o.classPrompt, o.instances);
  return {
    kind: 'dreambooth', ...seedBase(c), variant: o.variant, baseModel: o.baseModel, instancePrompt: o.instancePrompt, classPrompt: o.classPrompt, method: o.method, validationPrompts: o.validationPrompts,
    stage: { name: o.variant, seed: c.seed, config, deps: keysOf([c.splitDep, o.baseStage]) },
  };
}

/** The stage folder of a job (before it ran): what a dependent job's payload names. */
function inputOf(job: StudyJob): StoreInput {
  return { dir: locateJob(job, job.store).dir };
}

/**
 * The job of the study's `gates` stage on one seed; `deps` in the study's order (base, the DreamBooth
 * stages, the gate classifier, the VAE if any), whose keys enter the stage's key.
 */
export function gatesJob(
  c: SeedContext,
  o: { classPrompt: string; instancePrompt: string; baseModel: string; vaeModel: string | null; instrument: GateClassifierJob; dreambooth: DreamBoothJob[]; deps: readonly StageResult<unknown>[] },
): GatesJob {
  const config = gatesStageConfig(c.profile);
  return {
    kind: 'gates', ...seedBase(c), classPrompt: o.classPrompt, instancePrompt: o.instancePrompt, baseModel: o.baseModel, vaeModel: o.vaeModel,
    instrument: inputOf(o.instrument), dreambooth: o.dreambooth.map((j) => ({ name: j.variant, ...inputOf(j) })),
    stage: { name: 'gates', seed: c.seed, config, deps: keysOf(o.deps) },
  };
}

/** The job of the study's `drift` stage on one seed; `deps`: base, the DreamBooth stages, the gate classifier. */
export function driftJob(
  c: SeedContext,
  o: { classPrompt: string; probes: string[]; baseModel: string; instrument: GateClassifierJob; dreambooth: DreamBoothJob[]; deps: readonly StageResult<unknown>[] },
): DriftJob {
  const config = { drift: c.profile.drift, probes: o.probes };
  return {
    kind: 'drift', ...seedBase(c), classPrompt: o.classPrompt, probes: o.probes, baseModel: o.baseModel,
    instrument: inputOf(o.instrument), dreambooth: o.dreambooth.map((j) => ({ name: j.variant, ...inputOf(j) })),
    stage: { name: 'drift', seed: c.seed, config, deps: keysOf(o.deps) },
  };
}

/** A placeholder StageResult for a stage known by its key only (a job's input that runs elsewhere). */
export function stageRef(key: string): StageResult<unknown> {
  return { key, dir: '', value: null, seconds: 0, cached: true };
}

/** Context a job runs in: where its stage lives, how to log, and a signal that asks it to stop. */
export interface JobContext {
  store: string;
  log: (msg: string) => void;
  signal?: AbortSignal;
}

type Runner<J extends StudyJob> = (job: J, ctx: JobContext) => Promise<StageResult<unknown>>;

/** The registry: job kind → how a worker computes it. Only data crosses the queue. */
export const JOB_KINDS: { [K in JobKind]: Runner<Extract<StudyJob, { kind: K }>> } = {
  arm: async (job, ctx) =>
    stageRunner(ctx).run(job.stage.name, job.seed, job.config, depsOf(job), (dir) => trainArm(job.arm, job.seed, job.config, dir, ctx.signal)),
  synthetic: async (job, ctx) =>
    stageRunner(ctx).run(job.stage.name, job.seed, job.stage.config, depsOf(job), async (dir) => ({
      dir: join(dir, 'images'),
      files: await sampleSet(job.profile, job.model, job.prompt, job.profile.synthetic.count, join(dir, 'images'), job.setSeed),
    })),
  'gate-classifier': async (job, ctx) =>
    stageRunner(ctx).run(job.stage.name, job.seed, job.config, depsOf(job), (dir) => trainGateClassifierIn(job.seed, job.config, dir, ctx.signal)),
  dreambooth: async (job, ctx) => {
    const { data, split } = await seedData(job);
    const rareTrain = itemsOf(split.train, job.rare);
    // the payload's config is what the key hashes: it must be what these fields and this data give
    sameConfig(job, dreamboothConfig(job.profile, job.method, job.instancePrompt, job.classPrompt, rareTrain.map((it) => it.id).sort()));
    const instanceImages = await imagesOf(data, rareTrain);
    return stageRunner(ctx).run(job.stage.name, job.seed, job.stage.config, depsOf(job), (dir) =>
      trainStudyDreamBooth(job.profile, dir, job.baseModel, { instanceImages, instancePrompt: job.instancePrompt, classPrompt: job.classPrompt, method: job.method, validationPrompts: job.validationPrompts }, job.seed, ctx.signal),
    );
  },
  gates: async (job, ctx) => {
    sameConfig(job, gatesStageConfig(job.profile));
    const { data, split } = await seedData(job);
    const dreambooth = job.dreambooth.map((d) => ({ name: d.name, model: modelOf(job, d, 'model') }));
    return withScorer(job, data.set.classNames, (scorer) =>
      stageRunner(ctx).run(job.stage.name, job.seed, job.stage.config, depsOf(job), (dir) =>
        studyGates({ profile: job.profile, data, split, seed: job.seed, rare: job.rare, classPrompt: job.classPrompt, instancePrompt: job.instancePrompt, scorer, vaeModel: job.vaeModel, baseModel: job.baseModel, dreambooth }, dir),
      ),
    );
  },
  drift: async (job, ctx) => {
    sameConfig(job, { drift: job.profile.drift, probes: job.probes });
    const { data } = await seedData(job);
    const dreambooth = job.dreambooth.map((d) => ({ name: d.name, model: modelOf(job, d, 'model') }));
    return withScorer(job, data.set.classNames, (scorer) =>
      stageRunner(ctx).run(job.stage.name, job.seed, job.stage.config, depsOf(job), (dir) =>
        studyDrift({ profile: job.profile, seed: job.seed, classNames: data.set.classNames, rare: job.rare, classPrompt: job.classPrompt, probes: job.probes, scorer, baseModel: job.baseModel, dreambooth }, dir),
      ),
    );
  },
};

/** Runs a job in this process (a worker's processor, or a test's reference run). */
export function runJob(job: StudyJob, ctx: JobContext): Promise<StageResult<unknown>> {
  // the registry's entries take their own kind; the switch narrows the union for the compiler
  switch (job.kind) {
    case 'arm': return JOB_KINDS.arm(job, ctx);
    case 'synthetic': return JOB_KINDS.synthetic(job, ctx);
    case 'gate-classifier': return JOB_KINDS['gate-classifier'](job, ctx);
    case 'dreambooth': return JOB_KINDS.dreambooth(job, ctx);
    case 'gates': return JOB_KINDS.gates(job, ctx);
    case 'drift': return JOB_KINDS.drift(job, ctx);
  }
}

// ---------------------------------------------------------------- rebuilding a job's inputs

/**
 * The study's data, read once per worker process for a given data dir and profile sizes (a worker
 * runs many jobs of one study; the procedural leaves render and deduplicate in seconds to minutes).
 */
let dataCache: { key: string; data: Promise<StudyData> } | null = null;

async function seedData(job: GatesJob | DriftJob | DreamBoothJob): Promise<{ data: StudyData; split: ProtocolSplit }> {
  const p = job.profile;
  const key = stableJson({ dataDir: job.dataDir, imageSize: p.imageSize, trainCounts: p.trainCounts, valPerClass: p.valPerClass, testPerClass: p.testPerClass });
  if (dataCache?.key !== key) dataCache = { key, data: loadStudyData(p, job.dataDir) };
  let data: StudyData;
  try {
    data = await dataCache.data;
  } catch (e) {
    dataCache = null;
    throw e;
  }
  const split = studySplit(p, data.set, job.seed);
  const got = hashOf(splitsJson([split]));
  if (got !== job.splitKey) throw new Error(`${jobLabel(job)}: the split rebuilt from ${job.dataDir ?? 'the procedural leaves'} hashes to ${got}, the study's to ${job.splitKey} (is the same data folder mounted at the same path here?)`);
  // DreamBooth reads the split directly, so its key is among the stage's inputs (gates and drift reach it through theirs)
  if (job.kind === 'dreambooth' && !job.stage.deps.includes(job.splitKey)) throw new Error(`${jobLabel(job)}: the split's key is not among the stage's inputs`);
  return { data, split };
}

function sameConfig(job: StudyJob, config: unknown): void {
  if (stableJson(config) !== stableJson(job.stage.config)) throw new Error(`${jobLabel(job)}: the payload's fields do not give its stage config (a study and a worker of different versions?)`);
}

/** A field of an input stage's result.json (the input must be done: the study enqueues a job after its inputs). */
function modelOf(job: StudyJob, input: StoreInput, field: 'model' | 'checkpoint'): string {
  const file = join(input.dir, 'result.json');
  if (!existsSync(file)) throw new Error(`${jobLabel(job)}: its input ${input.dir} has no result.json (not done yet, or the store is not shared)`);
  const { value } = JSON.parse(readFileSync(file, 'utf8')) as { value: Record<string, unknown> };
  const v = value[field];
  if (typeof v !== 'string') throw new Error(`${jobLabel(job)}: ${file} has no ${field}`);
  return v;
}

/** The seed's gate classifier as a scorer for `fn`, freed after. */
async function withScorer<T>(job: GatesJob | DriftJob, classNames: readonly string[], fn: (scorer: ImageScorer) => Promise<T>): Promise<T> {
  const loaded = await loadTrainedModel(modelOf(job, job.instrument, 'checkpoint'));
  try {
    return await fn(classifierScorer(loaded.model, { classNames, imageSize: job.profile.imageSize }));
  } finally {
    loaded.model.dispose?.();
  }
}

function stageRunner(ctx: JobContext): StageRunner {
  return new StageRunner(ctx.store, ctx.log);
}

/** The job's inputs as StageRunner deps: only their keys enter the stage's key. */
function depsOf(job: StudyJob): StageResult<unknown>[] {
  return job.stage.deps.map((key) => ({ key, dir: '', value: null, seconds: 0, cached: true }));
}

const KIND_FIELDS: { [K in JobKind]: Partial<Record<keyof Extract<StudyJob, { kind: K }>, 'string' | 'number' | 'object' | 'string|null' | 'object|null'>> } = {
  arm: { arm: 'string', seed: 'number', config: 'object' },
  synthetic: { seed: 'number', profile: 'object', model: 'string', prompt: 'string', setSeed: 'number' },
  'gate-classifier': { seed: 'number', config: 'object' },
  dreambooth: { seed: 'number', profile: 'object', dataDir: 'string|null', splitKey: 'string', rare: 'string', variant: 'string', baseModel: 'string', instancePrompt: 'string', classPrompt: 'string|null', method: 'string', validationPrompts: 'object' },
  gates: { seed: 'number', profile: 'object', dataDir: 'string|null', splitKey: 'string', rare: 'string', classPrompt: 'string', instancePrompt: 'string', baseModel: 'string', vaeModel: 'string|null', instrument: 'object', dreambooth: 'object' },
  drift: { seed: 'number', profile: 'object', dataDir: 'string|null', splitKey: 'string', rare: 'string', classPrompt: 'string', probes: 'object', baseModel: 'string', instrument: 'object', dreambooth: 'object' },
};

const isKind = (k: unknown): k is JobKind => typeof k === 'string' && Object.prototype.hasOwnProperty.call(JOB_KINDS, k);

/** Checks a payload received from the queue before running it: known kind, the fields its kind reads. */
export function parseJob(data: unknown): StudyJob {
  const o = data as Record<string, unknown> | null;
  if (!o || typeof o !== 'object') throw new Error('job payload is not an object');
  if (!isKind(o.kind)) throw new Error(`unknown job kind ${JSON.stringify(o.kind)} (known: ${Object.keys(JOB_KINDS).join(', ')})`);
  const s = o.stage as Partial<StageRef> | undefined;
  if (!s || typeof s !== 'object' || typeof s.name !== 'string' || !Array.isArray(s.deps)) throw new Error('job payload has no stage reference');
  if (typeof o.store !== 'string' || typeof o.backend !== 'string') throw new Error('job payload names no store or backend');
  for (const [field, type] of Object.entries(KIND_FIELDS[o.kind]) as [string, string][]) {
    const v = o[field];
    const ok = type.split('|').some((t) => (t === 'null' ? v === null : t === 'object' ? typeof v === 'object' && v !== null : typeof v === t));
    if (!ok) throw new Error(`${o.kind} job payload: ${field} should be ${type}, got ${v === null ? 'null' : typeof v}`);
  }
  for (const field of ['instrument', 'dreambooth'] as const) {
    const v = o[field];
    if (v === undefined) continue;
    for (const input of Array.isArray(v) ? v : [v]) {
      if (!input || typeof (input as StoreInput).dir !== 'string') throw new Error(`${o.kind} job payload: ${field} should name stage folders (dir)`);
    }
  }
  if (o.kind === 'dreambooth' && o.method !== 'full' && o.method !== 'lora') throw new Error(`dreambooth job payload: method should be full or lora, got ${JSON.stringify(o.method)}`);
  return o as unknown as StudyJob;
}
