import { tidy, randn, type Tensor, type Generator } from '@foliar/tensor';
import { AlphaScheduler } from './base.js';
import { spacedTimesteps, predictions, type SchedulerConfig, type StepOutput } from './common.js';

/** diffusers DDIMScheduler: deterministic for eta = 0, stochastic with eta > 0. */
export class DDIMScheduler extends AlphaScheduler {
  eta = 0;
  constructor(config: Partial<SchedulerConfig> = {}) {
    super(config, { set_alpha_to_one: true, clip_sample: true });
  }
  private get finalAlpha(): number {
    return this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }
  setTimesteps(n: number): void {
    this.numInferenceSteps = n;
    this.timesteps = spacedTimesteps(this.config, n);
  }
  step(modelOutput: Tensor, t: number, sample: Tensor, opts: { generator?: Generator; varianceNoise?: Tensor; eta?: number } = {}): StepOutput {
    if (!this.numInferenceSteps) throw new Error('DDIMScheduler: call setTimesteps() first');
    const eta = opts.eta ?? this.eta;
    const prevT = this.previous(t);
    const aT = this.alpha(t);
    const aPrev = prevT >= 0 ? this.alpha(prevT) : this.finalAlpha;
    let { x0, eps } = predictions(this.config.prediction_type, sample, modelOutput, aT);
    // diffusers clips x0 but keeps ε from the model (use_clipped_model_output = false)
    x0 = this.clipSample(x0);
    const variance = ((1 - aPrev) / (1 - aT)) * (1 - aT / aPrev);
    const std = eta * Math.sqrt(variance);
    const prev = tidy(() => {
      let p = x0.mul(Math.sqrt(aPrev)).add(eps.mul(Math.sqrt(Math.max(1 - aPrev - std * std, 0))));
      if (eta > 0) {
        const noise = opts.varianceNoise ?? randn([...sample.shape], { generator: opts.generator, backend: sample.backend });
        p = p.add(noise.mul(std));
      }
      return p;
    });
    eps.dispose();
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
