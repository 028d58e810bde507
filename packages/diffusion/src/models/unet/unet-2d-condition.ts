import { cat, tidy, isGradEnabled, profileScope, type Tensor } from '@foliar/tensor';
import { Module, Conv2d, GroupNorm, ModuleList, checkpoint } from '@foliar/nn';
import { ResnetBlock2D } from '../blocks/resnet-block.js';
import { Transformer2DModel } from '../blocks/transformer-2d.js';
import { Downsample2D, Upsample2D } from '../blocks/sampling.js';
import { TimestepEmbedding, TextTimeEmbedding, timestepEmbedding } from '../blocks/embeddings.js';
import { resolveUNetConfig, perBlock, type UNet2DConditionConfig } from './config.js';

/**
 * One (resnet, transformer) layer of a block: under gradient checkpointing its activations are not
 * kept but recomputed during backward (diffusers' enable_gradient_checkpointing granularity).
 */
function layer(checkpointed: boolean, fn: (h: Tensor, temb: Tensor, ctx: Tensor) => Tensor, h: Tensor, temb: Tensor, ctx: Tensor): Tensor {
  return checkpointed && isGradEnabled() ? checkpoint(fn, h, temb, ctx) : tidy(() => fn(h, temb, ctx));
}

/**
 * The blocks receive silu(temb), computed once by the UNet: every resnet's time projection starts
 * with that SiLU (diffusers applies it in each resnet; the values are the same, and one kernel with
 * one gradient replaces a SiLU, its backward and a gradient sum per resnet).
 */
const ACT = { tembActivated: true } as const;

interface BlockCommon {
  temb: number;
  groups: number;
  eps: number;
  cross: number;
  linear: boolean;
}

/** DownBlock2D / CrossAttnDownBlock2D: resnets (+ transformers), optional downsampler. */
export class DownBlock extends Module {
  /** Recompute each layer's activations in backward instead of keeping them. */
  gradientCheckpointing = false;
  resnets: ModuleList<ResnetBlock2D>;
  attentions: ModuleList<Transformer2DModel> | null;
  downsamplers: ModuleList<Downsample2D> | null;
  constructor(inC: number, outC: number, layers: number, attn: { heads: number; tLayers: number } | null, addDownsample: boolean, padding: number, c: BlockCommon) {
    super();
    this.resnets = this.module(
      'resnets',
      new ModuleList(Array.from({ length: layers }, (_, i) => new ResnetBlock2D({ inChannels: i === 0 ? inC : outC, outChannels: outC, tembChannels: c.temb, groups: c.groups, eps: c.eps }))),
    );
    this.attentions = this.module(
      'attentions',
      attn
        ? new ModuleList(
            Array.from({ length: layers }, () =>
              new Transformer2DModel({ heads: attn.heads, dimHead: outC / attn.heads, inChannels: outC, layers: attn.tLayers, crossAttentionDim: c.cross, normGroups: c.groups, useLinearProjection: c.linear }),
            ),
          )
        : null,
    );
    this.downsamplers = this.module('downsamplers', addDownsample ? new ModuleList([new Downsample2D(outC, padding)]) : null);
  }
  /** Returns the block output and the states it hands to the up path (kept by the caller). */
  forward(x: Tensor, temb: Tensor, ctx: Tensor): { out: Tensor; states: Tensor[] } {
    const states: Tensor[] = [];
    let h = x;
    this.resnets.map((r, i) => {
      h = layer(this.gradientCheckpointing, (x0, t, c) => {
        const y = r.forward(x0, t, ACT);
        return this.attentions ? this.attentions.at(i).forward(y, c) : y;
      }, h, temb, ctx);
      states.push(h);
    });
    if (this.downsamplers) {
      h = this.downsamplers.at(0).forward(h);
      states.push(h);
    }
    return { out: h, states };
  }
}

