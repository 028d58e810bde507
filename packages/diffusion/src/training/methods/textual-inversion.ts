import { join } from 'node:path';
import { noGrad, tidy, copy_, setData_, cat, type Tensor } from '@foliar/tensor';
import { saveSafetensors, readSafetensors } from '@foliar/nn';
import type { StableDiffusionPipeline } from '../../pipelines/stable-diffusion.js';
import type { FineTuneMethod } from './method.js';

export interface TextualInversionOptions {
  /** The new token, e.g. '<diseaes-leaf>'. */
  token: string;
  /** An existing word whose embedding initialises the new one (e.g. 'leaf'). */
  initializerToken?: string;
}

/**
 * Textual inversion (Gal et al. 2022): one new token whose embedding is the only thing that trains.
 * The embedding matrix grows by a row; after each optimizer step the other rows are restored (weight
 * decay and momentum would otherwise move them). Saved as `learned_embeds.safetensors` {token: [1, D]}.
 */
export class TextualInversion implements FineTuneMethod {
  readonly name = 'textual-inversion';
  readonly trainsTextEncoder = true;
  private tokenId = -1;
  private frozen: Tensor | null = null;
  constructor(readonly opts: TextualInversionOptions) {}

  attach(pipe: StableDiffusionPipeline): Tensor[] {
    pipe.unet.requiresGrad_(false);
    pipe.vae.requiresGrad_(false);
    pipe.textEncoder.requiresGrad_(false);
    const [id] = pipe.tokenizer.addTokens([this.opts.token]);
    this.tokenId = id!;
    const emb = pipe.textEncoder.textModel.embeddings.tokenEmbedding;
    const old = emb.weight;
    const v = old.shape[0]!;
    if (this.tokenId >= v) {
      // grow the table: existing rows, then the new one initialised from the initializer word
      const init = this.opts.initializerToken ? pipe.tokenizer.encode(this.opts.initializerToken) : [];
      if (this.opts.initializerToken && init.length !== 1) throw new Error(`textual inversion: initializer '${this.opts.initializerToken}' is ${init.length} tokens, not one`);
      const grown = noGrad(() =>
        tidy(() => {
          const extra = init.length ? old.narrow(0, init[0]!, 1) : old.mean(0, true);
          const rows = this.tokenId - v + 1;
          return cat([old, ...new Array<Tensor>(rows).fill(extra)], 0);
        }),
      );
      emb.registerParameter('weight', grown);
      emb.weight = grown;
      old.dispose();
      (pipe.textEncoder.config as { vocab_size: number }).vocab_size = grown.shape[0]!;
    }
    emb.weight.requiresGrad_(true);
    this.frozen = noGrad(() => emb.weight.clone()).alias();
    return [emb.weight];
  }

  afterStep(pipe: StableDiffusionPipeline): void {
    const w = pipe.textEncoder.textModel.embeddings.tokenEmbedding.weight;
    const v = w.shape[0]!;
    noGrad(() => {
      // restore every row but the new token's
      if (this.tokenId > 0) copy_(w.narrow(0, 0, this.tokenId), this.frozen!.narrow(0, 0, this.tokenId));
      if (this.tokenId < v - 1) copy_(w.narrow(0, this.tokenId + 1, v - this.tokenId - 1), this.frozen!.narrow(0, this.tokenId + 1, v - this.tokenId - 1));
    });
  }

  stateDict(pipe: StableDiffusionPipeline): Map<string, Tensor> {
    const w = pipe.textEncoder.textModel.embeddings.tokenEmbedding.weight;
    return new Map([[this.opts.token, w.narrow(0, this.tokenId, 1)]]);
  }

  async save(pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    const sd = this.stateDict(pipe);
    await saveSafetensors(new Map([...sd].map(([k, t]) => [k, t.contiguous()])), join(dir, 'learned_embeds.safetensors'), { metadata: { format: 'pt' } });
  }

  async load(pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    const sd = await readSafetensors(join(dir, 'learned_embeds.safetensors'));
    const v = sd.get(this.opts.token);
    if (!v) throw new Error(`${join(dir, 'learned_embeds.safetensors')} has no embedding for '${this.opts.token}' (has: ${[...sd.keys()].join(', ')})`);
    const w = pipe.textEncoder.textModel.embeddings.tokenEmbedding.weight;
    noGrad(() => {
      const row = w.narrow(0, this.tokenId, 1);
      const src = row.contiguous();
      setData_(src, v.data);
      copy_(row, src);
      src.dispose();
    });
  }
}

