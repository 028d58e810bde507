import { maxPool2d, avgPool2d, adaptiveAvgPool2d, interpolate, type Tensor } from '@foliar/tensor';
import { Module } from '../module.js';

type Pair = number | [number, number];

export class MaxPool2d extends Module {
  constructor(readonly opts: { kernelSize: Pair; stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean }) {
    super();
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.opts);
  }
}

export class AvgPool2d extends Module {
  constructor(readonly opts: { kernelSize: Pair; stride?: Pair; padding?: Pair; countIncludePad?: boolean; ceilMode?: boolean }) {
    super();
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.opts);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
}

export class Upsample extends Module {
  constructor(readonly opts: { scaleFactor?: number; size?: [number, number]; mode?: 'nearest' }) {
    super();
  }
  forward(x: Tensor): Tensor {
    return interpolate(x, { mode: 'nearest', ...this.opts });
  }
}
