/**
 * A fine-tuning method written from scratch: train only the UNet's cross-attention key/value
 * projections (`attn2.to_k`, `attn2.to_v`), the layers that map text into the image (the idea of
 * Custom Diffusion, Kumari et al. 2023). Everything else stays frozen, the trained weights are a few
 * percent of the UNet, and any foliar trainer (trainDreamBooth, trainTextToImage) can use it.
 */
import { join } from 'node:path';
import { noGrad, setData_, type Tensor } from '@foliar/tensor';
import { Linear, saveSafetensors, readSafetensors } from '@foliar/nn';
import type { FineTuneMethod, StableDiffusionPipeline } from '@foliar/diffusion';

const TARGET = /(^|\.)attn2\.to_[kv]$/;
const FILE = 'cross_attention_kv.safetensors';

export class CrossAttentionKV implements FineTuneMethod {
  readonly name = 'cross-attention-kv';
  /** Custom Diffusion's learning rate. */
  readonly defaultLearningRate = 1e-5;
  /** The text encoder is frozen, so trainers may cache text embeddings. */
  readonly trainsTextEncoder = false;
  private layers = new Map<string, Linear>();

  /** Freezes the pipeline, then unfreezes the K/V projection weights of every cross-attention. */
  attach(pipe: StableDiffusionPipeline): Tensor[] {
    pipe.unet.requiresGrad_(false);
    pipe.vae.requiresGrad_(false);
    pipe.textEncoder.requiresGrad_(false);
    for (const [path, m] of pipe.unet.namedModules()) if (m instanceof Linear && TARGET.test(path)) this.layers.set(path, m);
    if (!this.layers.size) throw new Error('cross-attention-kv: the UNet has no attn2.to_k / attn2.to_v layers');
    return [...this.layers.values()].map((l) => l.weight.requiresGrad_(true));
  }

  /** Trained tensors by their UNet state-dict key (checkpoints, save). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.layers].map(([path, l]) => [`${path}.weight`, l.weight]));
  }

  async save(_pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    await saveSafetensors(this.stateDict(), join(dir, FILE), { metadata: { format: 'pt', method: this.name } });
  }

  /** Loads what `save` wrote into an attached pipeline, naming any missing or mis-sized key. */
  async load(_pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    const file = await readSafetensors(join(dir, FILE));
    noGrad(() => {
      for (const [key, t] of this.stateDict()) {
        const v = file.get(key);
        if (!v) throw new Error(`${join(dir, FILE)} has no '${key}'`);
        if (v.data.length !== t.size) throw new Error(`${join(dir, FILE)}: '${key}' has ${v.data.length} values, expected ${t.size}`);
        setData_(t, v.data);
      }
    });
  }
}
