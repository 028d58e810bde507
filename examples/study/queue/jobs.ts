/**
 * The study's jobs: stage units that any worker process can recompute from the job's payload alone
 * (plain JSON, no closures). A job's id is its stage's cache key (StageRunner.locate: a hash of the
 * stage's name, seed, configuration and inputs' keys), and its result is the stage folder under the
 * shared store, done when result.json is there — written atomically by StageRunner, so a partial
 * result is never visible and a finished job is never redone.
 *
 * Kinds so far: `arm` (one classifier training of one arm on one seed) and `synthetic` (one image
 * set sampled from a generator). An arm's job runs the same stage body as runArm (arms.ts: trainArm);
 * a synthetic set's mirrors the study's `sample` (study.ts); test/queue checks that the queued
 * results equal the in-process ones.
 */
import { join } from 'node:path';
import type { TrainConfig, ProtocolSplit } from '@foliar/classifier';
import type { BackendName } from '@foliar/tensor';
import { StageRunner, type StageResult } from '../stages.js';
import { armConfig, trainArm, type ArmSpec } from '../arms.js';
import { sampleSet } from '../generator.js';
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

export type StudyJob = ArmJob | SyntheticJob;
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
};

/** Runs a job in this process (a worker's processor, or a test's reference run). */
export function runJob(job: StudyJob, ctx: JobContext): Promise<StageResult<unknown>> {
  // the registry's entries take their own kind; the switch narrows the union for the compiler
  switch (job.kind) {
    case 'arm': return JOB_KINDS.arm(job, ctx);
    case 'synthetic': return JOB_KINDS.synthetic(job, ctx);
  }
}

function stageRunner(ctx: JobContext): StageRunner {
  return new StageRunner(ctx.store, ctx.log);
}

/** The job's inputs as StageRunner deps: only their keys enter the stage's key. */
function depsOf(job: StudyJob): StageResult<unknown>[] {
  return job.stage.deps.map((key) => ({ key, dir: '', value: null, seconds: 0, cached: true }));
}

/** Checks a payload received from the queue before running it: known kind, expected fields. */
export function parseJob(data: unknown): StudyJob {
  const o = data as Partial<StudyJob> | null;
  if (!o || typeof o !== 'object') throw new Error('job payload is not an object');
  if (o.kind !== 'arm' && o.kind !== 'synthetic') throw new Error(`unknown job kind ${JSON.stringify(o.kind)} (known: ${Object.keys(JOB_KINDS).join(', ')})`);
  const s = o.stage;
  if (!s || typeof s.name !== 'string' || !Array.isArray(s.deps)) throw new Error('job payload has no stage reference');
  if (typeof o.store !== 'string' || typeof o.backend !== 'string') throw new Error('job payload names no store or backend');
  return o as StudyJob;
}
