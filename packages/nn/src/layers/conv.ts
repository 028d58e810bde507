import { conv2d, convTranspose2d, type Tensor } from '@foliar/tensor';
import { Module } from '../module.js';
import { defaultWeight, uniform, type InitOptions } from '../init.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions extends InitOptions {
  stride?: Pair;
  /** Symmetric [ph, pw] or asymmetric [top, bottom, left, right]. */
  padding?: number | [number, number] | [number, number, number, number];
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

/** nn.Conv2d: weight [out, in/groups, kh, kw]. */
export class Conv2d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly kernelSize: [number, number];
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    readonly opts: Conv2dOptions = {},
  ) {
    super();
    const groups = opts.groups ?? 1;
    if (inChannels % groups || outChannels % groups) {
      throw new RangeError(`Conv2d: in (${inChannels}) and out (${outChannels}) channels must be divisible by groups (${groups})`);
    }
    this.kernelSize = pair(kernelSize);
    const shape = [outChannels, inChannels / groups, ...this.kernelSize];
    const fan = (inChannels / groups) * this.kernelSize[0] * this.kernelSize[1];
    this.weight = this.param('weight', defaultWeight(shape, opts, fan));
    this.bias = opts.bias === false ? this.param('bias', null) : this.param('bias', uniform([outChannels], 1 / Math.sqrt(fan), opts));
  }
  /** `residual` (the output's shape) is added in the convolution's store: forward(x) + residual in one kernel. */
  forward(x: Tensor, residual?: Tensor | null): Tensor {
    return conv2d(x, this.weight, this.bias, {
      stride: this.opts.stride ?? 1,
      padding: this.opts.padding ?? 0,
      dilation: this.opts.dilation ?? 1,
      groups: this.opts.groups ?? 1,
      addend: residual ?? null,
    });
  }
}

export interface ConvTranspose2dOptions extends InitOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

/** nn.ConvTranspose2d: weight [in, out/groups, kh, kw]. */
export class ConvTranspose2d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    readonly opts: ConvTranspose2dOptions = {},
  ) {
    super();
    const groups = opts.groups ?? 1;
    const k = pair(kernelSize);
    // PyTorch computes fan_in from weight.size(1) * kernel for transposed convs
    const fan = (outChannels / groups) * k[0] * k[1];
    this.weight = this.param('weight', defaultWeight([inChannels, outChannels / groups, ...k], opts, fan));
    this.bias = opts.bias === false ? this.param('bias', null) : this.param('bias', uniform([outChannels], 1 / Math.sqrt(fan), opts));
  }
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, this.bias, {
      stride: this.opts.stride ?? 1,
      padding: this.opts.padding ?? 0,
      outputPadding: this.opts.outputPadding ?? 0,
      dilation: this.opts.dilation ?? 1,
      groups: this.opts.groups ?? 1,
    });
  }
}
