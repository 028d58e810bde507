import * as ft from '@foliar/tensor';
import { tidy, copy_, type Tensor } from '@foliar/tensor';

export interface AdamStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** AdamW's decoupled weight decay instead of Adam's L2 term. */
  decoupled: boolean;
  /** 1-based step count (bias correction). */
  step: number;
  maximize?: boolean;
}

export interface SgdStepOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  step: number;
}

type FusedAdam = (p: Tensor, g: Tensor, m: Tensor, v: Tensor, o: AdamStepOptions) => void;
type FusedSgd = (p: Tensor, g: Tensor, buf: Tensor | null, o: SgdStepOptions) => void;

/**
 * One Adam/AdamW update in place, torch.optim's arithmetic. Uses the fused one-dispatch kernel of
 * @foliar/tensor (`adamStep`) when the backend has it, else composes elementwise ops.
 */
export function adamUpdate(p: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamStepOptions): void {
  const fused = (ft as unknown as { adamStep?: FusedAdam }).adamStep;
  if (fused) return fused(p, grad, m, v, o);
  tidy(() => {
    let g = o.maximize ? grad.neg() : grad;
    if (o.weightDecay && !o.decoupled) g = g.add(p.mul(o.weightDecay));
    if (o.weightDecay && o.decoupled) copy_(p, p.mul(1 - o.lr * o.weightDecay));
    copy_(m, m.mul(o.beta1).add(g.mul(1 - o.beta1)));
    copy_(v, v.mul(o.beta2).add(g.square().mul(1 - o.beta2)));
    const bc1 = 1 - o.beta1 ** o.step;
    const bc2 = 1 - o.beta2 ** o.step;
    const denom = v.sqrt().mul(1 / Math.sqrt(bc2)).add(o.eps);
    copy_(p, p.sub(m.div(denom).mul(o.lr / bc1)));
  });
}

/** One SGD update in place (torch.optim.SGD: momentum, dampening, nesterov, weight decay). */
export function sgdUpdate(p: Tensor, grad: Tensor, buf: Tensor | null, o: SgdStepOptions): void {
  const fused = (ft as unknown as { sgdStep?: FusedSgd }).sgdStep;
  if (fused) return fused(p, grad, buf, o);
  tidy(() => {
    let d = o.weightDecay ? grad.add(p.mul(o.weightDecay)) : grad;
    if (o.momentum && buf) {
      if (o.step === 1) copy_(buf, d);
      else copy_(buf, buf.mul(o.momentum).add(d.mul(1 - o.dampening)));
      d = o.nesterov ? d.add(buf.mul(o.momentum)) : buf;
    }
    copy_(p, p.sub(d.mul(o.lr)));
  });
}
