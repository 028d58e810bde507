/**
 * Schedulers against properties and hand-computed values (only DDIM/DDPM have golden files):
 * - an oracle model that returns the exact ε (or v) of a known x0 for the sample it is given: every
 *   deterministic sampler must land on x0 from pure noise, in every timestep spacing;
 * - Gaussian data, whose probability-flow ODE has a closed-form solution: samplers converge to it, and
 *   DPM-Solver++(2M) converges at second order (Euler and DDIM at first);
 * - timesteps of each spacing against values worked out by hand from diffusers' numpy formulas;
 * - addNoise, v-prediction targets and SNR against f64 formulas.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { tensor, type Tensor } from '@foliar/tensor';
import {
  DDIMScheduler, DDPMScheduler, PNDMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler, schedulerFromConfig,
  roundHalfEven, type Scheduler, type SchedulerConfig,
} from '@foliar/diffusion';
import { setup, teardown, backends, randArray, randnArray, assertClose } from '../helpers.js';
import { scaledLinearAlphas, sigmaAt } from './fixtures.js';

const test = suite('schedulers');
test.before(async () => {
  await setup();
});
test.after(() => teardown());

const SD: Partial<SchedulerConfig> = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: true, steps_offset: 1 };
const ALPHAS = scaledLinearAlphas();
const N = 48;
const SHAPE = [1, 3, 4, 4];

type Model = (x: Float64Array, t: number) => Float64Array;

/** Runs a scheduler's loop from `noise`; the model sees the scaled input, as the UNet would. */
async function sampleWith(s: Scheduler, steps: number, noise: Float32Array, model: Model, stopAt: number | null = null): Promise<{ x: Float32Array; calls: number; start: Float32Array; t0: number }> {
  const be = backends().gpu;
  s.setTimesteps(steps);
  let lat: Tensor = tensor(noise, { shape: SHAPE, backend: be }).mul(s.initNoiseSigma);
  const start = (await lat.data()) as Float32Array;
  let calls = 0;
  // stopAt: leave the sample at that timestep's noise level (run only the steps from above it)
  const run = stopAt === null ? s.timesteps : s.timesteps.filter((t) => t > stopAt);
  for (const t of run) {
    const inp = s.scaleModelInput(lat, t);
    const out = tensor(Float32Array.from(model(Float64Array.from(await inp.data()), t)), { shape: SHAPE, backend: be });
    calls++;
    const r = s.step(out, t, lat);
    r.predOriginalSample?.dispose();
    if (inp !== lat) inp.dispose();
    out.dispose();
    lat.dispose();
    lat = r.prevSample;
  }
  const x = (await lat.data()) as Float32Array;
  lat.dispose();
  return { x, calls, start, t0: s.timesteps[0]! };
}

/** The model input is the VP sample a·x0 + σa·ε with a = 1/√(1+σ²): return the ε (or v) that makes it exact. */
function exactOracle(x0: Float64Array, pred: 'epsilon' | 'v_prediction'): Model {
  return (x, t) => {
    const sg = sigmaAt(ALPHAS, t), a = 1 / Math.sqrt(1 + sg * sg), b = sg * a;
    return x.map((xi, i) => {
      const eps = (xi - a * x0[i]!) / b;
      return pred === 'epsilon' ? eps : a * eps - b * x0[i]!;
    });
  };
}

const kinds: [string, (c: Partial<SchedulerConfig>) => Scheduler][] = [
  ['DDIM', (c) => new DDIMScheduler({ ...SD, ...c })],
  ['PNDM', (c) => new PNDMScheduler({ ...SD, ...c })],
  ['EulerDiscrete', (c) => new EulerDiscreteScheduler({ ...SD, ...c })],
  ['DPMSolverMultistep', (c) => new DPMSolverMultistepScheduler({ ...SD, ...c })],
];

test('oracle ε / v of a known x0: every sampler lands on x0 from pure noise, in every spacing', async () => {
  const x0 = Float64Array.from(randArray(48, 3, -1, 1));
  const noise = randnArray(48, 4);
  for (const [name, make] of kinds) {
    for (const spacing of ['leading', 'linspace', 'trailing'] as const) {
      // PLMS steps back by T//n: the multistep history is only consistent where that is the next timestep
      if (name === 'PNDM' && spacing === 'linspace') continue;
      for (const pred of ['epsilon', 'v_prediction'] as const) {
        const s = make({ timestep_spacing: spacing, prediction_type: pred });
        const steps = 10;
        const r = await sampleWith(s, steps, noise, exactOracle(x0, pred));
        // PLMS combines raw model outputs before converting v to ε (as diffusers does): v of one x0 differs
        // between timesteps, so v-prediction PLMS is close but not exact
        const atol = name === 'PNDM' && pred === 'v_prediction' ? 5e-2 : 2e-3;
        await assertClose(r.x, x0, { rtol: 0, atol, msg: `${name} ${spacing} ${pred}` });
        assert.is(r.calls, name === 'PNDM' ? steps + 1 : steps, `${name}: model calls for ${steps} steps`);
      }
    }
  }
});

