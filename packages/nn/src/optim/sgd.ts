import type { Tensor } from '@foliar/tensor';
import { sgdStep } from '@foliar/tensor';
import { Optimizer, type GroupOf } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

/** torch.optim.SGD with momentum, dampening, nesterov and weight decay; fused per tensor. */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Tensor[] | (Partial<SGDOptions> & { params: Tensor[] })[], opts: Partial<SGDOptions> = {}) {
    super(params, { lr: 1e-2, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...opts });
    for (const g of this.paramGroups) {
      if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new Error('SGD: nesterov needs momentum > 0 and dampening 0');
    }
  }
  protected update(p: Tensor, grad: Tensor, g: GroupOf<SGDOptions>, st: { tensors: Record<string, Tensor>; scalars: Record<string, number> }): void {
    const step = (st.scalars.step = (st.scalars.step ?? 0) + 1);
    const buf = g.momentum > 0 ? this.buf(st, 'momentum_buffer', p) : null;
    sgdStep(p, grad, buf, { lr: g.lr, momentum: g.momentum, dampening: g.dampening, weightDecay: g.weightDecay, nesterov: g.nesterov, step });
  }
}
