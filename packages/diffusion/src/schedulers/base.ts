import { tidy, type Tensor, type Generator } from '@foliar/tensor';
import { resolveSchedulerConfig, makeBetas, perItem, type SchedulerConfig, type StepOutput, type Scheduler } from './common.js';

/** Shared state of the ᾱ-parameterised schedulers: betas, ᾱ, timesteps, add_noise and training targets. */
export abstract class AlphaScheduler implements Scheduler {
  readonly config: SchedulerConfig;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  timesteps: number[] = [];
  numInferenceSteps = 0;
  initNoiseSigma = 1;

  constructor(config: Partial<SchedulerConfig> = {}, defaults: Partial<SchedulerConfig> = {}) {
    this.config = resolveSchedulerConfig(config, `${new.target.name} config`, [], defaults);
    const { betas, alphasCumprod } = makeBetas(this.config);
    this.betas = betas;
    this.alphasCumprod = alphasCumprod;
  }

  abstract setTimesteps(n: number): void;
  abstract step(modelOutput: Tensor, t: number, sample: Tensor, opts?: { generator?: Generator; varianceNoise?: Tensor }): StepOutput;

  scaleModelInput(sample: Tensor, _t: number): Tensor {
    return sample;
  }

  protected alpha(t: number): number {
    if (t < 0 || t >= this.alphasCumprod.length || !Number.isInteger(t)) throw new RangeError(`timestep ${t} is outside [0, ${this.alphasCumprod.length})`);
    return this.alphasCumprod[t]!;
  }

  /** √ᾱ_t·x0 + √(1−ᾱ_t)·noise, per batch item. */
  addNoise(x0: Tensor, noise: Tensor, timesteps: number[]): Tensor {
    return tidy(() => {
      const a = perItem(timesteps.map((t) => Math.sqrt(this.alpha(t))), x0);
      const b = perItem(timesteps.map((t) => Math.sqrt(1 - this.alpha(t))), x0);
      return x0.mul(a).add(noise.mul(b));
    });
  }

  /** The regression target of the prediction type: ε, v = √ᾱ·ε − √(1−ᾱ)·x0, or x0. */
  target(x0: Tensor, noise: Tensor, timesteps: number[]): Tensor {
    const type = this.config.prediction_type;
    if (type === 'epsilon') return noise.share();
    if (type === 'sample') return x0.share();
    return tidy(() => {
      const a = perItem(timesteps.map((t) => Math.sqrt(this.alpha(t))), x0);
      const b = perItem(timesteps.map((t) => Math.sqrt(1 - this.alpha(t))), x0);
      return noise.mul(a).sub(x0.mul(b));
    });
  }

  /** SNR(t) = ᾱ/(1−ᾱ), for min-SNR loss weighting. */
  snr(t: number): number {
    const a = this.alpha(t);
    return a / (1 - a);
  }

  protected clipSample(x0: Tensor): Tensor {
    if (!this.config.clip_sample) return x0;
    const r = this.config.clip_sample_range ?? 1;
    const c = x0.clamp(-r, r);
    x0.dispose();
    return c;
  }

  protected previous(t: number): number {
    return t - Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
  }
}
