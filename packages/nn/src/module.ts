import { Tensor, noGrad, copy_, fmtShape, shapesEqual, keep, type Backend, type DType } from '@foliar/tensor';

export class StateDictError extends Error {
  override name = 'StateDictError';
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: { key: string; expected: number[]; got: number[] }[],
    context = '',
  ) {
    const parts: string[] = [];
    const list = (xs: string[]) => xs.slice(0, 20).join(', ') + (xs.length > 20 ? `, … (${xs.length} in all)` : '');
    if (missing.length) parts.push(`missing keys: ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected keys: ${list(unexpected)}`);
    if (mismatched.length) parts.push(`shape mismatches: ${mismatched.slice(0, 20).map((m) => `${m.key} expects ${fmtShape(m.expected)}, got ${fmtShape(m.got)}`).join('; ')}`);
    super(`loadStateDict${context ? ` (${context})` : ''}: ${parts.join('; ')}`);
  }
}

export interface LoadResult {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
}

/** A state-dict entry: a tensor, or host data with its shape (e.g. straight from a safetensors file). */
export type StateValue = Tensor | { shape: readonly number[]; data: Float32Array | Int32Array };
export type StateDict = Map<string, Tensor>;

let parameterDtype: DType | null = null;

/**
 * Builds modules whose parameters are converted to `dtype` as each is registered (issue 16): a
 * float16 model built this way never holds its float32 initialisation all at once (one tensor at a
 * time), which is what loading a multi-gigabyte checkpoint as f16 needs. Nested calls restore the
 * previous setting. 'float32' is the default behaviour.
 */
export function withParameterDtype<T>(dtype: 'float16' | 'float32', build: () => T): T {
  const prev = parameterDtype;
  parameterDtype = dtype;
  try {
    return build();
  } finally {
    parameterDtype = prev;
  }
}

/** t in the dtype of withParameterDtype (t itself when none is active or t is not float32). */
function asParameterDtype(t: Tensor): Tensor {
  if (parameterDtype !== 'float16' || t.dtype !== 'float32') return t;
  const h = keep(noGrad(() => t.to('float16')));
  h.name = t.name;
  t.dispose();
  return h;
}

/**
 * Base class of every layer and model, in the image of torch.nn.Module: named parameters, buffers
 * and submodules in registration order, so state-dict keys match PyTorch's (`layer1.0.conv1.weight`).
 */
