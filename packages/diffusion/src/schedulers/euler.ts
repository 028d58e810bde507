import { tidy, type Tensor } from '@foliar/tensor';
import { SigmaScheduler } from './sigma-base.js';
import { linspace, type SchedulerConfig, type StepOutput } from './common.js';

/** diffusers EulerDiscreteScheduler (s_churn = 0): inputs scaled by 1/√(σ²+1). */
export class EulerDiscreteScheduler extends SigmaScheduler {
  constructor(config: Partial<SchedulerConfig> = {}) {
    super(config, { timestep_spacing: 'linspace' });
  }
  setTimesteps(n: number): void {
    this.numInferenceSteps = n;
    if (this.config.timestep_spacing === 'linspace') {
      // diffusers keeps these unrounded (float timesteps, sigmas interpolated between table entries)
      this.timesteps = linspace(0, this.config.num_train_timesteps - 1, n).reverse();
      const table = this.trainSigmas();
      this.sigmas = [...this.timesteps.map((t) => this.interp(t, table)), 0];
    } else this.sigmas = [...this.computeSigmas(n), 0];
    const max = Math.max(...this.sigmas);
    this.initNoiseSigma = this.config.timestep_spacing === 'linspace' || this.config.timestep_spacing === 'trailing' ? max : Math.sqrt(max * max + 1);
    this.stepIndex = 0;
  }
  override scaleModelInput(sample: Tensor, t: number): Tensor {
    const s = this.sigmas[this.indexOf(t)]!;
    return sample.mul(1 / Math.sqrt(s * s + 1));
  }
  step(modelOutput: Tensor, t: number, sample: Tensor): StepOutput {
    const i = this.indexOf(t);
    const sigma = this.sigmas[i]!, next = this.sigmas[i + 1]!;
    return tidy(() => {
      let x0: Tensor;
      const type = this.config.prediction_type;
      if (type === 'epsilon') x0 = sample.sub(modelOutput.mul(sigma));
      else if (type === 'v_prediction') x0 = modelOutput.mul(-sigma / Math.sqrt(sigma * sigma + 1)).add(sample.mul(1 / (sigma * sigma + 1)));
      else x0 = modelOutput.share();
      const derivative = sample.sub(x0).mul(1 / sigma);
      this.stepIndex = i + 1;
      return { prevSample: sample.add(derivative.mul(next - sigma)), predOriginalSample: x0 };
    });
  }
}
