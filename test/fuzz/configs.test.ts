/**
 * Fuzz test of the diffusers config loaders (issue 14, item 7): seeded mutations of real configs
 * (SD1.5's and tiny ones: UNet, VAE, CLIP text encoder, schedulers) — values replaced by edge values
 * of every JSON type, keys deleted or added (`__proto__`, `constructor` among them), number literals
 * JSON.stringify never writes (1e999, -0, 2^53+1), duplicate keys, and text-level damage — given to
 * resolveUNetConfig / resolveVAEConfig / resolveCLIPTextConfig / resolveSchedulerConfig in memory and,
 * for one case in four, through the files (readUNetConfig / readVAEConfig / readTextEncoderConfig, and
 * readJson + resolveSchedulerConfig as StableDiffusionPipeline.fromPretrained reads scheduler_config.json).
 *
 * Each case ends as a clear error (an Error naming the file or source; for a ModelConfigError also the
 * field) or an accepted config that rules written here independently agree with (required fields set,
 * types and ranges, block list lengths, GroupNorm divisibility, heads dividing the width, eos inside the
 * vocabulary, beta_start < beta_end, every field the file sets kept as written, a plain object). An
 * accepted scheduler config must also build every scheduler class and set 10 inference steps.
 * CI: 4,000 cases and 1,000 through files, about 2 s (FOLIAR_FUZZ_SCALE multiplies it).
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  resolveUNetConfig, resolveVAEConfig, resolveCLIPTextConfig, resolveSchedulerConfig, readUNetConfig, readVAEConfig, readTextEncoderConfig,
  readJson, ModelConfigError, schedulerFromConfig, SCHEDULERS, UNET_REQUIRED, VAE_REQUIRED, CLIP_TEXT_REQUIRED, SCHEDULER_REQUIRED,
} from '@foliar/diffusion';
import { Mutator, FUZZ_SEED, cases, newStats, runCase, assertClean, type FuzzStats } from './mutator.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-fuzz-cfg-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

// ------------------------------------------------------------------ seeds (diffusers / transformers files)

const SD15_UNET = {
  _class_name: 'UNet2DConditionModel', _diffusers_version: '0.6.0', act_fn: 'silu', attention_head_dim: 8, block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false, cross_attention_dim: 768, down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1, flip_sin_to_cos: true, freq_shift: 0, in_channels: 4, layers_per_block: 2, mid_block_scale_factor: 1, norm_eps: 1e-5,
  norm_num_groups: 32, out_channels: 4, sample_size: 64, up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};
const TINY_UNET = {
  block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, attention_head_dim: [2, 4], sample_size: 8, cross_attention_dim: 16, in_channels: 4,
  out_channels: 4, down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'], transformer_layers_per_block: 1,
  mid_block_type: 'UNetMidBlock2DCrossAttn', use_linear_projection: true, conv_in_kernel: 3, upcast_attention: false, class_embed_type: null,
};
const SD15_VAE = {
  _class_name: 'AutoencoderKL', act_fn: 'silu', block_out_channels: [128, 256, 512, 512], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3, latent_channels: 4, layers_per_block: 2, norm_num_groups: 32, out_channels: 3, sample_size: 512, scaling_factor: 0.18215,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
};
const TINY_VAE = { block_out_channels: [8, 16], norm_num_groups: 4, latent_channels: 4, down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], shift_factor: null, mid_block_add_attention: false };
const SD15_CLIP = {
  architectures: ['CLIPTextModel'], attention_dropout: 0, bos_token_id: 0, dropout: 0, eos_token_id: 2, hidden_act: 'quick_gelu', hidden_size: 768, initializer_factor: 1,
  initializer_range: 0.02, intermediate_size: 3072, layer_norm_eps: 1e-5, max_position_embeddings: 77, model_type: 'clip_text_model', num_attention_heads: 12,
  num_hidden_layers: 12, pad_token_id: 1, projection_dim: 768, torch_dtype: 'float32', vocab_size: 49408,
};
const TINY_CLIP = { vocab_size: 1000, hidden_size: 16, num_hidden_layers: 2, intermediate_size: 24, num_attention_heads: 2, max_position_embeddings: 16, eos_token_id: 999, hidden_act: 'gelu' };
const SCHEDULER_SEEDS = [
  { _class_name: 'PNDMScheduler', beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085, num_train_timesteps: 1000, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, trained_betas: null, clip_sample: false },
  { _class_name: 'DDIMScheduler', beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085, num_train_timesteps: 1000, clip_sample: false, set_alpha_to_one: false, steps_offset: 1, prediction_type: 'v_prediction', timestep_spacing: 'trailing', rescale_betas_zero_snr: true },
  { _class_name: 'DPMSolverMultistepScheduler', beta_end: 0.02, beta_schedule: 'linear', beta_start: 0.0001, num_train_timesteps: 50, solver_order: 2, algorithm_type: 'dpmsolver++', solver_type: 'midpoint', lower_order_final: true, final_sigmas_type: 'zero' },
  { _class_name: 'EulerDiscreteScheduler', beta_end: 0.02, beta_schedule: 'squaredcos_cap_v2', beta_start: 0.5, num_train_timesteps: 20, timestep_spacing: 'linspace', interpolation_type: 'linear' },
  { _class_name: 'DDPMScheduler', beta_end: 0.3, beta_schedule: 'linear', beta_start: 0.1, num_train_timesteps: 4, trained_betas: [0.1, 0.2, 0.3, 0.4], variance_type: 'fixed_small', clip_sample_range: 1.5 },
];

// ------------------------------------------------------------------ the independent rules (the oracle)

type Rule = (v: unknown) => boolean;
const posInt: Rule = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const nonNegInt: Rule = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const finite: Rule = (v) => typeof v === 'number' && Number.isFinite(v);
const finitePos: Rule = (v) => finite(v) && (v as number) > 0;
const unit: Rule = (v) => finite(v) && (v as number) > 0 && (v as number) < 1;
const bool: Rule = (v) => typeof v === 'boolean';
const oneOf = (...xs: unknown[]): Rule => (v) => xs.includes(v);
const listOf = (r: Rule): Rule => (v) => Array.isArray(v) && v.length > 0 && v.every(r);
const either = (a: Rule, b: Rule): Rule => (v) => a(v) || b(v);
const nullable = (r: Rule): Rule => (v) => v === null || r(v);

interface Kind {
  name: string;
  seeds: object[];
  required: readonly string[];
  /** Field rules (from diffusers' and transformers' documentation), checked on what the file sets. */
  fields: Record<string, Rule>;
  /** Rules between fields, on the resolved config; null when satisfied. */
  cross: (c: Record<string, unknown>) => string | null;
  resolve: (raw: unknown, source: string) => Record<string, unknown>;
  /** Reads `<dir>/<file>` as the library does. */
  file: string;
  read: (dir: string, path: string) => Promise<Record<string, unknown>>;
  /** Extra use of an accepted config (null when fine). */
  use?: (c: Record<string, unknown>, raw: Record<string, unknown>) => string | null;
}

