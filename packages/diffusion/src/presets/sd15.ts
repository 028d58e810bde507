/**
 * Stable Diffusion 1.5's published configuration (the diffusers folder `runwayml/stable-diffusion-v1-5`
 * and its text encoder `openai/clip-vit-large-patch14`), value for value, so that a random pipeline
 * built from it has exactly the real model's architecture, parameter names and shapes.
 */

export const SD15_UNET_CONFIG = {
  _class_name: 'UNet2DConditionModel',
  _diffusers_version: '0.6.0',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
} as const;

export const SD15_VAE_CONFIG = {
  _class_name: 'AutoencoderKL',
  _diffusers_version: '0.6.0',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
} as const;

/** transformers' CLIPTextConfig of clip-vit-large-patch14 (its bos/eos/pad ids are the config's legacy values, not the tokenizer's). */
export const SD15_TEXT_ENCODER_CONFIG = {
  _name_or_path: 'openai/clip-vit-large-patch14',
  architectures: ['CLIPTextModel'],
  attention_dropout: 0.0,
  bos_token_id: 0,
  dropout: 0.0,
  eos_token_id: 2,
  hidden_act: 'quick_gelu',
  hidden_size: 768,
  initializer_factor: 1.0,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  model_type: 'clip_text_model',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 1,
  projection_dim: 768,
  torch_dtype: 'float32',
  transformers_version: '4.22.0.dev0',
  vocab_size: 49408,
} as const;

export const SD15_SCHEDULER_CONFIG = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
} as const;

/** The tokenizer folder's settings: CLIP's BPE with <|endoftext|> as pad and unknown token, 77 positions. */
export const SD15_TOKENIZER = { padToken: '<|endoftext|>', unkToken: '<|endoftext|>', modelMaxLength: 77 } as const;

/** Parameters of the real checkpoint's components (diffusers / transformers `num_parameters()`). */
export const SD15_PARAMETERS = { unet: 859_520_964, vae: 83_653_863, text_encoder: 123_060_480 } as const;

/**
 * `sd15-small`: SD 1.5's layout (block types and depths, 512 px images, 64² latents, the full 49,408-token
 * vocabulary) at a fifth of the UNet's widths and a quarter of the VAE's and the text encoder's, so the
 * SD 1.5 code paths (and the GPU script, scripts/gpu) run on a 2-core machine with 128 MiB bindings.
 */
export const SD15_SMALL = {
  unet: { ...SD15_UNET_CONFIG, block_out_channels: [64, 128, 256, 256], cross_attention_dim: 192 },
  vae: { ...SD15_VAE_CONFIG, block_out_channels: [32, 64, 128, 128] },
  textEncoder: { ...SD15_TEXT_ENCODER_CONFIG, hidden_size: 192, intermediate_size: 768, projection_dim: 192 },
} as const;
