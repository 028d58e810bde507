import { manualSeed } from '@foliar/tensor';
import { CLIPTokenizer } from '../tokenizer/clip-tokenizer.js';
import { wordMerges } from '../tokenizer/word-merges.js';
import { CLIPTextModel, type CLIPTextConfig } from '../models/clip/clip-text-model.js';
import { AutoencoderKL, type AutoencoderKLConfig } from '../models/vae/autoencoder-kl.js';
import { UNet2DConditionModel } from '../models/unet/unet-2d-condition.js';
import type { UNet2DConditionConfig } from '../models/unet/config.js';
import { schedulerFromConfig, type SchedulerConfig } from '../schedulers/index.js';
import { StableDiffusionPipeline } from './stable-diffusion.js';

export interface TinyPipelineOptions {
  seed?: number;
  unet?: Partial<UNet2DConditionConfig>;
  vae?: Partial<AutoencoderKLConfig>;
  textEncoder?: Partial<CLIPTextConfig>;
  scheduler?: Partial<SchedulerConfig> & { _class_name?: string };
  /** Words the tokenizer keeps whole, one token each (`wordMerges`); absent: every byte is a token. */
  words?: string[];
}

/**
 * A randomly initialised SD1.x-shaped pipeline (the shape of diffusers' test "dummy components"), with
 * a byte-level tokenizer (whole-word tokens for `words`): everything a test or a demo needs, created offline. Save it with `save(dir)`.
 */
export function createTinyPipeline(o: TinyPipelineOptions = {}): StableDiffusionPipeline {
  manualSeed(o.seed ?? 0);
  const tokenizer = CLIPTokenizer.byteLevel(o.words?.length ? wordMerges(o.words) : []);
  const textEncoder = new CLIPTextModel({
    vocab_size: tokenizer.vocabSize,
    hidden_size: 32,
    intermediate_size: 37,
    num_hidden_layers: 5,
    num_attention_heads: 4,
    max_position_embeddings: 77,
    hidden_act: 'quick_gelu',
    eos_token_id: tokenizer.eosTokenId,
    bos_token_id: tokenizer.bosTokenId,
    pad_token_id: tokenizer.padTokenId,
    ...o.textEncoder,
  });
  // prompts are padded to the tokenizer's length: it must fit the text encoder's positions
  tokenizer.modelMaxLength = Math.min(tokenizer.modelMaxLength, textEncoder.config.max_position_embeddings);
  const vae = new AutoencoderKL({
    block_out_channels: [32, 64],
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
    latent_channels: 4,
    layers_per_block: 1,
    norm_num_groups: 32,
    sample_size: 64,
    ...o.vae,
  });
  const unet = new UNet2DConditionModel({
    block_out_channels: [32, 64],
    layers_per_block: 2,
    sample_size: 32,
    in_channels: 4,
    out_channels: 4,
    down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'],
    cross_attention_dim: textEncoder.config.hidden_size,
    attention_head_dim: 8,
    norm_num_groups: 32,
    ...o.unet,
  });
  const scheduler = schedulerFromConfig({
    _class_name: 'DDIMScheduler',
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    clip_sample: false,
    set_alpha_to_one: false,
    steps_offset: 1,
    ...o.scheduler,
  });
  return new StableDiffusionPipeline({ tokenizer, textEncoder, vae, unet, scheduler });
}
