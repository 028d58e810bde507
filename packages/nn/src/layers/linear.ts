import { linear, type Tensor } from '@foliar/tensor';
import { Module } from '../module.js';
import { defaultWeight, uniform, type InitOptions } from '../init.js';

export interface LinearOptions extends InitOptions {
  bias?: boolean;
}

/** y = x Wᵀ + b, weight [out, in] as in PyTorch. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    this.weight = this.param('weight', defaultWeight([outFeatures, inFeatures], opts));
    this.bias = opts.bias === false ? this.param('bias', null) : this.param('bias', uniform([outFeatures], 1 / Math.sqrt(inFeatures), opts));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** Identity placeholder (keeps key layouts of models that swap layers out). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

