import { embedding, type Tensor } from '@foliar/tensor';
import { Module } from '../module.js';
import { normal, type InitOptions } from '../init.js';

/** Lookup table [numEmbeddings, dim]; initialised N(0, 1) like PyTorch. */
export class Embedding extends Module {
  weight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    opts: InitOptions = {},
  ) {
    super();
    this.weight = this.param('weight', normal([numEmbeddings, embeddingDim], 1, opts));
  }
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}
