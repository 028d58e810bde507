/**
 * Shared fixtures of the diffusion tests: a very small SD-shaped pipeline (fast on two CPU cores),
 * synthetic leaf images, and diffusers' scaled_linear ᾱ table computed here in f64 from the formula
 * (independent of the library's scheduler code).
 */
import { renderLeaf } from '@foliar/classifier';
import { createTinyPipeline, type StableDiffusionPipeline, type TinyPipelineOptions, type RgbLike } from '@foliar/diffusion';

/** Text length of the tiny pipelines: short prompts, so the text encoder stays cheap. */
export const TINY_TEXT_LENGTH = 16;

/** A tiny pipeline: UNet [8, 16], VAE [8, 16], a 2-layer 16-wide text encoder; 16 px images → 8×8 latents. */
export function tinyPipeline(o: TinyPipelineOptions = {}): StableDiffusionPipeline {
  const pipe = createTinyPipeline({
    seed: o.seed ?? 0,
    unet: { block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, attention_head_dim: 4, sample_size: 8, cross_attention_dim: 16, ...o.unet },
    vae: { block_out_channels: [8, 16], norm_num_groups: 4, sample_size: 16, ...o.vae },
    textEncoder: { hidden_size: 16, num_hidden_layers: 2, intermediate_size: 24, num_attention_heads: 2, max_position_embeddings: TINY_TEXT_LENGTH, ...o.textEncoder },
    ...(o.scheduler ? { scheduler: o.scheduler } : {}),
  });
  pipe.tokenizer.modelMaxLength = TINY_TEXT_LENGTH;
  return pipe;
}

/** Synthetic leaf photos (the classifier's procedural renderer). */
export function leafImages(n: number, size: number, label: 'healthy' | 'multiple_diseases' | 'rust' | 'scab' = 'rust', seed0 = 1): RgbLike[] {
  return Array.from({ length: n }, (_, i) => {
    const img = renderLeaf({ label, seed: seed0 + i, width: size, height: size });
    return { width: img.width, height: img.height, channels: 3 as const, data: img.data };
  });
}

/** diffusers' scaled_linear schedule in f64: β = linspace(√β0, √β1, T)², ᾱ = ∏(1 − β). */
export function scaledLinearAlphas(T = 1000, b0 = 0.00085, b1 = 0.012): number[] {
  const out: number[] = [];
  let acc = 1;
  for (let i = 0; i < T; i++) {
    const s = Math.sqrt(b0) + ((Math.sqrt(b1) - Math.sqrt(b0)) * i) / (T - 1);
    acc *= 1 - s * s;
    out.push(acc);
  }
  return out;
}

/** σ(t) = √((1−ᾱ)/ᾱ), linearly interpolated at fractional t (np.interp over the training table). */
export function sigmaAt(alphas: number[], t: number): number {
  const sig = (i: number) => Math.sqrt((1 - alphas[i]!) / alphas[i]!);
  const i = Math.floor(t), f = t - i;
  if (i >= alphas.length - 1) return sig(alphas.length - 1);
  return sig(i) * (1 - f) + sig(i + 1) * f;
}
