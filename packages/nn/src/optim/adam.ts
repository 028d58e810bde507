import type { Tensor } from '@foliar/tensor';
import { adamSteps, noGrad, type AdamStepItem } from '@foliar/tensor';
import { Optimizer, type GroupOf } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  maximize: boolean;
}

type State = { tensors: Record<string, Tensor>; scalars: Record<string, number> };

/**
 * torch.optim.Adam (weight decay as L2 on the gradient). A step is one multi-tensor update per
 * parameter group and backend (`adamSteps`), not one kernel per tensor; the parameters, exp_avg and
 * exp_avg_sq live in one arena (Optimizer.pack), so a dispatch updates ~15 parameters on lavapipe.
 */
export class Adam extends Optimizer<AdamOptions> {
  protected readonly decoupled: boolean = false;
  constructor(params: Tensor[] | (Partial<AdamOptions> & { params: Tensor[] })[], opts: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, maximize: false, ...opts });
    this.pack(['exp_avg', 'exp_avg_sq']);
  }

  override step(): void {
    noGrad(() => {
      for (const g of this.paramGroups) {
        const items = new Map<unknown, AdamStepItem[]>();
        for (const p of g.params) {
          if (!p.grad) continue;
          const it = this.item(p, p.grad, this.stateFor(p));
          const list = items.get(p.backend);
          if (list) list.push(it);
          else items.set(p.backend, [it]);
        }
        for (const list of items.values()) adamSteps(list, this.options(g));
      }
    });
  }

  protected update(p: Tensor, grad: Tensor, g: GroupOf<AdamOptions>, st: State): void {
    adamSteps([this.item(p, grad, st)], this.options(g));
  }

  /** Counts the step (torch's state['step']) and creates the moments on first use. */
  private item(p: Tensor, grad: Tensor, st: State): AdamStepItem {
    const step = (st.scalars.step = (st.scalars.step ?? 0) + 1);
    return { param: p, grad, expAvg: this.buf(st, 'exp_avg', p), expAvgSq: this.buf(st, 'exp_avg_sq', p), step };
  }

  private options(g: GroupOf<AdamOptions>) {
    return { lr: g.lr, beta1: g.betas[0], beta2: g.betas[1], eps: g.eps, weightDecay: g.weightDecay, decoupled: this.decoupled, maximize: g.maximize };
  }
}

/** torch.optim.AdamW: decoupled weight decay (default 0.01). */
export class AdamW extends Adam {
  protected override readonly decoupled = true;
  constructor(params: Tensor[] | (Partial<AdamOptions> & { params: Tensor[] })[], opts: Partial<AdamOptions> = {}) {
    super(params, { weightDecay: 1e-2, ...opts });
  }
}
