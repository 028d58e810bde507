import { join } from 'node:path';
import { SafetensorsFile } from '../../packages/tensor/src/io/safetensors.js';
import { tensor, type Backend, type Tensor } from '@foliar/tensor';
import type { GoldenCase } from './manifest.js';
import { compare, OPS_TOL, type Diff, type Tolerance } from './compare.js';

/** Thrown by a handler for a case it does not implement: reported as SKIP with the reason. */
export class Skip extends Error {}

export interface CheckResult {
  name: string;
  diff: Diff;
}

/** What a handler gets: the case, its tensors, and helpers that record comparisons. */
export class CaseContext {
  readonly checks: CheckResult[] = [];
  private file: SafetensorsFile | null = null;
  constructor(
    readonly dir: string,
    readonly c: GoldenCase,
    readonly backend: Backend,
  ) {}
  attr<T>(name: string, dflt?: T): T {
    const v = this.c.attrs?.[name];
    if (v === undefined) {
      if (dflt !== undefined) return dflt;
      throw new Error(`case ${this.c.group}/${this.c.name}: attribute '${name}' missing from the manifest`);
    }
    return v as T;
  }
  has(name: string): boolean {
    return name in this.c.tensors;
  }
  async open(): Promise<SafetensorsFile> {
    return (this.file ??= await SafetensorsFile.open(join(this.dir, this.c.file)));
  }
  /** Host data of a stored tensor (float32, or int32 for integer tensors). */
  async raw(name: string): Promise<{ shape: number[]; data: Float32Array | Int32Array }> {
    const f = await this.open();
    const e = f.entry(name);
    if (!e) throw new Error(`case ${this.c.group}/${this.c.name}: tensor '${name}' not in ${this.c.file}`);
    const isInt = /^(I|U)/.test(e.dtype);
    const r = await f.read(name, { as: isInt ? 'int32' : 'float32' });
    return { shape: [...e.shape], data: r.data as Float32Array | Int32Array };
  }
  /** A stored tensor on the backend under test. */
  async t(name: string, opts: { requiresGrad?: boolean } = {}): Promise<Tensor> {
    const { shape, data } = await this.raw(name);
    const t = tensor(data, { shape, backend: this.backend });
    if (opts.requiresGrad) t.requiresGrad_(true);
    return t;
  }
  /** Compares a computed tensor with a stored one. */
  async check(label: string, actual: Tensor | null | undefined, expectedName: string, tol: Tolerance = OPS_TOL): Promise<void> {
    const exp = await this.raw(expectedName);
    if (!actual) {
      this.checks.push({ name: label, diff: { maxAbs: Infinity, maxRel: Infinity, ok: false, worst: -1 } });
      return;
    }
    const shapeOk = actual.size === exp.data.length;
    const a = shapeOk ? await actual.dataF32() : new Float32Array(0);
    this.checks.push({ name: label, diff: compare(a, exp.data, tol) });
  }
  async checkArray(label: string, actual: ArrayLike<number>, expectedName: string, tol: Tolerance = OPS_TOL): Promise<void> {
    const exp = await this.raw(expectedName);
    this.checks.push({ name: label, diff: compare(actual, exp.data, tol) });
  }
  close(): void {
    this.file?.close();
  }
}

export type Handler = (ctx: CaseContext) => Promise<void>;
