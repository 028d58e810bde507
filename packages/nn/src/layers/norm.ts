import { groupNorm, groupNormSilu, layerNorm, batchNorm, ones, zeros, full, noGrad, add, copy_, type Tensor, type Backend } from '@foliar/tensor';
import { Module } from '../module.js';

export interface NormOptions {
  eps?: number;
  affine?: boolean;
  backend?: Backend;
}

export class GroupNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly eps: number;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    opts: NormOptions = {},
  ) {
    super();
    if (numChannels % numGroups) throw new RangeError(`GroupNorm: ${numChannels} channels are not divisible into ${numGroups} groups`);
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    const o = opts.backend ? { backend: opts.backend } : {};
    this.weight = affine ? this.param('weight', ones([numChannels], o)) : this.param('weight', null);
    this.bias = affine ? this.param('bias', zeros([numChannels], o)) : this.param('bias', null);
  }
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
  /** silu(forward(x)) in one fused kernel each way (ResNet blocks: GN → SiLU). */
  forwardSilu(x: Tensor): Tensor {
    return groupNormSilu(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

export class LayerNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly normalizedShape: number[];
  readonly eps: number;
  constructor(normalizedShape: number | number[], opts: NormOptions & { bias?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    const o = opts.backend ? { backend: opts.backend } : {};
    this.weight = affine ? this.param('weight', ones(this.normalizedShape, o)) : this.param('weight', null);
    this.bias = affine && opts.bias !== false ? this.param('bias', zeros(this.normalizedShape, o)) : this.param('bias', null);
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/**
 * nn.BatchNorm2d: batch statistics in training mode (running stats updated in place with momentum and
 * the unbiased variance), running statistics in eval mode.
 */
export class BatchNorm2d extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor;
  runningVar: Tensor;
  numBatchesTracked: Tensor;
  readonly eps: number;
  readonly momentum: number;
  constructor(
    readonly numFeatures: number,
    opts: NormOptions & { momentum?: number } = {},
  ) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    const affine = opts.affine ?? true;
    const o = opts.backend ? { backend: opts.backend } : {};
    this.weight = affine ? this.param('weight', ones([numFeatures], o)) : this.param('weight', null);
    this.bias = affine ? this.param('bias', zeros([numFeatures], o)) : this.param('bias', null);
    this.runningMean = this.buffer('running_mean', zeros([numFeatures], o))!;
    this.runningVar = this.buffer('running_var', ones([numFeatures], o))!;
    // int64 in PyTorch; kept as a 0-d int32 here (loads from either)
    this.numBatchesTracked = this.buffer('num_batches_tracked', full([], 0, { ...o, dtype: 'int32' }))!;
  }
  forward(x: Tensor): Tensor {
    return this.run(x);
  }
  /** relu(forward(x)) in one fused kernel each way (ResNet: BN → ReLU). */
  forwardRelu(x: Tensor): Tensor {
    return this.run(x, 'relu');
  }
  private run(x: Tensor, activation?: 'relu'): Tensor {
    if (this.training) {
      noGrad(() => {
        const n = add(this.numBatchesTracked, 1);
        copy_(this.numBatchesTracked, n);
        n.dispose();
      });
    }
    return batchNorm(x, this.runningMean, this.runningVar, this.weight, this.bias, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
      ...(activation ? { activation } : {}),
    });
  }
}