const heads = either(posInt, listOf(posInt));
const lengthsMatch = (c: Record<string, unknown>) => {
  const n = (c.block_out_channels as number[]).length;
  for (const k of ['down_block_types', 'up_block_types']) if ((c[k] as unknown[]).length !== n) return `${k} has ${(c[k] as unknown[]).length} entries for ${n} blocks`;
  const g = c.norm_num_groups as number;
  if ((c.block_out_channels as number[]).some((ch) => ch % g)) return `norm_num_groups ${g} does not divide ${JSON.stringify(c.block_out_channels)}`;
  return null;
};

const KINDS: Kind[] = [
  {
    name: 'unet', seeds: [SD15_UNET, TINY_UNET], required: UNET_REQUIRED, file: 'config.json',
    fields: {
      in_channels: posInt, out_channels: posInt, block_out_channels: listOf(posInt), cross_attention_dim: posInt, layers_per_block: posInt, norm_num_groups: posInt,
      norm_eps: finitePos, attention_head_dim: heads, num_attention_heads: nullable(heads), transformer_layers_per_block: heads, act_fn: oneOf('silu'),
      down_block_types: listOf(oneOf('CrossAttnDownBlock2D', 'DownBlock2D')), up_block_types: listOf(oneOf('UpBlock2D', 'CrossAttnUpBlock2D')),
      mid_block_type: nullable(oneOf('UNetMidBlock2DCrossAttn')), flip_sin_to_cos: bool, freq_shift: finite, downsample_padding: nonNegInt, mid_block_scale_factor: finite,
      use_linear_projection: bool, conv_in_kernel: (v) => posInt(v) && (v as number) % 2 === 1, conv_out_kernel: (v) => posInt(v) && (v as number) % 2 === 1,
      sample_size: nullable(posInt), upcast_attention: bool, class_embed_type: (v) => v === null, center_input_sample: (v) => v === false,
    },
    cross: (c) => {
      const l = lengthsMatch(c);
      if (l) return l;
      const n = (c.block_out_channels as number[]).length;
      for (const k of ['attention_head_dim', 'num_attention_heads', 'transformer_layers_per_block']) if (Array.isArray(c[k]) && (c[k] as unknown[]).length !== n) return `${k} length`;
      return null;
    },
    resolve: (raw, source) => resolveUNetConfig(raw, source, UNET_REQUIRED) as unknown as Record<string, unknown>,
    read: (dir) => readUNetConfig(dir) as unknown as Promise<Record<string, unknown>>,
  },
  {
    name: 'vae', seeds: [SD15_VAE, TINY_VAE], required: VAE_REQUIRED, file: 'config.json',
    fields: {
      in_channels: posInt, out_channels: posInt, block_out_channels: listOf(posInt), latent_channels: posInt, layers_per_block: posInt, norm_num_groups: posInt,
      down_block_types: listOf(oneOf('DownEncoderBlock2D')), up_block_types: listOf(oneOf('UpDecoderBlock2D')), act_fn: oneOf('silu'), scaling_factor: finitePos,
      shift_factor: nullable(finite), use_quant_conv: bool, use_post_quant_conv: bool, mid_block_add_attention: bool, sample_size: nullable(either(posInt, listOf(posInt))),
    },
    cross: lengthsMatch,
    resolve: (raw, source) => resolveVAEConfig(raw, source, VAE_REQUIRED) as unknown as Record<string, unknown>,
    read: (dir) => readVAEConfig(dir) as unknown as Promise<Record<string, unknown>>,
  },
  {
    name: 'text encoder', seeds: [SD15_CLIP, TINY_CLIP], required: CLIP_TEXT_REQUIRED, file: 'config.json',
    fields: {
      vocab_size: posInt, hidden_size: posInt, intermediate_size: posInt, num_hidden_layers: posInt, num_attention_heads: posInt, max_position_embeddings: posInt,
      hidden_act: oneOf('quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh'), layer_norm_eps: finitePos, eos_token_id: nonNegInt, bos_token_id: nullable(nonNegInt),
      pad_token_id: nullable(nonNegInt), projection_dim: nullable(posInt),
    },
    cross: (c) => ((c.hidden_size as number) % (c.num_attention_heads as number) ? 'heads do not divide hidden_size' : (c.eos_token_id as number) >= (c.vocab_size as number) ? 'eos outside the vocabulary' : null),
    resolve: (raw, source) => resolveCLIPTextConfig(raw, source, CLIP_TEXT_REQUIRED) as unknown as Record<string, unknown>,
    read: (dir) => readTextEncoderConfig(dir) as unknown as Promise<Record<string, unknown>>,
  },
  {
    name: 'scheduler', seeds: SCHEDULER_SEEDS, required: SCHEDULER_REQUIRED, file: 'scheduler_config.json',
    fields: {
      num_train_timesteps: posInt, beta_start: unit, beta_end: unit, beta_schedule: oneOf('linear', 'scaled_linear', 'squaredcos_cap_v2'),
      trained_betas: nullable(listOf(unit)), prediction_type: oneOf('epsilon', 'v_prediction', 'sample'), timestep_spacing: oneOf('leading', 'linspace', 'trailing'),
      steps_offset: nonNegInt, clip_sample: bool, clip_sample_range: finitePos, set_alpha_to_one: bool, rescale_betas_zero_snr: bool, solver_order: oneOf(1, 2),
      thresholding: (v) => v === false, use_karras_sigmas: (v) => v === false,
    },
    cross: (c) => {
      if (Array.isArray(c.trained_betas)) return c.trained_betas.length === c.num_train_timesteps ? null : 'trained_betas length';
      return c.beta_schedule === 'squaredcos_cap_v2' || (c.beta_start as number) < (c.beta_end as number) ? null : 'beta_start >= beta_end';
    },
    resolve: (raw, source) => resolveSchedulerConfig(raw, source, SCHEDULER_REQUIRED) as unknown as Record<string, unknown>,
    read: async (_dir, path) => resolveSchedulerConfig(await readJson<unknown>(path), path, SCHEDULER_REQUIRED) as unknown as Record<string, unknown>,
    use: (c, raw) => {
      // every scheduler class builds from it (the pipeline passes the file's fields) and plans 10 steps
      const { _class_name: _n, ...fields } = raw;
      for (const name of SCHEDULERS) {
        try {
          const s = schedulerFromConfig(fields as never, name);
          s.setTimesteps(Math.min(10, c.num_train_timesteps as number));
        } catch (e) {
          // a class may refuse with a clear error of its own; an engine error is a crash
          if (!(e instanceof Error) || [TypeError, RangeError, ReferenceError].some((E) => e.constructor === E)) return `${name} from an accepted config: ${(e as Error).name}: ${(e as Error).message}`;
        }
      }
      return null;
    },
  },
];

