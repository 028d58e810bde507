import type { Tensor } from '@foliar/tensor';
import { sgdSteps, noGrad, type SgdStepItem } from '@foliar/tensor';
import { Optimizer, type GroupOf } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

type State = { tensors: Record<string, Tensor>; scalars: Record<string, number> };

/**
 * torch.optim.SGD with momentum, dampening, nesterov and weight decay: one multi-tensor update per
 * parameter group and backend (`sgdSteps`), the parameters and momentum buffers in one arena.
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Tensor[] | (Partial<SGDOptions> & { params: Tensor[] })[], opts: Partial<SGDOptions> = {}) {
    super(params, { lr: 1e-2, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...opts });
    for (const g of this.paramGroups) {
      if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new Error('SGD: nesterov needs momentum > 0 and dampening 0');
    }
    this.pack(this.paramGroups.some((g) => g.momentum > 0) ? ['momentum_buffer'] : []);
  }

  override step(): void {
    noGrad(() => {
      for (const g of this.paramGroups) {
        const items = new Map<unknown, SgdStepItem[]>();
        for (const p of g.params) {
          if (!p.grad) continue;
          const it = this.item(p, p.grad, g, this.stateFor(p));
          const list = items.get(p.backend);
          if (list) list.push(it);
          else items.set(p.backend, [it]);
        }
        for (const list of items.values()) sgdSteps(list, this.options(g));
      }
    });
  }

  protected update(p: Tensor, grad: Tensor, g: GroupOf<SGDOptions>, st: State): void {
    sgdSteps([this.item(p, grad, g, st)], this.options(g));
  }

  private item(p: Tensor, grad: Tensor, g: GroupOf<SGDOptions>, st: State): SgdStepItem {
    const step = (st.scalars.step = (st.scalars.step ?? 0) + 1);
    return { param: p, grad, momentumBuf: g.momentum > 0 ? this.buf(st, 'momentum_buffer', p) : null, step };
  }

  private options(g: GroupOf<SGDOptions>) {
    return { lr: g.lr, momentum: g.momentum, dampening: g.dampening, weightDecay: g.weightDecay, nesterov: g.nesterov };
  }
}