test('DDIM with set_alpha_to_one = false ends at the noise level of ᾱ₀, not at x0', async () => {
  const x0 = Float64Array.from(randArray(48, 5, -1, 1));
  const noise = randnArray(48, 6);
  const s = new DDIMScheduler({ ...SD, set_alpha_to_one: false });
  const r = await sampleWith(s, 10, noise, exactOracle(x0, 'epsilon'));
  // the trajectory stays on x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε_T, with ε_T fixed by the start sample
  const t0 = r.t0, a0 = ALPHAS[t0]!;
  const epsT = Array.from(r.start, (x, i) => (x - Math.sqrt(a0) * x0[i]!) / Math.sqrt(1 - a0));
  const aEnd = ALPHAS[0]!;
  const expected = epsT.map((e, i) => Math.sqrt(aEnd) * x0[i]! + Math.sqrt(1 - aEnd) * e);
  await assertClose(r.x, expected, { rtol: 0, atol: 2e-4 });
});

/**
 * Gaussian data x0 ~ N(μ, s²): the ideal denoiser is D(X, σ) = (s²X + σ²μ)/(s² + σ²) in VE
 * coordinates X = x/a, and the probability-flow ODE from (X_T, σ_T) ends at μ + (X_T − μ)·s/√(s² + σ_T²).
 */
function gaussianOracle(mu: Float64Array, s2: number, pred: 'epsilon' | 'v_prediction'): Model {
  return (x, t) => {
    const sg = sigmaAt(ALPHAS, t), a = 1 / Math.sqrt(1 + sg * sg);
    return x.map((xi, i) => {
      const X = xi / a;
      const D = (s2 * X + sg * sg * mu[i]!) / (s2 + sg * sg);
      const eps = (X - D) / sg;
      return pred === 'epsilon' ? eps : a * eps - sg * a * D;
    });
  };
}

/**
 * Max error against the exact ODE solution, at the end (σ = 0) or at the noise level of timestep
 * `stopAt` (one that every step count used here reaches): the final step to σ = 0 is first order in
 * every multistep solver (diffusers' lower_order_final / final_sigmas_type "zero"), so a solver's
 * order shows before it.
 */
async function odeError(name: string, make: (c: Partial<SchedulerConfig>) => Scheduler, steps: number, pred: 'epsilon' | 'v_prediction' = 'epsilon', stopAt: number | null = null): Promise<number> {
  const mu = Float64Array.from(randArray(48, 7, -0.5, 0.5));
  const s2 = 0.25;
  const noise = randnArray(48, 8);
  const s = make({ timestep_spacing: name === 'PNDM' ? 'leading' : 'trailing', prediction_type: pred });
  const r = await sampleWith(s, steps, noise, gaussianOracle(mu, s2, pred), stopAt);
  const ve = name === 'EulerDiscrete';
  const sgT = sigmaAt(ALPHAS, r.t0);
  const sgE = stopAt === null ? 0 : sigmaAt(ALPHAS, stopAt);
  // Euler's latents are VE (X) already; the others hold the VP sample a·X, a = 1/√(1 + σ²)
  const XT = Array.from(r.start, (x) => (ve ? x : x * Math.sqrt(1 + sgT * sgT)));
  const aE = ve ? 1 : 1 / Math.sqrt(1 + sgE * sgE);
  let err = 0;
  for (let i = 0; i < XT.length; i++) {
    const exact = mu[i]! + (XT[i]! - mu[i]!) * Math.sqrt((s2 + sgE * sgE) / (s2 + sgT * sgT));
    err = Math.max(err, Math.abs(r.x[i]! - aE * exact));
  }
  return err;
}

