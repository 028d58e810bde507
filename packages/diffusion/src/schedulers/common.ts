import { tidy, tensor, type Tensor, type Generator } from '@foliar/tensor';
import { checkConfigObject, checkFields, checkUnsupported, configError, rule, withDefaults, type ConfigSchema } from '../models/config-schema.js';

/** Scheduler config fields shared by diffusers' schedulers (scheduler_config.json). */
export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  trained_betas?: number[] | null;
  prediction_type: 'epsilon' | 'v_prediction' | 'sample';
  timestep_spacing: 'leading' | 'linspace' | 'trailing';
  steps_offset: number;
  clip_sample?: boolean;
  clip_sample_range?: number;
  set_alpha_to_one?: boolean;
  rescale_betas_zero_snr?: boolean;
  thresholding?: boolean;
  [k: string]: unknown;
}

export const SCHEDULER_DEFAULTS: SchedulerConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
  clip_sample: true,
  clip_sample_range: 1,
  set_alpha_to_one: true,
};

/** Fields a scheduler_config.json must set: the noise schedule has no safe default. */
export const SCHEDULER_REQUIRED = ['num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule'] as const;

/** Training timesteps beyond this are refused: the schedules are arrays of that length (SD uses 1,000). */
export const MAX_TRAIN_TIMESTEPS = 1_000_000;

const SCHEDULER_SCHEMA: ConfigSchema = {
  num_train_timesteps: rule.posIntAtMost(MAX_TRAIN_TIMESTEPS),
  beta_start: rule.unitOpen,
  beta_end: rule.unitOpen,
  beta_schedule: rule.oneOf(['linear', 'scaled_linear', 'squaredcos_cap_v2']),
  trained_betas: rule.nullable(rule.arrayOf(rule.unitOpen, 'numbers in (0, 1)')),
  prediction_type: rule.oneOf(['epsilon', 'v_prediction', 'sample']),
  timestep_spacing: rule.oneOf(['leading', 'linspace', 'trailing']),
  steps_offset: rule.nonNegInt,
  clip_sample: rule.bool,
  clip_sample_range: rule.finitePos,
  set_alpha_to_one: rule.bool,
  rescale_betas_zero_snr: rule.bool,
  skip_prk_steps: rule.bool,
  variance_type: rule.nullable(rule.string),
  solver_order: rule.oneOf([1, 2]),
  algorithm_type: rule.string,
  solver_type: rule.string,
  lower_order_final: rule.bool,
  euler_at_final: rule.bool,
  final_sigmas_type: rule.oneOf(['zero', 'sigma_min']),
};

/** diffusers options foliar's schedulers do not implement, at the defaults they do. */
const SCHEDULER_UNSUPPORTED: Readonly<Record<string, unknown>> = {
  thresholding: false, use_karras_sigmas: false, use_exponential_sigmas: false, use_beta_sigmas: false, use_lu_lambdas: false,
  interpolation_type: 'linear', timestep_type: 'discrete',
};

/**
 * Validates a scheduler config over `defaults` (types, ranges, beta_start < beta_end, trained_betas
 * length); `required` lists what a scheduler_config.json must set. Errors name `source` and the field.
 */
export function resolveSchedulerConfig(raw: unknown, source = 'scheduler config', required: readonly string[] = [], defaults: Partial<SchedulerConfig> = {}): SchedulerConfig {
  const r = checkConfigObject(raw, source, required);
  checkFields(r, SCHEDULER_SCHEMA, source);
  checkUnsupported(r, SCHEDULER_UNSUPPORTED, source);
  const c = withDefaults({ ...SCHEDULER_DEFAULTS, ...defaults }, r) as SchedulerConfig;
  checkFields(c, SCHEDULER_SCHEMA, source); // the class defaults too
  if (c.trained_betas) {
    if (c.trained_betas.length !== c.num_train_timesteps) throw configError(source, 'trained_betas', `trained_betas has ${c.trained_betas.length} entries for num_train_timesteps ${c.num_train_timesteps}`);
  } else if (c.beta_schedule !== 'squaredcos_cap_v2' && !(c.beta_start < c.beta_end)) {
    throw configError(source, 'beta_end', `beta_start (${c.beta_start}) must be below beta_end (${c.beta_end})`);
  }
  return c;
}

const f = Math.fround;

/** torch.linspace in float32 (both halves computed from their end, as torch does). */
function linspaceF32(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  const step = f((end - start) / (n - 1));
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? f(start + step * i) : f(end - step * (n - 1 - i));
  return out;
}

/** betas and alphas_cumprod in float32, as diffusers computes them. */
export function makeBetas(c: SchedulerConfig): { betas: Float32Array; alphasCumprod: Float32Array } {
  const T = c.num_train_timesteps;
  let betas: Float32Array;
  if (c.trained_betas) betas = Float32Array.from(c.trained_betas);
  else if (c.beta_schedule === 'linear') betas = linspaceF32(c.beta_start, c.beta_end, T);
  else if (c.beta_schedule === 'scaled_linear') betas = linspaceF32(f(Math.sqrt(c.beta_start)), f(Math.sqrt(c.beta_end)), T).map((b) => f(b * b));
  else if (c.beta_schedule === 'squaredcos_cap_v2') {
    const abar = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI * 0.5) ** 2;
    betas = new Float32Array(T);
    for (let i = 0; i < T; i++) betas[i] = Math.min(1 - abar((i + 1) / T) / abar(i / T), 0.999);
  } else throw new Error(`scheduler config: beta_schedule '${String(c.beta_schedule)}' is not supported`);
  const alphasCumprod = new Float32Array(T);
  let acc = 1;
  for (let i = 0; i < T; i++) {
    acc = f(acc * f(1 - betas[i]!));
    alphasCumprod[i] = acc;
  }
  if (c.rescale_betas_zero_snr) rescaleZeroSnr(alphasCumprod, betas);
  return { betas, alphasCumprod };
}

