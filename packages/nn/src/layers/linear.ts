import { linear, type Tensor } from '@foliar/tensor';
import { Module } from '../module.js';
import { defaultWeight, uniform, type InitOptions } from '../init.js';

export interface LinearOptions extends InitOptions {
  bias?: boolean;
}

/**
 * An additive side path on a Linear (LoRA and similar adapters): y = xWᵀ + b + delta(x). It is kept
 * outside the module tree, so the Linear's state-dict keys stay those of the base model.
 */
export interface LinearDelta {
  forward(x: Tensor): Tensor;
}

/** y = x Wᵀ + b, weight [out, in] as in PyTorch. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  /** Adapters added to the output (see LinearDelta). */
  deltas: LinearDelta[] = [];
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    this.weight = this.param('weight', defaultWeight([outFeatures, inFeatures], opts));
    this.bias = opts.bias === false ? this.param('bias', null) : this.param('bias', uniform([outFeatures], 1 / Math.sqrt(inFeatures), opts));
  }
  /**
   * x @ weightᵀ + bias (+ the adapters' outputs), plus `residual` when given: without adapters it is
   * added in the product's store (no separate add kernel), with them after them, as `y.add(residual)`.
   */
  forward(x: Tensor, residual?: Tensor | null): Tensor {
    if (this.deltas.length === 0) return linear(x, this.weight, this.bias, residual ?? null);
    const out = this.withDeltas(x);
    if (!residual) return out;
    const r = out.add(residual);
    out.dispose();
    return r;
  }
  private withDeltas(x: Tensor): Tensor {
    const y = linear(x, this.weight, this.bias);
    let out = y;
    for (const d of this.deltas) {
      const dy = d.forward(x);
      const next = out.add(dy);
      dy.dispose();
      out.dispose();
      out = next;
    }
    return out;
  }
}

/** Identity placeholder (keeps key layouts of models that swap layers out). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