test('Gaussian data: samplers converge to the exact ODE solution; DPM-Solver++(2M) at second order', async () => {
  const end: Record<string, number[]> = {}, mid: Record<string, number[]> = {};
  for (const [name, make] of kinds) {
    end[name] = [await odeError(name, make, 20), await odeError(name, make, 80)];
    mid[name] = [];
    // trailing 10/20/40 steps all pass t = 99; leading (PLMS) all pass t = 101
    for (const n of [10, 20, 40]) mid[name]!.push(await odeError(name, make, n, 'epsilon', name === 'PNDM' ? 101 : 99));
  }
  const fmt = (e: number[]) => e.map((v) => v.toExponential(2)).join(', ');
  for (const [name, e] of Object.entries(end)) {
    assert.ok(e[1]! < 0.05, `${name}: 80 steps end within 0.05 of the exact endpoint (20, 80 steps: ${fmt(e)})`);
    // PLMS is already at its floor (~1e-3: its last step extrapolates ε ∝ √t near t = 0)
    if (name !== 'PNDM') assert.ok(e[1]! < e[0]!, `${name}: the endpoint error shrinks with steps (${fmt(e)})`);
  }
  // observed order ≈ log2(e(n)/e(2n))
  const order = (e: number[]) => Math.log2(e[1]! / e[2]!);
  const o = Object.fromEntries(Object.entries(mid).map(([k, e]) => [k, order(e)]));
  assert.ok(o.EulerDiscrete! > 0.7 && o.EulerDiscrete! < 1.4, `Euler is first order (${o.EulerDiscrete!.toFixed(2)}: ${fmt(mid.EulerDiscrete!)})`);
  assert.ok(o.DDIM! > 0.7 && o.DDIM! < 1.4, `DDIM is first order (${o.DDIM!.toFixed(2)}: ${fmt(mid.DDIM!)})`);
  assert.ok(o.DPMSolverMultistep! > 1.6, `DPM-Solver++(2M) is second order (${o.DPMSolverMultistep!.toFixed(2)}: ${fmt(mid.DPMSolverMultistep!)})`);
  assert.ok(mid.PNDM![1]! < 1e-3 && mid.PNDM![1]! < mid.DPMSolverMultistep![1]!, `PLMS (4-step Adams–Bashforth) at 20 steps is within 1e-3, better than DPM++ (${fmt(mid.PNDM!)})`);
  // v-prediction reaches the same solution
  const ev = await odeError('DPMSolverMultistep', kinds[3]![1], 40, 'v_prediction', 99);
  assert.ok(Math.abs(ev - mid.DPMSolverMultistep![2]!) < 1e-3, `DPM++ v-prediction error ${ev} ≈ ε-prediction error ${mid.DPMSolverMultistep![2]}`);
});

