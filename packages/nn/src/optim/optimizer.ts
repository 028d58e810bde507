import { Tensor, noGrad, copy_, zerosLike, keep, packParameters, type ParamArena } from '@foliar/tensor';

export type GroupOf<O> = O & { params: Tensor[] };

/** Serializable optimizer state: per-parameter tensors by parameter index, plus scalars and groups. */
export interface OptimizerState {
  /** `${paramIndex}.${name}` -> tensor (e.g. `3.exp_avg`). */
  tensors: Map<string, Tensor>;
  /** Per-parameter scalars (e.g. step counts) and the parameter groups' hyper-parameters. */
  meta: { scalars: Record<string, Record<string, number>>; groups: Record<string, unknown>[] };
}

/**
 * Base optimizer, torch.optim-like: parameter groups with their own hyper-parameters, per-parameter
 * state created lazily, state save/load keyed by parameter order.
 */
export abstract class Optimizer<O extends { lr: number }> {
  readonly paramGroups: GroupOf<O>[];
  protected readonly state = new Map<Tensor, { tensors: Record<string, Tensor>; scalars: Record<string, number> }>();
  /**
   * Whether new optimizers move their parameters and state into flat arenas (ParamArena in
   * @foliar/tensor: one buffer binding for all of them, so a step is a few dispatches). Parameters
   * keep their identity; set false before construction to leave every parameter in its own storage.
   */
  static packParameters = true;
  /** The parameters and state slots packed at construction (null when packing is off). */
  protected arena: ParamArena | null = null;

  constructor(params: Tensor[] | (Partial<O> & { params: Tensor[] })[], defaults: O) {
    const groups = params.length && !(params[0] instanceof Tensor) ? (params as (Partial<O> & { params: Tensor[] })[]) : [{ params: params as Tensor[] }];
    this.paramGroups = groups.map((g) => ({ ...defaults, ...g, params: [...g.params] }) as GroupOf<O>);
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups)
      for (const p of g.params) {
        if (seen.has(p)) throw new Error('optimizer: a parameter appears in more than one group');
        // no f32 master copy is kept: updating f16 storage in place would round every step away (issue 16)
        if (p.dtype === 'float16') {
          throw new TypeError(
            `optimizer: parameter ${p.name ? `'${p.name}' ` : ''}is float16; optimizers update float32 parameters only. ` +
              `Train in float32 (module.to({ dtype: 'float32' })), or freeze the float16 weights and train float32 adapters (LoRA).`,
          );
        }
        seen.add(p);
      }
  }

  /** Sets every gradient to null (frees it), like zero_grad(set_to_none=True). */
  zeroGrad(): void {
    for (const g of this.paramGroups)
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    noGrad(() => {
      for (const g of this.paramGroups)
        for (const p of g.params) {
          if (!p.grad) continue;
          this.update(p, p.grad, g, this.stateFor(p));
        }
    });
  }

  protected abstract update(p: Tensor, grad: Tensor, group: GroupOf<O>, st: { tensors: Record<string, Tensor>; scalars: Record<string, number> }): void;

  protected stateFor(p: Tensor): { tensors: Record<string, Tensor>; scalars: Record<string, number> } {
    let s = this.state.get(p);
    if (!s) this.state.set(p, (s = { tensors: {}, scalars: {} }));
    return s;
  }

  /** Packs the parameters with these per-parameter state slots (subclass constructors, once). */
  protected pack(slots: string[]): void {
    // read through the class, so that a subclass may set its own default (SGD.packParameters = false)
    if (!(this.constructor as typeof Optimizer).packParameters || this.arena) return;
    noGrad(() => {
      this.arena = packParameters(this.allParams(), slots);
    });
  }

  /** A zero tensor shaped like p, created once per state name (in the arena when p is packed). */
  protected buf(st: { tensors: Record<string, Tensor> }, name: string, p: Tensor): Tensor {
    return (st.tensors[name] ??= this.arena?.state(p, name) ?? keep(zerosLike(p)));
  }

  get lr(): number {
    return this.paramGroups[0]!.lr;
  }
  set lr(v: number) {
    for (const g of this.paramGroups) g.lr = v;
  }

  protected allParams(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  stateDict(): OptimizerState {
    const tensors = new Map<string, Tensor>();
    const scalars: Record<string, Record<string, number>> = {};
    this.allParams().forEach((p, i) => {
      const s = this.state.get(p);
      if (!s) return;
      for (const [k, t] of Object.entries(s.tensors)) tensors.set(`${i}.${k}`, t);
      scalars[i] = { ...s.scalars };
    });
    const groups = this.paramGroups.map(({ params, ...rest }) => ({ ...rest, numParams: params.length }));
    return { tensors, meta: { scalars, groups } };
  }

  loadStateDict(sd: OptimizerState): void {
    const params = this.allParams();
    if (sd.meta.groups.length !== this.paramGroups.length) {
      throw new Error(`optimizer state has ${sd.meta.groups.length} parameter groups, this optimizer ${this.paramGroups.length}`);
    }
    sd.meta.groups.forEach((g, i) => {
      const { numParams, ...hyper } = g as { numParams: number };
      if (numParams !== this.paramGroups[i]!.params.length) throw new Error(`optimizer group ${i}: state has ${numParams} parameters, optimizer ${this.paramGroups[i]!.params.length}`);
      Object.assign(this.paramGroups[i]!, hyper);
    });
    noGrad(() => {
      for (const [key, t] of sd.tensors) {
        const [idx, name] = [Number(key.slice(0, key.indexOf('.'))), key.slice(key.indexOf('.') + 1)];
        const p = params[idx];
        if (!p) throw new Error(`optimizer state key '${key}' names parameter ${idx}, but there are ${params.length}`);
        const st = this.stateFor(p);
        const dst = this.buf(st, name, p);
        if (dst.size !== t.size) throw new Error(`optimizer state '${key}' has ${t.size} values, parameter ${idx} has ${dst.size}`);
        copy_(dst, t.reshape([...dst.shape]));
      }
      for (const [idx, sc] of Object.entries(sd.meta.scalars)) {
        const p = params[Number(idx)];
        if (p) Object.assign(this.stateFor(p).scalars, sc);
      }
    });
  }

  /** Frees the optimizer state tensors. */
  dispose(): void {
    for (const s of this.state.values()) for (const t of Object.values(s.tensors)) t.dispose();
    this.state.clear();
    this.arena?.dispose();
    this.arena = null;
  }
}