/** UpBlock2D / CrossAttnUpBlock2D: each resnet consumes one skip state (concatenated on channels). */
export class UpBlock extends Module {
  gradientCheckpointing = false;
  resnets: ModuleList<ResnetBlock2D>;
  attentions: ModuleList<Transformer2DModel> | null;
  upsamplers: ModuleList<Upsample2D> | null;
  constructor(inC: number, prevOutC: number, outC: number, layers: number, attn: { heads: number; tLayers: number } | null, addUpsample: boolean, c: BlockCommon) {
    super();
    this.resnets = this.module(
      'resnets',
      new ModuleList(
        Array.from({ length: layers }, (_, j) => {
          const skip = j === layers - 1 ? inC : outC;
          const resIn = j === 0 ? prevOutC : outC;
          return new ResnetBlock2D({ inChannels: resIn + skip, outChannels: outC, tembChannels: c.temb, groups: c.groups, eps: c.eps });
        }),
      ),
    );
    this.attentions = this.module(
      'attentions',
      attn
        ? new ModuleList(
            Array.from({ length: layers }, () =>
              new Transformer2DModel({ heads: attn.heads, dimHead: outC / attn.heads, inChannels: outC, layers: attn.tLayers, crossAttentionDim: c.cross, normGroups: c.groups, useLinearProjection: c.linear }),
            ),
          )
        : null,
    );
    this.upsamplers = this.module('upsamplers', addUpsample ? new ModuleList([new Upsample2D(outC)]) : null);
  }
  forward(x: Tensor, skips: Tensor[], temb: Tensor, ctx: Tensor, upsampleSize?: [number, number]): Tensor {
    let h = x;
    this.resnets.map((r, i) => {
      const skip = skips[skips.length - 1 - i]!;
      const prev = h;
      const joined = cat([prev, skip], 1);
      h = layer(this.gradientCheckpointing, (x0, t, c) => {
        const y = r.forward(x0, t, ACT);
        return this.attentions ? this.attentions.at(i).forward(y, c) : y;
      }, joined, temb, ctx);
      joined.dispose();
      if (prev !== x) prev.dispose();
    });
    if (this.upsamplers) {
      const prev = h;
      h = this.upsamplers.at(0).forward(h, upsampleSize);
      if (prev !== x) prev.dispose();
    }
    return h;
  }
}

/** UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) per layer. */
export class MidBlock extends Module {
  gradientCheckpointing = false;
  resnets: ModuleList<ResnetBlock2D>;
  attentions: ModuleList<Transformer2DModel>;
  constructor(ch: number, heads: number, tLayers: number, scale: number, c: BlockCommon) {
    super();
    const res = () => new ResnetBlock2D({ inChannels: ch, outChannels: ch, tembChannels: c.temb, groups: c.groups, eps: c.eps, outputScaleFactor: scale });
    this.attentions = this.module(
      'attentions',
      new ModuleList([new Transformer2DModel({ heads, dimHead: ch / heads, inChannels: ch, layers: tLayers, crossAttentionDim: c.cross, normGroups: c.groups, useLinearProjection: c.linear })]),
    );
    this.resnets = this.module('resnets', new ModuleList([res(), res()]));
  }
  forward(x: Tensor, temb: Tensor, ctx: Tensor): Tensor {
    return layer(this.gradientCheckpointing, (x0, t, c) => {
      const h = this.attentions.at(0).forward(this.resnets.at(0).forward(x0, t, ACT), c);
      return this.resnets.at(1).forward(h, t, ACT);
    }, x, temb, ctx);
  }
}

/**
 * diffusers UNet2DConditionModel for the SD1.x family, driven by its config.json: any block counts,
 * channels, head settings (attention_head_dim means the number of heads when num_attention_heads is
 * null, as in SD1.x configs), norm groups/eps, conv or linear projections, and latent sizes that are
 * not multiples of 2^(number of upsamplers) (each upsampler targets its skip connection's size).
 */
export class UNet2DConditionModel extends Module {
  readonly config: UNet2DConditionConfig;
  convIn: Conv2d;
  timeEmbedding: TimestepEmbedding;
  /** addition_embed_type 'text': the pooled prompt added to the time embedding. */
  addEmbedding: TextTimeEmbedding | null;
  downBlocks: ModuleList<DownBlock>;
  midBlock: MidBlock | null;
  upBlocks: ModuleList<UpBlock>;
  convNormOut: GroupNorm;
  convOut: Conv2d;

