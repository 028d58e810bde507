import { blockCountError, checkConfigObject, checkFields, checkUnsupported, configError, rule, withDefaults, type ConfigSchema } from '../config-schema.js';

/** The fields of diffusers' UNet2DConditionModel config.json that foliar implements (SD1.x family). */
export interface UNet2DConditionConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  mid_block_type: string | null;
  block_out_channels: number[];
  layers_per_block: number;
  /** Historically the number of heads in SD1.x configs (see num_attention_heads). */
  attention_head_dim: number | number[];
  num_attention_heads: number | number[] | null;
  cross_attention_dim: number;
  norm_num_groups: number;
  norm_eps: number;
  act_fn: string;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  downsample_padding: number;
  mid_block_scale_factor: number;
  use_linear_projection: boolean;
  transformer_layers_per_block: number | number[];
  conv_in_kernel: number;
  conv_out_kernel: number;
  sample_size?: number;
  /**
   * 'text': diffusers' TextTimeEmbedding (`add_embedding`): the text encoder's hidden states, layer-normed
   * and attention-pooled to one vector, are projected and added to the time embedding, so the prompt
   * reaches every resnet block, not only the cross-attention layers. null: SD1.x (no such path).
   */
  addition_embed_type: 'text' | null;
  /** Heads of add_embedding's attention pooling (diffusers' default 64; must divide cross_attention_dim). */
  addition_embed_type_num_heads: number;
}

export const UNET_DEFAULTS: UNet2DConditionConfig = {
  in_channels: 4,
  out_channels: 4,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  attention_head_dim: 8,
  num_attention_heads: null,
  cross_attention_dim: 768,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  act_fn: 'silu',
  flip_sin_to_cos: true,
  freq_shift: 0,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  use_linear_projection: false,
  transformer_layers_per_block: 1,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  sample_size: 64,
  addition_embed_type: null,
  addition_embed_type_num_heads: 64,
};

const SUPPORTED_DOWN = ['DownBlock2D', 'CrossAttnDownBlock2D'] as const;
const SUPPORTED_UP = ['UpBlock2D', 'CrossAttnUpBlock2D'] as const;

/** Fields without a safe default in a config.json: the model's shape depends on them. */
export const UNET_REQUIRED = ['in_channels', 'out_channels', 'block_out_channels', 'down_block_types', 'up_block_types', 'cross_attention_dim'] as const;

const heads = rule.either(rule.posInt, rule.arrayOf(rule.posInt, 'positive integers'));
const UNET_SCHEMA: ConfigSchema = {
  in_channels: rule.posInt,
  out_channels: rule.posInt,
  down_block_types: rule.arrayOf(rule.oneOf(SUPPORTED_DOWN), SUPPORTED_DOWN.map((t) => `'${t}'`).join(' / ')),
  up_block_types: rule.arrayOf(rule.oneOf(SUPPORTED_UP), SUPPORTED_UP.map((t) => `'${t}'`).join(' / ')),
  mid_block_type: rule.nullable(rule.oneOf(['UNetMidBlock2DCrossAttn'])),
  block_out_channels: rule.arrayOf(rule.posInt, 'positive integers'),
  layers_per_block: rule.posInt,
  attention_head_dim: heads,
  num_attention_heads: rule.nullable(heads),
  cross_attention_dim: rule.posInt,
  norm_num_groups: rule.posInt,
  norm_eps: rule.finitePos,
  act_fn: rule.oneOf(['silu']),
  flip_sin_to_cos: rule.bool,
  freq_shift: rule.finite,
  downsample_padding: rule.nonNegInt,
  mid_block_scale_factor: rule.finite,
  use_linear_projection: rule.bool,
  transformer_layers_per_block: heads,
  conv_in_kernel: rule.oddPosInt,
  conv_out_kernel: rule.oddPosInt,
  sample_size: rule.nullable(rule.posInt),
  upcast_attention: rule.bool, // f32 everywhere: upcasting changes nothing
  addition_embed_type: rule.nullable(rule.oneOf(['text'])),
  addition_embed_type_num_heads: rule.posInt,
};

/** diffusers options foliar does not implement, at the defaults it does. */
const UNET_UNSUPPORTED: Readonly<Record<string, unknown>> = {
  class_embed_type: null, encoder_hid_dim: null, encoder_hid_dim_type: null, time_cond_proj_dim: null,
  num_class_embeds: null, class_embeddings_concat: false, resnet_time_scale_shift: 'default', center_input_sample: false,
  only_cross_attention: false, dual_cross_attention: false, resnet_skip_time_act: false, resnet_out_scale_factor: 1,
  time_embedding_type: 'positional', time_embedding_dim: null, time_embedding_act_fn: null, timestep_post_act: null,
  cross_attention_norm: null, attention_type: 'default', mid_block_only_cross_attention: null,
  reverse_transformer_layers_per_block: null,
};

/**
 * Validates (types, ranges, lengths, unsupported options), then fills defaults. `required` lists the
 * fields a config.json must set (code may rely on the defaults); errors name `source` and the field.
 */
export function resolveUNetConfig(raw: unknown, source = 'unet config', required: readonly string[] = []): UNet2DConditionConfig {
  const r = checkConfigObject(raw, source, required);
  checkFields(r, UNET_SCHEMA, source);
  checkUnsupported(r, UNET_UNSUPPORTED, source);
  const c = withDefaults(UNET_DEFAULTS, r);
  const n = c.block_out_channels.length;
  if (c.down_block_types.length !== n || c.up_block_types.length !== n) throw blockCountError(source, c.down_block_types.length, c.up_block_types.length, n);
  for (const k of ['attention_head_dim', 'num_attention_heads', 'transformer_layers_per_block'] as const) {
    const v = c[k];
    if (Array.isArray(v) && v.length !== n) throw configError(source, k, `${k} has ${v.length} entries for ${n} block_out_channels`);
  }
  if (c.addition_embed_type === 'text' && c.cross_attention_dim % c.addition_embed_type_num_heads !== 0) {
    throw configError(source, 'addition_embed_type_num_heads', `addition_embed_type_num_heads ${c.addition_embed_type_num_heads} does not divide cross_attention_dim ${c.cross_attention_dim} (the text pooling splits it into heads)`);
  }
  const g = c.norm_num_groups;
  const badGroup = c.block_out_channels.find((ch) => ch % g !== 0);
  if (badGroup !== undefined) throw configError(source, 'norm_num_groups', `norm_num_groups ${g} does not divide block_out_channels entry ${badGroup} (GroupNorm needs whole groups)`);
  return c;
}

export function perBlock<T>(v: T | T[], n: number): T[] {
  return Array.isArray(v) ? v : Array.from({ length: n }, () => v);
}