/** Lin et al. 2023: rescale so the last timestep has zero SNR. */
function rescaleZeroSnr(ac: Float32Array, betas: Float32Array): void {
  const sq = Array.from(ac, Math.sqrt);
  const s0 = sq[0]!, sT = sq[sq.length - 1]!;
  const scaled = sq.map((v) => ((v - sT) * s0) / (s0 - sT));
  let prev = 1;
  for (let i = 0; i < ac.length; i++) {
    ac[i] = Math.max(scaled[i]! ** 2, 0);
    const alpha = i === 0 ? ac[0]! : ac[i]! / prev;
    betas[i] = 1 - alpha;
    prev = ac[i]!;
  }
  ac[ac.length - 1] = 4.8973451890853435e-8; // diffusers keeps it just above 0 to avoid division by zero
}

/** numpy's round(): halves go to the even neighbour (Math.round sends them up). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.linspace(start, stop, n) (step computed once, last value exactly `stop`). */
export function linspace(start: number, stop: number, n: number): number[] {
  if (n === 1) return [start];
  const step = (stop - start) / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? stop : start + i * step));
}

/** np.arange(start, stop, step) for a negative step (start + i·step, as numpy fills it). */
export function arangeDown(start: number, stop: number, step: number): number[] {
  const n = Math.max(Math.ceil((stop - start) / step), 0);
  return Array.from({ length: n }, (_, i) => start + i * step);
}

/**
 * Inference timesteps for a spacing (diffusers' set_timesteps conventions, numpy rounding):
 * leading `arange(n)·(T//n) + steps_offset`, trailing `round(arange(T, 0, −T/n)) − 1`,
 * linspace `round(linspace(0, T−1, n))`, all descending.
 */
export function spacedTimesteps(c: SchedulerConfig, n: number): number[] {
  const T = c.num_train_timesteps;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`inference steps must be a positive integer, got ${n}`);
  if (n > T) throw new RangeError(`${n} inference steps exceed num_train_timesteps ${T}`);
  if (c.timestep_spacing === 'leading') {
    const ratio = Math.floor(T / n);
    return Array.from({ length: n }, (_, i) => i * ratio + c.steps_offset).reverse();
  }
  if (c.timestep_spacing === 'trailing') {
    return arangeDown(T, 0, -T / n).map((t) => roundHalfEven(t) - 1).slice(0, n);
  }
  if (c.timestep_spacing === 'linspace') {
    return linspace(0, T - 1, n).map(roundHalfEven).reverse();
  }
  throw new Error(`timestep_spacing '${String(c.timestep_spacing)}' is not supported`);
}

/** a·x + b·y (one kernel), returning a new tensor. */
export function lin(a: number, x: Tensor, b: number, y: Tensor): Tensor {
  return tidy(() => x.mul(a).add(y.mul(b)));
}

/** The x0 and ε predictions from a model output at ᾱ_t, for each prediction type. */
export function predictions(type: SchedulerConfig['prediction_type'], sample: Tensor, out: Tensor, alphaProd: number): { x0: Tensor; eps: Tensor } {
  const a = Math.sqrt(alphaProd), b = Math.sqrt(1 - alphaProd);
  return tidy(() => {
    if (type === 'epsilon') return { x0: lin(1 / a, sample, -b / a, out), eps: out.share() };
    if (type === 'v_prediction') return { x0: lin(a, sample, -b, out), eps: lin(a, out, b, sample) };
    if (type === 'sample') return { x0: out.share(), eps: lin(1 / b, sample, -a / b, out) };
    throw new Error(`prediction_type '${String(type)}' is not supported`);
  });
}

export interface StepOutput {
  prevSample: Tensor;
  predOriginalSample?: Tensor;
}

/** What every scheduler offers (the diffusers interface in camelCase). */
export interface Scheduler {
  readonly config: SchedulerConfig;
  readonly timesteps: number[];
  readonly initNoiseSigma: number;
  setTimesteps(n: number): void;
  scaleModelInput(sample: Tensor, t: number): Tensor;
  step(modelOutput: Tensor, t: number, sample: Tensor, opts?: { generator?: Generator; varianceNoise?: Tensor }): StepOutput;
  addNoise(x0: Tensor, noise: Tensor, timesteps: number[]): Tensor;
  /** The training target for a prediction type (ε, v or x0). */
  target(x0: Tensor, noise: Tensor, timesteps: number[]): Tensor;
  readonly alphasCumprod: Float32Array;
}

/** Per-batch-item coefficient tensor [B, 1, 1, 1] for broadcasting. */
export function perItem(values: number[], like: Tensor): Tensor {
  const shape = [values.length, ...new Array<number>(Math.max(like.rank - 1, 0)).fill(1)];
  return tensor(Float32Array.from(values), { shape, backend: like.backend });
}
