import type { Tensor } from '@foliar/tensor';
import { adamStep } from '@foliar/tensor';
import { Optimizer, type GroupOf } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  maximize: boolean;
}

/** torch.optim.Adam (weight decay as L2 on the gradient); one fused kernel per tensor. */
export class Adam extends Optimizer<AdamOptions> {
  protected readonly decoupled: boolean = false;
  constructor(params: Tensor[] | (Partial<AdamOptions> & { params: Tensor[] })[], opts: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, maximize: false, ...opts });
  }
  protected update(p: Tensor, grad: Tensor, g: GroupOf<AdamOptions>, st: { tensors: Record<string, Tensor>; scalars: Record<string, number> }): void {
    const step = (st.scalars.step = (st.scalars.step ?? 0) + 1);
    adamStep(p, grad, this.buf(st, 'exp_avg', p), this.buf(st, 'exp_avg_sq', p), {
      lr: g.lr,
      beta1: g.betas[0],
      beta2: g.betas[1],
      eps: g.eps,
      weightDecay: g.weightDecay,
      decoupled: this.decoupled,
      step,
      maximize: g.maximize,
    });
  }
}

/** torch.optim.AdamW: decoupled weight decay (default 0.01). */
export class AdamW extends Adam {
  protected override readonly decoupled = true;
  constructor(params: Tensor[] | (Partial<AdamOptions> & { params: Tensor[] })[], opts: Partial<AdamOptions> = {}) {
    super(params, { weightDecay: 1e-2, ...opts });
  }
}