test('timesteps of each spacing match diffusers\' numpy formulas (worked by hand)', () => {
  const ts = (s: Scheduler, n: number) => {
    s.setTimesteps(n);
    return [...s.timesteps];
  };
  // leading: arange(n)·(T//n) + steps_offset
  assert.equal(ts(new DDIMScheduler({ ...SD }), 10), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  assert.equal(ts(new DDPMScheduler({ steps_offset: 0 }), 4), [750, 500, 250, 0]);
  // trailing: round(arange(1000, 0, −62.5)) − 1, numpy rounding halves to even (937.5 → 938, 812.5 → 812)
  assert.equal(ts(new DDIMScheduler({ ...SD, timestep_spacing: 'trailing' }), 16), [999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61]);
  // linspace: round(linspace(0, 999, 7)) = 0, 166 (166.5), 333, 500 (499.5), 666, 832 (832.5), 999
  assert.equal(ts(new DDIMScheduler({ ...SD, timestep_spacing: 'linspace' }), 7), [999, 832, 666, 500, 333, 166, 0]);
  // PLMS: ts[:-1] + ts[-2:-1] + ts[-1:], reversed: the second timestep repeats
  assert.equal(ts(new PNDMScheduler({ ...SD }), 5), [801, 601, 601, 401, 201, 1]);
  assert.equal(ts(new PNDMScheduler({ ...SD, timestep_spacing: 'linspace' }), 7), [999, 832, 832, 666, 500, 333, 166, 0]);
  assert.equal(ts(new PNDMScheduler({ ...SD, timestep_spacing: 'trailing' }), 4), [999, 749, 749, 499, 249]);
  // Euler keeps linspace timesteps unrounded
  assert.equal(ts(new EulerDiscreteScheduler({ ...SD }), 7), [999, 832.5, 666, 499.5, 333, 166.5, 0]);
  assert.equal(ts(new EulerDiscreteScheduler({ ...SD, timestep_spacing: 'leading' }), 4), [751, 501, 251, 1]);
  // DPM-Solver: linspace(0, 999, n + 1) rounded, reversed, last dropped; leading uses T // (n + 1)
  assert.equal(ts(new DPMSolverMultistepScheduler({ ...SD }), 6), [999, 832, 666, 500, 333, 166]);
  assert.equal(ts(new DPMSolverMultistepScheduler({ ...SD, timestep_spacing: 'leading', steps_offset: 0 }), 6), [852, 710, 568, 426, 284, 142]);
  // trailing: round(1000, 833.3, 666.7, 500, 333.3, 166.7) − 1
  assert.equal(ts(new DPMSolverMultistepScheduler({ ...SD, timestep_spacing: 'trailing' }), 6), [999, 832, 666, 499, 332, 166]);
  assert.is(roundHalfEven(2.5), 2);
  assert.is(roundHalfEven(3.5), 4);
  assert.is(roundHalfEven(-2.5), -2);
  assert.is(roundHalfEven(2.4999), 2);
});

test('Euler sigmas and init noise sigma follow σ = √((1−ᾱ)/ᾱ) interpolated at the timesteps', () => {
  const e = new EulerDiscreteScheduler({ ...SD });
  e.setTimesteps(7);
  const expected = [...e.timesteps.map((t) => sigmaAt(ALPHAS, t)), 0];
  e.sigmas.forEach((s, i) => assert.ok(Math.abs(s - expected[i]!) <= 1e-4 * expected[i]! + 1e-7, `sigma ${i}: ${s} vs ${expected[i]}`));
  assert.ok(Math.abs(e.initNoiseSigma - expected[0]!) < 1e-3, 'linspace: init sigma = σ_max');
  const l = new EulerDiscreteScheduler({ ...SD, timestep_spacing: 'leading' });
  l.setTimesteps(4);
  const smax = sigmaAt(ALPHAS, 751);
  assert.ok(Math.abs(l.initNoiseSigma - Math.sqrt(smax * smax + 1)) < 1e-3, 'leading: init sigma = √(σ_max² + 1)');
});

test('ᾱ of the beta schedules, addNoise, v-prediction targets and SNR against f64 formulas', async () => {
  const be = backends().gpu;
  const d = new DDPMScheduler({ ...SD, prediction_type: 'v_prediction' });
  await assertClose(d.alphasCumprod, ALPHAS, { rtol: 2e-5, atol: 0, msg: 'scaled_linear ᾱ' });
  const lin = new DDPMScheduler({ beta_schedule: 'linear', beta_start: 1e-4, beta_end: 0.02 });
  let acc = 1;
  const linRef = Array.from({ length: 1000 }, (_, i) => (acc *= 1 - (1e-4 + ((0.02 - 1e-4) * i) / 999)));
  await assertClose(lin.alphasCumprod, linRef, { rtol: 2e-5, atol: 0, msg: 'linear ᾱ' });
  const cos = new DDPMScheduler({ beta_schedule: 'squaredcos_cap_v2' });
  const f = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  acc = 1;
  const cosRef = Array.from({ length: 1000 }, (_, i) => (acc *= 1 - Math.min(1 - f((i + 1) / 1000) / f(i / 1000), 0.999)));
  await assertClose(cos.alphasCumprod, cosRef, { rtol: 1e-4, atol: 1e-7, msg: 'squaredcos_cap_v2 ᾱ' });

  const shape = [3, 2, 2, 2];
  const x0d = randArray(24, 11), nd = randnArray(24, 12);
  const ts = [0, 417, 999];
  const x0 = tensor(x0d, { shape, backend: be }), noise = tensor(nd, { shape, backend: be });
  const noisyRef: number[] = [], vRef: number[] = [];
  for (let i = 0; i < 24; i++) {
    const a = ALPHAS[ts[Math.floor(i / 8)]!]!;
    noisyRef.push(Math.sqrt(a) * x0d[i]! + Math.sqrt(1 - a) * nd[i]!);
    vRef.push(Math.sqrt(a) * nd[i]! - Math.sqrt(1 - a) * x0d[i]!);
  }
  await assertClose(d.addNoise(x0, noise, ts), noisyRef, { rtol: 1e-4, atol: 1e-5, msg: 'addNoise per item' });
  await assertClose(d.target(x0, noise, ts), vRef, { rtol: 1e-4, atol: 1e-5, msg: 'v target' });
  const eps = new DDPMScheduler({ ...SD });
  await assertClose(eps.target(x0, noise, ts), nd, { rtol: 0, atol: 0, msg: 'ε target is the noise' });
  const smp = new DDPMScheduler({ ...SD, prediction_type: 'sample' });
  await assertClose(smp.target(x0, noise, ts), x0d, { rtol: 0, atol: 0, msg: 'sample target is x0' });
  assert.ok(Math.abs(d.snr(417) - ALPHAS[417]! / (1 - ALPHAS[417]!)) < 1e-4 * d.snr(417));
  assert.throws(() => d.addNoise(x0, noise, [0, 1000, 2]), /timestep 1000/);
});

test('schedulerFromConfig builds each class and refuses unknown names', () => {
  for (const cls of ['DDIMScheduler', 'DDPMScheduler', 'PNDMScheduler', 'EulerDiscreteScheduler', 'DPMSolverMultistepScheduler']) {
    const s = schedulerFromConfig({ ...SD, _class_name: cls });
    assert.is(s.constructor.name, cls);
  }
  assert.throws(() => schedulerFromConfig({ _class_name: 'LMSDiscreteScheduler' }), /LMSDiscreteScheduler.*not supported/);
  assert.throws(() => new DDIMScheduler().setTimesteps(1001), /exceed/);
});

test.run();
