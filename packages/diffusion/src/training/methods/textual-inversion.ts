import { join } from 'node:path';
import { noGrad, tidy, keep, copy_, cat, tensor, type Tensor } from '@foliar/tensor';
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
  readonly defaultLearningRate = 5e-4;
  readonly trainsTextEncoder = true;
  private tokenId = -1;
  private frozen: Tensor | null = null;
  /** A view of the new token's row (what trains), kept for the method's lifetime. */
  private row: Tensor | null = null;
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
    this.frozen?.dispose();
    this.row?.dispose();
    this.frozen = keep(noGrad(() => emb.weight.clone()));
    this.row = keep(noGrad(() => emb.weight.narrow(0, this.tokenId, 1)));
    return [emb.weight];
  }

  afterStep(pipe: StableDiffusionPipeline): void {
    const w = pipe.textEncoder.textModel.embeddings.tokenEmbedding.weight;
    const v = w.shape[0]!;
    noGrad(() => tidy(() => {
      // restore every row but the new token's
      if (this.tokenId > 0) copy_(w.narrow(0, 0, this.tokenId), this.frozen!.narrow(0, 0, this.tokenId));
      if (this.tokenId < v - 1) copy_(w.narrow(0, this.tokenId + 1, v - this.tokenId - 1), this.frozen!.narrow(0, this.tokenId + 1, v - this.tokenId - 1));
    }));
  }

  dispose(): void {
    this.frozen?.dispose();
    this.row?.dispose();
    this.frozen = this.row = null;
  }

  stateDict(): Map<string, Tensor> {
    if (!this.row) throw new Error('textual inversion: call attach() first');
    return new Map([[this.opts.token, this.row]]);
  }

  async save(_pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    const row = noGrad(() => this.stateDict().get(this.opts.token)!.contiguous());
    try {
      await saveSafetensors(new Map([[this.opts.token, row]]), join(dir, 'learned_embeds.safetensors'), { metadata: { format: 'pt' } });
    } finally {
      row.dispose();
    }
  }

  async load(pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    const sd = await readSafetensors(join(dir, 'learned_embeds.safetensors'));
    const v = sd.get(this.opts.token);
    if (!v) throw new Error(`${join(dir, 'learned_embeds.safetensors')} has no embedding for '${this.opts.token}' (has: ${[...sd.keys()].join(', ')})`);
    const D = pipe.textEncoder.config.hidden_size;
    if (v.data.length !== D) throw new Error(`${join(dir, 'learned_embeds.safetensors')}: '${this.opts.token}' has ${v.data.length} values, the text encoder's embeddings ${D}`);
    noGrad(() => {
      const src = tensor(v.data, { shape: [1, D], backend: this.row!.backend });
      copy_(this.row!, src);
      src.dispose();
    });
  }
}