const deepEqual = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b) && (typeof a !== 'number' || Object.is(a, b));

/** Null when an accepted config satisfies the independent rules, else the first violation. */
function oracle(kind: Kind, raw: unknown, c: Record<string, unknown>): string | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return `accepted a top level of ${JSON.stringify(raw)}`;
  const r = raw as Record<string, unknown>;
  if (Object.getPrototypeOf(c) !== Object.prototype) return 'the resolved config does not have the plain object prototype (a "__proto__" key replaced it)';
  for (const k of kind.required) if (r[k] === undefined || r[k] === null) return `accepted without the required ${k}`;
  for (const [k, rule] of Object.entries(kind.fields)) {
    if (!Object.prototype.hasOwnProperty.call(r, k) || r[k] === undefined) continue;
    if (!rule(r[k])) return `accepted ${k} = ${JSON.stringify(r[k]) ?? String(r[k])}`;
    if (!deepEqual(c[k], r[k])) return `${k} written as ${JSON.stringify(r[k])} resolved to ${JSON.stringify(c[k])}`;
  }
  return kind.cross(c) ?? kind.use?.(c, r) ?? null;
}

// ------------------------------------------------------------------ the test

const PLAUSIBLE: unknown[] = [
  1, 2, 3, 4, 8, 16, 32, 64, 77, 1000, 0.5, 1e-6, 0.0001, 0.02, 0.012, true, false, null, 'silu', 'gelu', 'linear', 'scaled_linear', 'squaredcos_cap_v2',
  'epsilon', 'v_prediction', 'leading', 'trailing', 'linspace', [4, 8], [8, 16], [8, 16, 16], [2, 4], ['DownBlock2D', 'CrossAttnDownBlock2D'],
  ['UpBlock2D', 'CrossAttnUpBlock2D'], ['DownEncoderBlock2D', 'DownEncoderBlock2D'], ['UpDecoderBlock2D', 'UpDecoderBlock2D'], [0.1, 0.2, 0.3, 0.4],
];

