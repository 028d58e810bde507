import { geglu, tidy, type Tensor } from '@foliar/tensor';
import { Module, Linear, LayerNorm, GroupNorm, Conv2d, ModuleList, Dropout } from '@foliar/nn';
import { Attention } from './attention.js';

/** GEGLU: proj to 2×inner, split, hidden · gelu(gate). */
export class GEGLU extends Module {
  proj: Linear;
  constructor(dimIn: number, dimOut: number) {
    super();
    this.proj = this.module('proj', new Linear(dimIn, dimOut * 2));
  }
  forward(x: Tensor): Tensor {
    // one fused kernel each way (the chunk / gelu / mul composition cost 10 dispatches per step)
    return tidy(() => geglu(this.proj.forward(x)));
  }
}

/** diffusers FeedForward with GEGLU: net.0 (GEGLU), net.1 (dropout), net.2 (Linear 4C→C). */
export class FeedForward extends Module {
  net: ModuleList;
  constructor(dim: number, mult = 4) {
    super();
    this.net = this.module('net', new ModuleList<Module>([new GEGLU(dim, dim * mult), new Dropout(0), new Linear(dim * mult, dim)]));
  }
  /** `residual` (x's shape) is added in the output projection's store. */
  forward(x: Tensor, residual?: Tensor | null): Tensor {
    return tidy(() => (this.net.at(2) as Linear).forward((this.net.at(0) as GEGLU).forward(x), residual ?? null));
  }
}

/** diffusers BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward, pre-LayerNorm each. */
export class BasicTransformerBlock extends Module {
  norm1: LayerNorm;
  attn1: Attention;
  norm2: LayerNorm;
  attn2: Attention;
  norm3: LayerNorm;
  ff: FeedForward;
  constructor(dim: number, heads: number, dimHead: number, crossAttentionDim: number) {
    super();
    this.norm1 = this.module('norm1', new LayerNorm(dim));
    this.attn1 = this.module('attn1', new Attention({ queryDim: dim, heads, dimHead }));
    this.norm2 = this.module('norm2', new LayerNorm(dim));
    this.attn2 = this.module('attn2', new Attention({ queryDim: dim, crossAttentionDim, heads, dimHead }));
    this.norm3 = this.module('norm3', new LayerNorm(dim));
    this.ff = this.module('ff', new FeedForward(dim));
  }
  forward(x: Tensor, context: Tensor): Tensor {
    return tidy(() => {
      // each residual is added in the store of the branch's last linear (to_out.0, ff.net.2): no add kernels
      let h = this.attn1.forward(this.norm1.forward(x), null, x);
      h = this.attn2.forward(this.norm2.forward(h), context, h);
      return this.ff.forward(this.norm3.forward(h), h);
    });
  }
}

export interface Transformer2DOptions {
  heads: number;
  dimHead: number;
  inChannels: number;
  layers: number;
  crossAttentionDim: number;
  normGroups: number;
  useLinearProjection: boolean;
}

/** diffusers Transformer2DModel (continuous input): GroupNorm, proj_in, transformer blocks, proj_out, residual. */
export class Transformer2DModel extends Module {
  norm: GroupNorm;
  projIn: Module & { forward(x: Tensor): Tensor };
  transformerBlocks: ModuleList<BasicTransformerBlock>;
  projOut: Module & { forward(x: Tensor, residual?: Tensor | null): Tensor };
  constructor(readonly o: Transformer2DOptions) {
    super();
    const inner = o.heads * o.dimHead;
    this.norm = this.module('norm', new GroupNorm(o.normGroups, o.inChannels, { eps: 1e-6 }));
    this.projIn = this.module('proj_in', o.useLinearProjection ? new Linear(o.inChannels, inner) : new Conv2d(o.inChannels, inner, 1));
    this.transformerBlocks = this.module(
      'transformer_blocks',
      new ModuleList(Array.from({ length: o.layers }, () => new BasicTransformerBlock(inner, o.heads, o.dimHead, o.crossAttentionDim))),
    );
    this.projOut = this.module('proj_out', o.useLinearProjection ? new Linear(inner, o.inChannels) : new Conv2d(inner, o.inChannels, 1));
  }
  forward(x: Tensor, context: Tensor): Tensor {
    return tidy(() => {
      const [b, , h, w] = x.shape as [number, number, number, number];
      let y = this.norm.forward(x);
      const toSeq = (t: Tensor) => t.permute(0, 2, 3, 1).reshape([b, h * w, t.shape[1]!]);
      const toMap = (t: Tensor) => t.reshape([b, h, w, t.shape[2]!]).permute(0, 3, 1, 2);
      y = this.o.useLinearProjection ? this.projIn.forward(toSeq(y)) : toSeq(this.projIn.forward(y));
      for (const blk of this.transformerBlocks) y = blk.forward(y, context);
      // the residual is added in proj_out's store when it is a convolution
      if (this.o.useLinearProjection) return toMap(this.projOut.forward(y)).add(x);
      return this.projOut.forward(toMap(y), x);
    });
  }
}
