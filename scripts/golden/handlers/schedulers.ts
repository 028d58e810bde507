/**
 * Scheduler step cases beyond DDIM/DDPM: `PNDMScheduler.step`, `EulerDiscreteScheduler.step`,
 * `DPMSolverMultistepScheduler.step`, in the format of the DDIM cases (../shared/golden/README.md):
 *
 *   attrs.config                   the scheduler's config (diffusers' `scheduler.config`)
 *   attrs.num_inference_steps      set_timesteps(n) (else from `timesteps`: its length, less the
 *                                  repeated warm-up step for PNDM)
 *   attrs.init_noise_sigma         optional
 *   betas, alphas_cumprod          optional: the training schedule
 *   timesteps                      scheduler.timesteps after set_timesteps (I64, or F32 for Euler's
 *                                  fractional timesteps)
 *   sigmas                         optional: scheduler.sigmas (Euler, DPM-Solver)
 *   sample0, model_output{i}       step(model_output{i}, timesteps[i], x) for every stored model
 *                                  output, x = sample0, then `sample{i}` if stored, else the stored
 *                                  prev_sample{i-1} (multistep schedulers keep their own history)
 *   scaled_sample{i}               optional: scale_model_input(x, timesteps[i])
 *   prev_sample{i}                 step's prev_sample
 *   pred_original_sample{i}        optional: step's pred_original_sample (Euler)
 */
import {
  PNDMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler, type Scheduler, type SchedulerConfig,
} from '@foliar/diffusion';
import type { CaseContext, Handler } from '../context.js';
import { compare, OPS_TOL } from '../compare.js';

/** Float timesteps and sigmas: as f32 tensors from Python, compared at f32 precision. */
const F32_TOL = { rtol: 1e-6, atol: 1e-6 };

function exact(label: string, mine: readonly number[], ref: ArrayLike<number>): { name: string; diff: ReturnType<typeof compare> } {
  let bad = mine.length === ref.length ? 0 : 1;
  for (let i = 0; i < Math.min(mine.length, ref.length); i++) if (mine[i] !== ref[i]) bad++;
  return { name: label, diff: { maxAbs: bad, maxRel: bad, ok: bad === 0, worst: -1 } };
}

function stepCase(make: (config: Partial<SchedulerConfig>) => Scheduler, warmUpSteps = 0): Handler {
  return async (ctx: CaseContext) => {
    const s = make(ctx.attr<Partial<SchedulerConfig>>('config'));
    if (ctx.has('betas')) await ctx.checkArray('betas', (s as unknown as { betas: Float32Array }).betas, 'betas');
    if (ctx.has('alphas_cumprod')) await ctx.checkArray('alphas_cumprod', s.alphasCumprod, 'alphas_cumprod');
    const stored = ctx.has('timesteps') ? await ctx.raw('timesteps') : null;
    const n = ctx.attr<number | null>('num_inference_steps', null) ?? (stored ? stored.shape[0]! - warmUpSteps : null);
    if (n === null) throw new Error(`case ${ctx.c.name}: neither attrs.num_inference_steps nor a 'timesteps' tensor`);
    s.setTimesteps(n);
    if (stored) {
      if (stored.data instanceof Int32Array) ctx.checks.push(exact('timesteps', s.timesteps, stored.data));
      else ctx.checks.push({ name: 'timesteps', diff: compare(s.timesteps, stored.data, F32_TOL) });
    }
    const sigmas = (s as { sigmas?: number[] }).sigmas;
    if (ctx.has('sigmas')) {
      if (!sigmas) throw new Error(`case ${ctx.c.name}: the fixture has sigmas, ${s.constructor.name} has none`);
      await ctx.checkArray('sigmas', sigmas, 'sigmas', F32_TOL);
    }
    const initNoiseSigma = ctx.attr<number | null>('init_noise_sigma', null);
    if (initNoiseSigma !== null) ctx.checks.push({ name: 'init_noise_sigma', diff: compare([s.initNoiseSigma], [initNoiseSigma], F32_TOL) });

    const steps = Object.keys(ctx.c.tensors).filter((k) => /^model_output\d+$/.test(k)).length;
    if (steps === 0) throw new Error(`case ${ctx.c.name}: no model_output{i} tensors`);
    if (steps > s.timesteps.length) throw new Error(`case ${ctx.c.name}: ${steps} model outputs for ${s.timesteps.length} timesteps`);
    for (let i = 0; i < steps; i++) {
      const t = s.timesteps[i]!;
      const sample = await ctx.t(i === 0 ? 'sample0' : ctx.has(`sample${i}`) ? `sample${i}` : `prev_sample${i - 1}`);
      if (ctx.has(`scaled_sample${i}`)) await ctx.check(`scaled_sample${i}`, s.scaleModelInput(sample, t), `scaled_sample${i}`);
      const r = s.step(await ctx.t(`model_output${i}`), t, sample);
      await ctx.check(`prev_sample${i}`, r.prevSample, `prev_sample${i}`, OPS_TOL);
      if (ctx.has(`pred_original_sample${i}`)) await ctx.check(`pred_original_sample${i}`, r.predOriginalSample, `pred_original_sample${i}`, OPS_TOL);
    }
  };
}

export const schedulerHandlers: Record<string, Handler> = {
  // PLMS repeats its second timestep to warm up its history: n inference steps, n + 1 timesteps
  'PNDMScheduler.step': stepCase((c) => new PNDMScheduler(c), 1),
  'EulerDiscreteScheduler.step': stepCase((c) => new EulerDiscreteScheduler(c)),
  'DPMSolverMultistepScheduler.step': stepCase((c) => new DPMSolverMultistepScheduler(c)),
};