  constructor(config: Partial<UNet2DConditionConfig> & Record<string, unknown> = {}) {
    super();
    const c = (this.config = resolveUNetConfig(config));
    const n = c.block_out_channels.length;
    const boc = c.block_out_channels;
    const heads = perBlock(c.num_attention_heads ?? c.attention_head_dim, n);
    const tLayers = perBlock(c.transformer_layers_per_block, n);
    const tembDim = boc[0]! * 4;
    const common: BlockCommon = { temb: tembDim, groups: c.norm_num_groups, eps: c.norm_eps, cross: c.cross_attention_dim, linear: c.use_linear_projection };
    this.convIn = this.module('conv_in', new Conv2d(c.in_channels, boc[0]!, c.conv_in_kernel, { padding: (c.conv_in_kernel - 1) / 2 }));
    this.timeEmbedding = this.module('time_embedding', new TimestepEmbedding(boc[0]!, tembDim));
    this.addEmbedding = this.module('add_embedding', c.addition_embed_type === 'text' ? new TextTimeEmbedding(c.cross_attention_dim, tembDim, c.addition_embed_type_num_heads) : null);
    let outC = boc[0]!;
    const downs: DownBlock[] = [];
    c.down_block_types.forEach((t, i) => {
      const inC = outC;
      outC = boc[i]!;
      const attn = t === 'CrossAttnDownBlock2D' ? { heads: heads[i]!, tLayers: tLayers[i]! } : null;
      downs.push(new DownBlock(inC, outC, c.layers_per_block, attn, i < n - 1, c.downsample_padding, common));
    });
    this.downBlocks = this.module('down_blocks', new ModuleList(downs));
    this.midBlock = this.module('mid_block', c.mid_block_type ? new MidBlock(boc[n - 1]!, heads[n - 1]!, tLayers[n - 1]!, c.mid_block_scale_factor, common) : null);
    const rev = [...boc].reverse();
    const revHeads = [...heads].reverse();
    const revT = [...tLayers].reverse();
    let upOut = rev[0]!;
    const ups: UpBlock[] = [];
    c.up_block_types.forEach((t, i) => {
      const prevOut = upOut;
      upOut = rev[i]!;
      const inC = rev[Math.min(i + 1, n - 1)]!;
      const attn = t === 'CrossAttnUpBlock2D' ? { heads: revHeads[i]!, tLayers: revT[i]! } : null;
      ups.push(new UpBlock(inC, prevOut, upOut, c.layers_per_block + 1, attn, i < n - 1, common));
    });
    this.upBlocks = this.module('up_blocks', new ModuleList(ups));
    this.convNormOut = this.module('conv_norm_out', new GroupNorm(c.norm_num_groups, boc[0]!, { eps: c.norm_eps }));
    this.convOut = this.module('conv_out', new Conv2d(boc[0]!, c.out_channels, c.conv_out_kernel, { padding: (c.conv_out_kernel - 1) / 2 }));
  }

  /**
   * Activation (gradient) checkpointing per block layer, as diffusers' enable_gradient_checkpointing:
   * backward recomputes each (resnet, transformer) layer instead of keeping its activations, trading
   * about one extra forward for memory. Gradients are the same.
   */
  enableGradientCheckpointing(on = true): this {
    for (const b of [...this.downBlocks, ...this.upBlocks, ...(this.midBlock ? [this.midBlock] : [])]) b.gradientCheckpointing = on;
    return this;
  }

  get isGradientCheckpointing(): boolean {
    return this.downBlocks.at(0).gradientCheckpointing;
  }

  /**
   * sample [B, C, H, W], timesteps (one per batch item, or one for all), context [B, S, D] → predicted noise
   * (or v) [B, out, H, W].
   */
  forward(sample: Tensor, timesteps: number | ArrayLike<number>, context: Tensor): Tensor {
    const B = sample.shape[0]!;
    const ts = typeof timesteps === 'number' ? new Array<number>(B).fill(timesteps) : Array.from(timesteps);
    if (ts.length === 1 && B > 1) while (ts.length < B) ts.push(ts[0]!);
    if (ts.length !== B) throw new RangeError(`UNet: ${ts.length} timesteps for a batch of ${B}`);
    // profiler scopes (ft.profile) per block, named like the state-dict prefixes; free when not profiling
    const temb = profileScope('time_embedding', () =>
      tidy(() => {
        const t = this.timeEmbedding.forward(timestepEmbedding(ts, this.config.block_out_channels[0]!, this.config.flip_sin_to_cos, this.config.freq_shift, sample.backend));
        const add = this.addEmbedding;
        return add ? t.add(add.forward(context)) : t;
      }),
    );
    const tembAct = profileScope('time_embedding', () => temb.silu());
    let h = profileScope('conv_in', () => this.convIn.forward(sample));
    const skips: Tensor[] = [h];
    let i = 0;
    for (const db of this.downBlocks) {
      const r = profileScope(`down_blocks.${i++}`, () => db.forward(h, tembAct, context));
      skips.push(...r.states);
      h = r.out;
    }
    const mid = this.midBlock;
    if (mid) h = profileScope('mid_block', () => mid.forward(h, tembAct, context));
    i = 0;
    for (const ub of this.upBlocks) {
      const k = ub.resnets.length;
      const mine = skips.splice(skips.length - k, k);
      const next = skips[skips.length - 1];
      const size = ub.upsamplers && next ? ([next.shape[2]!, next.shape[3]!] as [number, number]) : undefined;
      const prev = h;
      h = profileScope(`up_blocks.${i++}`, () => ub.forward(prev, mine, tembAct, context, size));
      if (!mine.includes(prev)) prev.dispose();
      for (const s of mine) s.dispose();
    }
    // conv_norm_out, SiLU and conv_out
    const out = profileScope('conv_out', () => tidy(() => this.convOut.forward(this.convNormOut.forwardSilu(h))));
    h.dispose();
    temb.dispose();
    tembAct.dispose();
    for (const s of skips) s.dispose();
    return out;
  }
}
