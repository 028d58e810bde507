import { keep, tidy, type Tensor } from '@foliar/tensor';
import { SigmaScheduler } from './sigma-base.js';
import { linspace, arangeDown, roundHalfEven, type SchedulerConfig, type StepOutput } from './common.js';

/**
 * diffusers DPMSolverMultistepScheduler, algorithm dpmsolver++ with solver_order 2 and the midpoint
 * second-order update; the last step is first order (final_sigmas_type "zero").
 */
export class DPMSolverMultistepScheduler extends SigmaScheduler {
  private outputs: Tensor[] = [];
  private lowerOrderNums = 0;
  constructor(config: Partial<SchedulerConfig> = {}) {
    super(config, { timestep_spacing: 'linspace', solver_order: 2, algorithm_type: 'dpmsolver++', solver_type: 'midpoint', lower_order_final: true });
    if (this.config.algorithm_type !== 'dpmsolver++') throw new Error(`DPMSolverMultistepScheduler: algorithm_type '${String(this.config.algorithm_type)}' is not supported`);
    if (this.config.solver_type !== 'midpoint') throw new Error(`DPMSolverMultistepScheduler: solver_type '${String(this.config.solver_type)}' is not supported`);
  }
  setTimesteps(n: number): void {
    this.numInferenceSteps = n;
    const T = this.config.num_train_timesteps;
    const spacing = this.config.timestep_spacing;
    let ts: number[];
    // diffusers spaces n + 1 points and drops the last for linspace and leading
    if (spacing === 'linspace') ts = linspace(0, T - 1, n + 1).map(roundHalfEven).reverse().slice(0, n);
    else if (spacing === 'leading') {
      const ratio = Math.floor(T / (n + 1));
      ts = Array.from({ length: n + 1 }, (_, i) => i * ratio).reverse().slice(0, n).map((t) => t + this.config.steps_offset);
    } else if (spacing === 'trailing') ts = arangeDown(T, 0, -T / n).map((t) => roundHalfEven(t) - 1).slice(0, n);
    else throw new Error(`timestep_spacing '${String(spacing)}' is not supported`);
    this.timesteps = ts;
    const table = this.trainSigmas();
    this.sigmas = [...ts.map((t) => this.interp(t, table)), 0];
    for (const o of this.outputs) o.dispose();
    this.outputs = [];
    this.lowerOrderNums = 0;
    this.stepIndex = 0;
  }
  private alphaSigma(sigma: number): { a: number; s: number; lambda: number } {
    const a = 1 / Math.sqrt(sigma * sigma + 1);
    const s = sigma * a;
    return { a, s, lambda: Math.log(a) - Math.log(s) };
  }
  step(modelOutput: Tensor, t: number, sample: Tensor): StepOutput {
    const i = this.indexOf(t);
    const order = Number(this.config.solver_order ?? 2);
    const sigma = this.sigmas[i]!;
    const cur = this.alphaSigma(sigma);
    const x0 = tidy(() => {
      const type = this.config.prediction_type;
      if (type === 'epsilon') return sample.sub(modelOutput.mul(cur.s)).mul(1 / cur.a);
      if (type === 'v_prediction') return sample.mul(cur.a).sub(modelOutput.mul(cur.s));
      return modelOutput.share();
    });
    // history outlives the caller's tidy() (the pipeline steps inside one); freed by shift() and setTimesteps()
    this.outputs.push(keep(x0));
    while (this.outputs.length > order) this.outputs.shift()!.dispose();
    const last = i === this.timesteps.length - 1;
    // diffusers: first order at the last step when the final sigma is zero (the default) or for short schedules
    const lowerFinal =
      last && ((this.config.final_sigmas_type ?? 'zero') === 'zero' || Boolean(this.config.euler_at_final) || (Boolean(this.config.lower_order_final) && this.timesteps.length < 15));
    const next = this.alphaSigma(this.sigmas[i + 1]!);
    const h = next.lambda - cur.lambda;
    const emh = Math.exp(-h) - 1;
    let prev: Tensor;
    if (order === 1 || this.lowerOrderNums < 1 || lowerFinal) {
      prev = tidy(() => sample.mul(next.s / cur.s).sub(x0.mul(next.a * emh)));
    } else {
      const m0 = this.outputs[this.outputs.length - 1]!, m1 = this.outputs[this.outputs.length - 2]!;
      const s1 = this.alphaSigma(this.sigmas[i - 1]!);
      const r0 = (cur.lambda - s1.lambda) / h;
      prev = tidy(() => {
        const d1 = m0.sub(m1).mul(1 / r0);
        return sample.mul(next.s / cur.s).sub(m0.mul(next.a * emh)).sub(d1.mul(0.5 * next.a * emh));
      });
    }
    if (this.lowerOrderNums < order) this.lowerOrderNums++;
    this.stepIndex = i + 1;
    return { prevSample: prev };
  }
}