export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Tensor | null>();
  private readonly _buffers = new Map<string, { t: Tensor | null; persistent: boolean }>();
  private readonly _modules = new Map<string, Module | null>();

  /** Registers a parameter (made a leaf requiring grad) and returns it. */
  protected param(name: string, t: Tensor): Tensor;
  protected param(name: string, t: null): null;
  protected param(name: string, t0: Tensor | null): Tensor | null {
    const t = t0 ? asParameterDtype(t0) : null;
    if (t) {
      t.requiresGrad_(true);
      t.name ??= name;
    }
    this._params.set(name, t);
    return t;
  }
  /** Registers a buffer (state that is not trained, like BatchNorm running stats). */
  protected buffer(name: string, t: Tensor | null, persistent = true): Tensor | null {
    this._buffers.set(name, { t, persistent });
    return t;
  }
  /** Registers a submodule under `name` (its keys are prefixed with `name.`). */
  protected module<M extends Module | null>(name: string, m: M): M {
    this._modules.set(name, m);
    return m;
  }
  registerParameter(name: string, t0: Tensor | null): void {
    const t = t0 ? asParameterDtype(t0) : null;
    this._params.set(name, t);
    if (t) t.requiresGrad_(true);
  }
  registerBuffer(name: string, t: Tensor | null, persistent = true): void {
    this._buffers.set(name, { t, persistent });
  }
  registerModule(name: string, m: Module | null): void {
    this._modules.set(name, m);
  }

  *namedChildren(): Generator<[string, Module]> {
    for (const [k, m] of this._modules) if (m) yield [k, m];
  }
  children(): Module[] {
    return [...this.namedChildren()].map(([, m]) => m);
  }
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [k, m] of this.namedChildren()) yield* m.namedModules(prefix ? `${prefix}.${k}` : k);
  }
  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [k, t] of m._params) {
        if (!t || seen.has(t)) continue;
        seen.add(t);
        yield [mp ? `${mp}.${k}` : k, t];
      }
    }
  }
  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }
  *namedBuffers(prefix = '', persistentOnly = false): Generator<[string, Tensor]> {
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [k, b] of m._buffers) {
        if (!b.t || (persistentOnly && !b.persistent)) continue;
        yield [mp ? `${mp}.${k}` : k, b.t];
      }
    }
  }
  /** Number of parameters (elements). */
  numParameters(trainableOnly = false): number {
    return this.parameters().reduce((a, p) => a + (trainableOnly && !p.requiresGrad ? 0 : p.size), 0);
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  /** Turns gradient tracking of every parameter on or off (freezing). */
  requiresGrad_(on = true): this {
    for (const p of this.parameters()) p.requiresGrad = on;
    return this;
  }
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
  /** Calls fn on every module, children first (like torch's apply). */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  /** Parameters then persistent buffers of each module, depth first: PyTorch's key order. */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [mp, m] of this.namedModules()) {
      for (const [k, t] of m._params) if (t) out.set(mp ? `${mp}.${k}` : k, t);
      for (const [k, b] of m._buffers) if (b.t && b.persistent) out.set(mp ? `${mp}.${k}` : k, b.t);
    }
    return out;
  }

  /**
   * Copies values into this module's tensors in place (identities are kept, so optimizers and views stay
   * valid). Strict by default: missing, unexpected and mis-shaped keys are all reported in one error.
   */
  loadStateDict(sd: Map<string, StateValue> | Record<string, StateValue>, opts: { strict?: boolean; context?: string } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const entries = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const missing: string[] = [];
    const mismatched: LoadResult['mismatched'] = [];
    for (const [k, t] of own) {
      const v = entries.get(k);
      if (!v) {
        missing.push(k);
        continue;
      }
      const shape = [...v.shape];
      // a 0-d tensor and a 1-element one are interchangeable (num_batches_tracked and friends)
      if (!shapesEqual(shape, t.shape) && !(t.size === 1 && shape.reduce((a, b) => a * b, 1) === 1)) {
        mismatched.push({ key: k, expected: [...t.shape], got: shape });
      }
    }
    const unexpected = [...entries.keys()].filter((k) => !own.has(k));
    if (strict && (missing.length || unexpected.length || mismatched.length)) {
      throw new StateDictError(missing, unexpected, mismatched, opts.context);
    }
    if (mismatched.length) throw new StateDictError([], [], mismatched, opts.context);
    noGrad(() => {
      for (const [k, t] of own) {
        const v = entries.get(k);
        if (!v) continue;
        if (v instanceof Tensor) {
          const src = v.backend === t.backend ? v : null;
          // float32 ↔ float16 converts inside the copy (the f16 boundary of the backends)
          const isF = (d: string): boolean => d === 'float32' || d === 'float16';
          if (src) copy_(t, src.dtype === t.dtype || (isF(src.dtype) && isF(t.dtype)) ? src : src.dtype === 'int32' ? src.toFloat() : src.toInt());
          else setHost(t, v);
        } else setHostData(t, v.data);
      }
    });
    return { missing, unexpected, mismatched };
  }

  /** Releases every parameter and buffer. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const t of m._params.values()) t?.dispose();
      for (const b of m._buffers.values()) b.t?.dispose();
    }
  }

  /**
   * `to(backend)`: moves every parameter and buffer to another backend (reloads the data).
   * `to({ dtype })`: converts every floating parameter to 'float16' or 'float32' in place of the old
   * tensor (same name and requiresGrad; the old storage is released), synchronously. Buffers (BatchNorm
   * running statistics, which kernels update in place) stay float32. A float16 model runs with its
   * weights read as f16 by matmul / conv / norm and activations in f32 (issue 16); it can be frozen
   * and trained through f32 adapters, but optimizers refuse f16 parameters (no master copy).
   */
  to(opts: { dtype: DType }): this;
  to(backend: Backend): Promise<this>;
  to(target: Backend | { dtype: DType }): this | Promise<this> {
    if ('dtype' in target && !('name' in target)) return this.castParameters(target.dtype);
    return this.moveTo(target as Backend);
  }
  /** to({ dtype: 'float16' }). */
  half(): this {
    return this.castParameters('float16');
  }
  /** to({ dtype: 'float32' }). */
  float(): this {
    return this.castParameters('float32');
  }

  private castParameters(dtype: DType): this {
    if (dtype !== 'float16' && dtype !== 'float32') throw new TypeError(`Module.to: dtype must be 'float16' or 'float32', got ${dtype}`);
    const done = new Map<Tensor, Tensor>();
    for (const [, m] of this.namedModules()) {
      for (const [k, t] of m._params) {
        if (!t || (t.dtype !== 'float16' && t.dtype !== 'float32')) continue;
        let c = done.get(t);
        if (!c) {
          if (t.dtype === dtype) continue;
          c = keep(noGrad(() => t.to(dtype)));
          c.requiresGrad_(t.requiresGrad);
          c.name = t.name;
          done.set(t, c);
        }
        m._params.set(k, c);
        // cast: the field named k is declared by the subclass, which Module cannot name
        (m as unknown as Record<string, unknown>)[k] = c;
      }
    }
    // a tensor shared by several modules (tied weights) is converted once, released once
    for (const t of done.keys()) t.dispose();
    return this;
  }

  private async moveTo(backend: Backend): Promise<this> {
    for (const [, m] of this.namedModules()) {
      for (const [k, t] of m._params) {
        if (!t || t.backend === backend) continue;
        const moved = await t.to(backend);
        moved.requiresGrad_(t.requiresGrad);
        moved.name = t.name;
        t.dispose();
        m._params.set(k, moved);
        // cast: the field named k is declared by the subclass, which Module cannot name
        (m as unknown as Record<string, unknown>)[k] = moved;
      }
      for (const [k, b] of m._buffers) {
        if (!b.t || b.t.backend === backend) continue;
        const moved = await b.t.to(backend);
        b.t.dispose();
        b.t = moved;
        // cast: the field named k is declared by the subclass, which Module cannot name
        (m as unknown as Record<string, unknown>)[k] = moved;
      }
    }
    return this;
  }

  /** A one-line-per-module summary with parameter counts. */
  toString(): string {
    const lines: string[] = [];
    for (const [name, m] of this.namedModules()) {
      const own = [...m._params.values()].reduce((a, t) => a + (t?.size ?? 0), 0);
      const depth = name ? name.split('.').length : 0;
      lines.push(`${'  '.repeat(depth)}${name || '(root)'}: ${m.constructor.name}${own ? ` (${own} params)` : ''}`);
    }
    return lines.join('\n');
  }
}

function setHost(t: Tensor, v: Tensor): void {
  // different backends: read through the host
  void v;
  throw new Error(`loadStateDict: tensor for '${t.name ?? ''}' lives on ${v.backend.name}; pass host data or a tensor on ${t.backend.name}`);
}

function setHostData(t: Tensor, data: Float32Array | Int32Array): void {
  const src = new Tensor(t.backend.upload(t.dtype === 'int32' ? Int32Array.from(data) : data instanceof Float32Array ? data : Float32Array.from(data)), t.shape);
  copy_(t, src);
  src.dispose();
}
