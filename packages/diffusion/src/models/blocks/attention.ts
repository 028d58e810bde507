import { scaledDotProductAttention, tidy, type Tensor } from '@foliar/tensor';
import { Module, Linear, ModuleList, Dropout, GroupNorm } from '@foliar/nn';

export interface AttentionOptions {
  queryDim: number;
  /** Width of the context for cross-attention; null for self-attention. */
  crossAttentionDim?: number | null;
  heads: number;
  dimHead: number;
  /** Bias on to_q/to_k/to_v (false in the UNet, true in the VAE). */
  bias?: boolean;
  /** A GroupNorm applied before attention and a residual after it (the VAE's mid-block attention). */
  normGroups?: number | null;
  normEps?: number;
  residualConnection?: boolean;
  rescaleOutputFactor?: number;
}

/** diffusers Attention (AttnProcessor2_0): projections, multi-head fused attention, output projection. */
export class Attention extends Module {
  groupNorm: GroupNorm | null;
  toQ: Linear;
  toK: Linear;
  toV: Linear;
  toOut: ModuleList;
  readonly heads: number;
  constructor(readonly o: AttentionOptions) {
    super();
    const inner = o.heads * o.dimHead;
    const ctx = o.crossAttentionDim ?? o.queryDim;
    const bias = o.bias ?? false;
    this.heads = o.heads;
    this.groupNorm = this.module('group_norm', o.normGroups ? new GroupNorm(o.normGroups, o.queryDim, { eps: o.normEps ?? 1e-5 }) : null);
    this.toQ = this.module('to_q', new Linear(o.queryDim, inner, { bias }));
    this.toK = this.module('to_k', new Linear(ctx, inner, { bias }));
    this.toV = this.module('to_v', new Linear(ctx, inner, { bias }));
    this.toOut = this.module('to_out', new ModuleList([new Linear(inner, o.queryDim), new Dropout(0)]));
  }

  private split(t: Tensor): Tensor {
    const [b, l, c] = t.shape as [number, number, number];
    return t.reshape([b, l, this.heads, c / this.heads]).transpose(1, 2);
  }

  /**
   * x: [B, L, C] (or [B, C, H, W] for the spatial VAE form); context: [B, S, Cctx]. `extra` (the
   * output's shape) is added to the result, in the output projection's store when it can be.
   */
  forward(x: Tensor, context?: Tensor | null, extra?: Tensor | null): Tensor {
    return tidy(() => {
      const spatial = x.rank === 4;
      const residual = x;
      let h = x;
      const [b, c, hh, ww] = x.shape as [number, number, number, number];
      if (this.groupNorm) h = this.groupNorm.forward(h);
      if (spatial) h = h.reshape([b, c, hh * ww]).transpose(1, 2);
      const ctx = context ?? h;
      const q = this.split(this.toQ.forward(h));
      const k = this.split(this.toK.forward(ctx));
      const v = this.split(this.toV.forward(ctx));
      const a = scaledDotProductAttention(q, k, v);
      const [B, H, L, D] = a.shape as [number, number, number, number];
      const r = this.o.rescaleOutputFactor ?? 1;
      // the caller's residual goes into the projection's store when nothing comes between them
      const fuse = !!extra && !spatial && !this.o.residualConnection && r === 1;
      let out = (this.toOut.at(0) as Linear).forward(a.transpose(1, 2).reshape([B, L, H * D]), fuse ? extra : null);
      if (spatial) out = out.transpose(1, 2).reshape([b, c, hh, ww]);
      if (this.o.residualConnection) out = out.add(residual);
      if (r !== 1) out = out.mul(1 / r);
      return extra && !fuse ? out.add(extra) : out;
    });
  }
}
