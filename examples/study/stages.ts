/**
 * Stages of the study, each cached under the run directory by a hash of its configuration and of
 * the results it depends on: re-running the same command reuses every finished stage, and changing
 * one setting reruns only the stages downstream of it. A stage's folder is
 * `<runDir>/<name>/<hash>/`; it is done when `result.json` exists there (written atomically last),
 * so a stage that stopped half-way runs again in the same folder, where its own trainer resumes
 * from its checkpoints.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@foliar/tensor';
import type { StageTiming } from './report-types.js';

/** A finished stage: its cache key, folder and JSON result. */
export interface StageResult<T> {
  key: string;
  dir: string;
  value: T;
  seconds: number;
  cached: boolean;
}

/** Stable JSON (sorted keys) so the same configuration always hashes the same. */
export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
}

export function hashOf(v: unknown): string {
  return createHash('sha256').update(stableJson(v)).digest('hex').slice(0, 12);
}

export class StageRunner {
  readonly timings: StageTiming[] = [];
  private readonly logFile: string;

  /**
   * Set where stages run elsewhere (a job queue): returns a promise that settles once the stage's
   * result.json is written (or its job failed), or undefined to run the stage here.
   */
  offload?: (stage: { name: string; seed: number | null; key: string; dir: string }) => Promise<void> | undefined;

  constructor(readonly runDir: string, private readonly log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`)) {
    mkdirSync(runDir, { recursive: true });
    this.logFile = join(runDir, 'stages.jsonl');
  }

  /**
   * Runs `fn` in the stage's folder unless an earlier run finished it with the same configuration
   * and inputs. `deps` are the results this stage reads (their keys enter the hash).
   */
  async run<T>(name: string, seed: number | null, config: unknown, deps: readonly StageResult<unknown>[], fn: (dir: string) => Promise<T>): Promise<StageResult<T>> {
    const { key, dir } = this.locate(name, seed, config, deps.map((d) => d.key));
    const file = join(dir, 'result.json');
    // a stage sent to a job queue (examples/study/queue): a worker writes result.json in this folder
    const remote = this.offload?.({ name, seed, key, dir });
    if (remote) await remote;
    if (existsSync(file)) {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { value: T; seconds: number };
      const cached = !remote;
      this.timings.push({ stage: name, seed, seconds: saved.seconds, cached });
      this.log(`  ${label(name, seed)}: ${cached ? 'cached' : 'done by a worker'} (${dir})`);
      return { key, dir, value: saved.value, seconds: saved.seconds, cached };
    }
    if (remote) throw new Error(`${label(name, seed)}: the queue reported the job done but ${file} is missing`);
    mkdirSync(dir, { recursive: true });
    await writeFileAtomic(join(dir, 'config.json'), JSON.stringify({ name, seed, config, deps: deps.map((d) => d.key) }, null, 2) + '\n');
    this.log(`\n== ${label(name, seed)} (${dir})`);
    const t0 = performance.now();
    const value = await fn(dir);
    const seconds = (performance.now() - t0) / 1000;
    await writeFileAtomic(file, JSON.stringify({ value, seconds }, null, 2) + '\n');
    this.timings.push({ stage: name, seed, seconds, cached: false });
    appendFileSync(this.logFile, JSON.stringify({ time: new Date().toISOString(), stage: name, seed, key, seconds }) + '\n');
    this.log(`   ${label(name, seed)} done in ${seconds.toFixed(1)} s`);
    return { key, dir, value, seconds, cached: false };
  }

  /** A stage's cache key and folder (the key is also its job id on a queue). */
  locate(name: string, seed: number | null, config: unknown, depKeys: readonly string[]): { key: string; dir: string } {
    const key = hashOf({ name, seed, config, deps: depKeys });
    return { key, dir: join(this.runDir, seed === null ? name : join(`seed-${seed}`, name), key) };
  }
}

function label(name: string, seed: number | null): string {
  return seed === null ? name : `${name} [seed ${seed}]`;
}
