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
};

const SUPPORTED_DOWN = new Set(['DownBlock2D', 'CrossAttnDownBlock2D']);
const SUPPORTED_UP = new Set(['UpBlock2D', 'CrossAttnUpBlock2D']);

/** Fills defaults and rejects what foliar does not implement, naming the field. */
export function resolveUNetConfig(raw: Partial<UNet2DConditionConfig> & Record<string, unknown>, source = 'unet config'): UNet2DConditionConfig {
  const c = { ...UNET_DEFAULTS, ...raw } as UNet2DConditionConfig & Record<string, unknown>;
  for (const t of c.down_block_types) if (!SUPPORTED_DOWN.has(t)) throw new Error(`${source}: down block type '${t}' is not supported`);
  for (const t of c.up_block_types) if (!SUPPORTED_UP.has(t)) throw new Error(`${source}: up block type '${t}' is not supported`);
  if (c.mid_block_type && c.mid_block_type !== 'UNetMidBlock2DCrossAttn') throw new Error(`${source}: mid block '${c.mid_block_type}' is not supported`);
  if (c.act_fn !== 'silu') throw new Error(`${source}: act_fn '${c.act_fn}' is not supported (silu only)`);
  for (const k of ['class_embed_type', 'addition_embed_type', 'encoder_hid_dim', 'time_cond_proj_dim']) {
    if (c[k] !== null && c[k] !== undefined) throw new Error(`${source}: '${k}' = ${JSON.stringify(c[k])} is not supported`);
  }
  if ((c.resnet_time_scale_shift ?? 'default') !== 'default') throw new Error(`${source}: resnet_time_scale_shift '${String(c.resnet_time_scale_shift)}' is not supported`);
  if (c.down_block_types.length !== c.block_out_channels.length || c.up_block_types.length !== c.block_out_channels.length) {
    throw new Error(`${source}: ${c.down_block_types.length} down / ${c.up_block_types.length} up blocks for ${c.block_out_channels.length} block_out_channels`);
  }
  return c;
}

export function perBlock<T>(v: T | T[], n: number): T[] {
  return Array.isArray(v) ? v : Array.from({ length: n }, () => v);
}
