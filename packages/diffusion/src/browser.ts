// @foliar/diffusion for browsers (package.json `exports`, condition `browser`): index.ts but training,
// image sets on disk, the random-preset writers and the golden tokenizer check, which need Node.
// Model folders are URLs here (StableDiffusionPipeline.fromPretrained(url), CLIPTokenizer.fromFolder(url)).
// test/browser/entries.test.ts keeps the lists in step.
// @foliar/diffusion public API
export { CLIPTokenizer, parseMerges, type TokenizerOptions, type CallOptions, type Encoding, type AddedTokenSpec } from './tokenizer/clip-tokenizer.js';
export { cleanText, type Cleaning } from './tokenizer/clean.js';
export { htmlUnescape } from './tokenizer/html-entities.js';
export { ftfyLite } from './tokenizer/ftfy-lite.js';
export { bytesToUnicode } from './tokenizer/bytes.js';
export { wordMerges } from './tokenizer/word-merges.js';
export * from './schedulers/index.js';
export { ResnetBlock2D, type ResnetBlockOptions } from './models/blocks/resnet-block.js';
export { Attention, type AttentionOptions } from './models/blocks/attention.js';
export { Transformer2DModel, BasicTransformerBlock, FeedForward, GEGLU, type Transformer2DOptions } from './models/blocks/transformer-2d.js';
export { Downsample2D, Upsample2D } from './models/blocks/sampling.js';
export { TimestepEmbedding, TextTimeEmbedding, AttentionPooling, timestepEmbedding } from './models/blocks/embeddings.js';
export { UNet2DConditionModel } from './models/unet/unet-2d-condition.js';
export { resolveUNetConfig, UNET_DEFAULTS, UNET_REQUIRED, type UNet2DConditionConfig } from './models/unet/config.js';
export { ModelConfigError } from './models/config-schema.js';
export { AutoencoderKL, DiagonalGaussian, VAE_DEFAULTS, VAE_REQUIRED, resolveVAEConfig, type AutoencoderKLConfig, type VaeTilingMode, type VaeTilingInfo, type VaeTilingOptions } from './models/vae/autoencoder-kl.js';
export { CLIPTextModel, CLIP_TEXT_DEFAULTS, CLIP_TEXT_REQUIRED, resolveCLIPTextConfig, type CLIPTextConfig, type CLIPTextOutput } from './models/clip/clip-text-model.js';
export { loadUNet, loadVAE, loadTextEncoder, readUNetConfig, readVAEConfig, readTextEncoderConfig, saveModel, vaeKeyRemap, textEncoderKeyRemap } from './loading/models.js';
export { readJson, weightFiles } from './loading/files.js';
export { StableDiffusionPipeline, type PipelineComponents, type GenerateOptions, type GenerateResult } from './pipelines/stable-diffusion.js';
export { createTinyPipeline, type TinyPipelineOptions } from './pipelines/tiny.js';
export { tensorToImages, NonFiniteImageError } from './images.js';
export { SD15_UNET_CONFIG, SD15_VAE_CONFIG, SD15_TEXT_ENCODER_CONFIG, SD15_SCHEDULER_CONFIG, SD15_TOKENIZER, SD15_PARAMETERS, SD15_SMALL } from './presets/sd15.js';
