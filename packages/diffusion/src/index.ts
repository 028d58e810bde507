// @foliar/diffusion public API
export * from './tokenizer/index.js';
export * from './schedulers/index.js';
export { ResnetBlock2D, type ResnetBlockOptions } from './models/blocks/resnet-block.js';
export { Attention, type AttentionOptions } from './models/blocks/attention.js';
export { Transformer2DModel, BasicTransformerBlock, FeedForward, GEGLU, type Transformer2DOptions } from './models/blocks/transformer-2d.js';
export { Downsample2D, Upsample2D } from './models/blocks/sampling.js';
export { TimestepEmbedding, timestepEmbedding } from './models/blocks/embeddings.js';
export { UNet2DConditionModel } from './models/unet/unet-2d-condition.js';
export { resolveUNetConfig, UNET_DEFAULTS, type UNet2DConditionConfig } from './models/unet/config.js';
export { AutoencoderKL, DiagonalGaussian, VAE_DEFAULTS, type AutoencoderKLConfig } from './models/vae/autoencoder-kl.js';
export { CLIPTextModel, CLIP_TEXT_DEFAULTS, type CLIPTextConfig, type CLIPTextOutput } from './models/clip/clip-text-model.js';
export { loadUNet, loadVAE, loadTextEncoder, saveModel, vaeKeyRemap, textEncoderKeyRemap } from './loading/models.js';
export { readJson, weightFiles } from './loading/files.js';
export { StableDiffusionPipeline, type PipelineComponents, type GenerateOptions, type GenerateResult } from './pipelines/stable-diffusion.js';
export { createTinyPipeline, type TinyPipelineOptions } from './pipelines/tiny.js';
export { generateImageSet, imageSetFile, type ImageSetOptions, type ImageSetResult } from './pipelines/image-set.js';
export * from './training/index.js';
