import { tidy, randn, type Tensor, type Generator } from '@foliar/tensor';
import { AlphaScheduler } from './base.js';
import { spacedTimesteps, predictions, type SchedulerConfig, type StepOutput } from './common.js';

/** diffusers DDPMScheduler (ancestral sampling); variance types fixed_small, fixed_small_log, fixed_large, fixed_large_log. */
export class DDPMScheduler extends AlphaScheduler {
  constructor(config: Partial<SchedulerConfig> = {}) {
    super(config, { clip_sample: true, variance_type: 'fixed_small' });
  }
  setTimesteps(n: number): void {
    this.numInferenceSteps = n;
    this.timesteps = spacedTimesteps(this.config, n);
  }
  step(modelOutput: Tensor, t: number, sample: Tensor, opts: { generator?: Generator; varianceNoise?: Tensor } = {}): StepOutput {
    const n = this.numInferenceSteps || this.config.num_train_timesteps;
    const prevT = t - Math.floor(this.config.num_train_timesteps / n);
    const aT = this.alpha(t);
    const aPrev = prevT >= 0 ? this.alpha(prevT) : 1;
    const bT = 1 - aT, bPrev = 1 - aPrev;
    const curAlpha = aT / aPrev, curBeta = 1 - curAlpha;
    let { x0, eps } = predictions(this.config.prediction_type, sample, modelOutput, aT);
    eps.dispose();
    x0 = this.clipSample(x0);
    const c0 = (Math.sqrt(aPrev) * curBeta) / bT;
    const cs = (Math.sqrt(curAlpha) * bPrev) / bT;
    const vt = String(this.config.variance_type ?? 'fixed_small');
    let variance = (bPrev / bT) * curBeta;
    variance = Math.max(variance, 1e-20);
    let std: number;
    if (vt === 'fixed_small') std = Math.sqrt(variance);
    else if (vt === 'fixed_small_log') std = Math.exp(0.5 * Math.log(variance));
    else if (vt === 'fixed_large') std = Math.sqrt(curBeta);
    else if (vt === 'fixed_large_log') std = Math.exp(0.5 * Math.log(curBeta));
    else throw new Error(`DDPMScheduler: variance_type '${vt}' is not supported`);
    const prev = tidy(() => {
      let p = x0.mul(c0).add(sample.mul(cs));
      if (t > 0) {
        const noise = opts.varianceNoise ?? randn([...sample.shape], { generator: opts.generator, backend: sample.backend });
        p = p.add(noise.mul(std));
      }
      return p;
    });
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
