import { tidy, mseLoss, tensor, type Tensor } from '@foliar/tensor';
import type { UNet2DConditionModel } from '../models/unet/unet-2d-condition.js';
import type { AlphaScheduler } from '../schedulers/base.js';

export interface PriorLossOptions {
  /** Items [0, numInstance) are instance images, the rest class (prior) images. */
  numInstance: number;
  /** λ of the prior-preservation term (diffusers' --prior_loss_weight, default 1). */
  priorLossWeight?: number;
  /**
   * Min-SNR-γ weighting (Hang et al. 2023). Computed per sample from that sample's own timestep and
   * averaged within each half — diffusers' script computes it on the doubled batch, which mis-weights
   * the prior half; foliar does not repeat that.
   */
  snrGamma?: number | null;
  scheduler?: AlphaScheduler;
  timesteps?: number[];
}

export interface PriorLoss {
  loss: Tensor;
  instanceLoss: Tensor;
  priorLoss: Tensor | null;
}

function weightedMse(pred: Tensor, target: Tensor, weights: number[] | null): Tensor {
  if (!weights) return mseLoss(pred, target);
  return tidy(() => {
    const perSample = pred.sub(target).square().mean([1, 2, 3]);
    const w = tensor(Float32Array.from(weights), { backend: pred.backend });
    return perSample.mul(w).mean();
  });
}

/**
 * DreamBooth's loss over one forward of the batch [instance…, class…]:
 * mse(instance) + λ·mse(class), optionally min-SNR weighted per half.
 */
export function priorPreservationLoss(modelPred: Tensor, target: Tensor, o: PriorLossOptions): PriorLoss {
  const n = o.numInstance;
  const B = modelPred.shape[0]!;
  const weights =
    o.snrGamma && o.scheduler && o.timesteps
      ? o.timesteps.map((t) => {
          const snr = o.scheduler!.snr(t);
          const m = Math.min(snr, o.snrGamma!);
          return o.scheduler!.config.prediction_type === 'v_prediction' ? m / (snr + 1) : m / snr;
        })
      : null;
  return tidy(() => {
    if (n >= B) {
      const l = weightedMse(modelPred, target, weights);
      return { loss: l, instanceLoss: l.share(), priorLoss: null };
    }
    const [pi, pc] = modelPred.split([n, B - n], 0) as [Tensor, Tensor];
    const [ti, tc] = target.split([n, B - n], 0) as [Tensor, Tensor];
    const instanceLoss = weightedMse(pi, ti, weights ? weights.slice(0, n) : null);
    const priorLoss = weightedMse(pc, tc, weights ? weights.slice(n) : null);
    const loss = instanceLoss.add(priorLoss.mul(o.priorLossWeight ?? 1));
    return { loss, instanceLoss, priorLoss };
  });
}

/** One denoising-loss forward: UNet on the noisy latents, target from the scheduler's prediction type. */
export function denoisingForward(unet: UNet2DConditionModel, scheduler: AlphaScheduler, latents: Tensor, noise: Tensor, timesteps: number[], context: Tensor): { pred: Tensor; target: Tensor; noisy: Tensor } {
  const noisy = scheduler.addNoise(latents, noise, timesteps);
  const pred = unet.forward(noisy, timesteps, context);
  const target = scheduler.target(latents, noise, timesteps);
  return { pred, target, noisy };
}
