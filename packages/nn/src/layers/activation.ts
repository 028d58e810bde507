import { dropout, type Tensor, type Generator } from '@foliar/tensor';
import { Module } from '../module.js';

export class ReLU extends Module {
  forward(x: Tensor): Tensor { return x.relu(); }
}
export class SiLU extends Module {
  forward(x: Tensor): Tensor { return x.silu(); }
}
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') { super(); }
  forward(x: Tensor): Tensor { return x.gelu(this.approximate); }
}
export class QuickGELU extends Module {
  forward(x: Tensor): Tensor { return x.quickGelu(); }
}
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor { return x.sigmoid(); }
}
export class Tanh extends Module {
  forward(x: Tensor): Tensor { return x.tanh(); }
}
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) { super(); }
  forward(x: Tensor): Tensor { return x.flatten(this.startDim, this.endDim); }
}

/** Inverted dropout, active in training mode only. */
export class Dropout extends Module {
  constructor(readonly p = 0.5, readonly generator?: Generator) { super(); }
  forward(x: Tensor): Tensor { return dropout(x, this.p, this.training, this.generator); }
}
