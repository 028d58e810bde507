import { keep, tidy, type Tensor } from '@foliar/tensor';
import { AlphaScheduler } from './base.js';
import { linspace, arangeDown, roundHalfEven, type SchedulerConfig, type StepOutput } from './common.js';

/**
 * diffusers PNDMScheduler with skip_prk_steps (PLMS, what SD1.x ships): N inference steps make N+1
 * model calls (the second timestep repeats to warm up the linear multistep history).
 */
export class PNDMScheduler extends AlphaScheduler {
  private ets: Tensor[] = [];
  private counter = 0;
  private curSample: Tensor | null = null;
  constructor(config: Partial<SchedulerConfig> = {}) {
    super(config, { skip_prk_steps: true, set_alpha_to_one: false });
    if (this.config.skip_prk_steps === false) throw new Error('PNDMScheduler: only skip_prk_steps = true (PLMS) is supported');
  }
  private get finalAlpha(): number {
    return this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }
  setTimesteps(n: number): void {
    this.numInferenceSteps = n;
    const T = this.config.num_train_timesteps;
    let ts: number[];
    if (this.config.timestep_spacing === 'linspace') ts = linspace(0, T - 1, n).map(roundHalfEven);
    else if (this.config.timestep_spacing === 'leading') ts = Array.from({ length: n }, (_, i) => i * Math.floor(T / n) + this.config.steps_offset);
    else ts = arangeDown(T, 0, -T / n).map((t) => roundHalfEven(t) - 1).slice(0, n).reverse();
    // [:-1] + [-2:-1] + [-1:], reversed
    const plms = [...ts.slice(0, -1), ...ts.slice(-2, -1), ...ts.slice(-1)].reverse();
    this.timesteps = plms;
    this.reset();
  }
  private reset(): void {
    for (const e of this.ets) e.dispose();
    this.ets = [];
    this.curSample?.dispose();
    this.curSample = null;
    this.counter = 0;
  }
  step(modelOutput: Tensor, timestep: number, sample: Tensor): StepOutput {
    if (!this.numInferenceSteps) throw new Error('PNDMScheduler: call setTimesteps() first');
    const ratio = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    let t = timestep;
    let prevT = t - ratio;
    if (this.counter !== 1) {
      while (this.ets.length > 3) this.ets.shift()!.dispose();
      // history outlives the caller's tidy() (the pipeline steps inside one); freed by shift() and reset()
      this.ets.push(keep(modelOutput.share()));
    } else {
      prevT = t;
      t = t + ratio;
    }
    const e = this.ets;
    let mo: Tensor;
    let x = sample;
    if (e.length === 1 && this.counter === 0) {
      mo = modelOutput.share();
      this.curSample = keep(sample.share());
    } else if (e.length === 1 && this.counter === 1) {
      mo = tidy(() => modelOutput.add(e[e.length - 1]!).mul(0.5));
      x = this.curSample!;
    } else if (e.length === 2) mo = tidy(() => e[1]!.mul(3).sub(e[0]!).mul(0.5));
    else if (e.length === 3) mo = tidy(() => e[2]!.mul(23).sub(e[1]!.mul(16)).add(e[0]!.mul(5)).mul(1 / 12));
    else {
      const n = e.length;
      mo = tidy(() => e[n - 1]!.mul(55).sub(e[n - 2]!.mul(59)).add(e[n - 3]!.mul(37)).sub(e[n - 4]!.mul(9)).mul(1 / 24));
    }
    const prev = this.prevSample(x, t, prevT, mo);
    mo.dispose();
    if (x === this.curSample && this.counter === 1) {
      this.curSample.dispose();
      this.curSample = null;
    }
    this.counter++;
    return { prevSample: prev };
  }
  private prevSample(sample: Tensor, t: number, prevT: number, mo: Tensor): Tensor {
    const aT = this.alpha(t);
    const aPrev = prevT >= 0 ? this.alpha(prevT) : this.finalAlpha;
    const bT = 1 - aT, bPrev = 1 - aPrev;
    return tidy(() => {
      const m = this.config.prediction_type === 'v_prediction' ? mo.mul(Math.sqrt(aT)).add(sample.mul(Math.sqrt(bT))) : mo;
      if (this.config.prediction_type === 'sample') throw new Error('PNDMScheduler: prediction_type sample is not supported');
      const sampleCoeff = Math.sqrt(aPrev / aT);
      const denom = aT * Math.sqrt(bPrev) + Math.sqrt(aT * bT * aPrev);
      return sample.mul(sampleCoeff).sub(m.mul((aPrev - aT) / denom));
    });
  }
}