async function fuzzKind(kind: Kind, m: Mutator, n: number, stats: FuzzStats): Promise<void> {
  const keys = [...new Set([...kind.required, ...Object.keys(kind.fields), ...kind.seeds.flatMap((s) => Object.keys(s))])];
  // the seeds are accepted as they are
  for (const s of kind.seeds) assert.is(oracle(kind, s, kind.resolve(structuredClone(s), 'seed')), null, `${kind.name} seed`);
  for (let c = 0; c < n; c++) {
    const seed = m.pick(kind.seeds);
    let text: string;
    if (m.chance(0.3)) {
      // a plausible edit (many of them valid): one field set to a value such files hold
      const o = structuredClone(seed) as Record<string, unknown>;
      o[m.pick(keys)] = m.pick(PLAUSIBLE);
      if (m.chance(0.3)) delete o[m.pick(Object.keys(o))];
      text = JSON.stringify(o);
    } else text = m.jsonText(m.json(seed, keys));
    if (m.chance(0.15)) text = m.text(text);
    const source = `${kind.name} case ${c}`;
    let raw: unknown;
    let parsed = true;
    try {
      raw = JSON.parse(text);
    } catch {
      parsed = false;
    }
    const check = (r: Record<string, unknown>) => oracle(kind, JSON.parse(text), r);
    const field = (e: unknown) => (e instanceof ModelConfigError && e.field !== null && !e.message.includes(e.field) ? `names field "${e.field}" but the message does not` : null);
    if (parsed) {
      const out = await runCase(stats, text, () => kind.resolve(raw, source), { source, check });
      if (out === 'clear') {
        try {
          kind.resolve(JSON.parse(text), source);
        } catch (e) {
          const f = field(e);
          if (f) stats.unclear.push(`${JSON.stringify(text).slice(0, 120)}: ${f}`);
        }
      }
    }
    if (!parsed || c % 4 === 0) {
      const dir = join(tmp, `${kind.name.replace(' ', '-')}-${c}`);
      mkdirSync(dir, { recursive: true });
      const path = join(dir, kind.file);
      writeFileSync(path, text);
      await runCase(stats, text, () => kind.read(dir, path), { source: path, check });
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

test('diffusers config loaders: seeded mutations end as a clear error naming file and field, or a config the rules agree with', async () => {
  const all: FuzzStats[] = [];
  for (const [i, kind] of KINDS.entries()) {
    const stats = newStats(`config ${kind.name}`);
    await fuzzKind(kind, new Mutator(FUZZ_SEED * 104729 + i), cases(1000), stats);
    all.push(stats);
  }
  const failures: string[] = [];
  for (const s of all) {
    try {
      assertClean(s);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  assert.equal(failures, [], failures.join('\n'));
});

test('regression: a "__proto__" key in a config.json stays an ignored key (it replaced the resolved config\'s prototype)', () => {
  for (const kind of KINDS) {
    const text = JSON.stringify(kind.seeds[0]).replace(/^\{/, '{"__proto__":{"injected":1,"norm_eps":"1e-5","algorithm_type":7},');
    const c = kind.resolve(JSON.parse(text), `${kind.name} config`);
    assert.is(Object.getPrototypeOf(c), Object.prototype, kind.name);
    assert.is((c as { injected?: unknown }).injected, undefined, kind.name);
    assert.ok(Object.prototype.hasOwnProperty.call(c, '__proto__'), `${kind.name}: kept as a key`);
  }
});

test('regression: num_train_timesteps is bounded (2^31 passed and the schedulers then allocated arrays of that length until the process was killed)', () => {
  let err: unknown = null;
  try {
    resolveSchedulerConfig({ ...SCHEDULER_SEEDS[0], num_train_timesteps: 2 ** 31 }, 'scheduler_config.json', SCHEDULER_REQUIRED);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ModelConfigError && err.field === 'num_train_timesteps', String(err));
  assert.match((err as Error).message, /^scheduler_config\.json: num_train_timesteps must be a positive integer ≤ 1,000,000, got 2147483648/);
});

test.run();
