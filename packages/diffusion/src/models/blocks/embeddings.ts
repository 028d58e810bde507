import { tensor, tidy, randn, cat, scaledDotProductAttention, type Tensor, type Backend } from '@foliar/tensor';
import { Module, Linear, LayerNorm } from '@foliar/nn';

/**
 * Sinusoidal timestep embedding as diffusers' get_timestep_embedding: exponent −ln(10000)·i/(half − shift),
 * [sin, cos] or, with flipSinToCos, [cos, sin]. Computed on the host in f64 (timesteps are few) and uploaded.
 */
export function timestepEmbedding(timesteps: ArrayLike<number>, dim: number, flipSinToCos: boolean, shift: number, backend?: Backend): Tensor {
  const half = Math.floor(dim / 2);
  const n = timesteps.length;
  const out = new Float32Array(n * dim);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < half; i++) {
      // torch rounds every step to f32: (−ln 10000 · i) / (half − shift), exp, t · freq
      const e = Math.fround(Math.fround(Math.fround(-Math.log(10000)) * i) / (half - shift));
      const freq = Math.fround(Math.exp(e));
      const arg = Math.fround(timesteps[b]! * freq);
      const s = Math.sin(arg), c = Math.cos(arg);
      out[b * dim + i] = flipSinToCos ? c : s;
      out[b * dim + half + i] = flipSinToCos ? s : c;
    }
  }
  return tensor(out, { shape: [n, dim], ...(backend ? { backend } : {}) });
}

/** diffusers TimestepEmbedding: linear_1 → SiLU → linear_2. */
export class TimestepEmbedding extends Module {
  linear1: Linear;
  linear2: Linear;
  constructor(inChannels: number, timeEmbedDim: number) {
    super();
    this.linear1 = this.module('linear_1', new Linear(inChannels, timeEmbedDim));
    this.linear2 = this.module('linear_2', new Linear(timeEmbedDim, timeEmbedDim));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.linear2.forward(this.linear1.forward(x).silu()));
  }
}

/**
 * diffusers AttentionPooling: one query, the mean of the tokens plus a learned position vector,
 * attends over [that query, tokens…] with `heads` heads (q and k each scaled by dh^-1/4, i.e.
 * softmax(q·k/√dh)); the result, heads concatenated, is one vector per batch item.
 */
export class AttentionPooling extends Module {
  positionalEmbedding: Tensor;
  qProj: Linear;
  kProj: Linear;
  vProj: Linear;
  constructor(readonly heads: number, readonly embedDim: number) {
    super();
    if (embedDim % heads !== 0) throw new RangeError(`AttentionPooling: ${heads} heads do not divide the width ${embedDim}`);
    // diffusers: randn(1, D) / sqrt(D)
    this.positionalEmbedding = this.param('positional_embedding', randn([1, embedDim], { std: 1 / Math.sqrt(embedDim) }));
    this.kProj = this.module('k_proj', new Linear(embedDim, embedDim));
    this.qProj = this.module('q_proj', new Linear(embedDim, embedDim));
    this.vProj = this.module('v_proj', new Linear(embedDim, embedDim));
  }
  /** Module.to() reassigns a moved parameter to the field named by its key: this forwards diffusers' key. */
  set positional_embedding(t: Tensor) {
    this.positionalEmbedding = t;
  }
  /** x [B, L, D] → [B, D]. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [B, L, D] = x.shape as [number, number, number];
      const H = this.heads, dh = D / H;
      const cls = x.mean(1, true).add(this.positionalEmbedding);
      const all = cat([cls, x], 1);
      const split = (t: Tensor, n: number) => t.reshape([B, n, H, dh]).transpose(1, 2);
      const a = scaledDotProductAttention(split(this.qProj.forward(cls), 1), split(this.kProj.forward(all), L + 1), split(this.vProj.forward(all), L + 1));
      return a.reshape([B, D]);
    });
  }
}

/**
 * diffusers TextTimeEmbedding (UNet `addition_embed_type: "text"`): LayerNorm → AttentionPooling →
 * Linear to the time-embedding width → LayerNorm; the UNet adds it to the time embedding.
 */
export class TextTimeEmbedding extends Module {
  norm1: LayerNorm;
  pool: AttentionPooling;
  proj: Linear;
  norm2: LayerNorm;
  constructor(encoderDim: number, timeEmbedDim: number, heads = 64) {
    super();
    this.norm1 = this.module('norm1', new LayerNorm(encoderDim));
    this.pool = this.module('pool', new AttentionPooling(heads, encoderDim));
    this.proj = this.module('proj', new Linear(encoderDim, timeEmbedDim));
    this.norm2 = this.module('norm2', new LayerNorm(timeEmbedDim));
  }
  /** Text hidden states [B, L, D] → [B, timeEmbedDim]. */
  forward(hidden: Tensor): Tensor {
    return tidy(() => this.norm2.forward(this.proj.forward(this.pool.forward(this.norm1.forward(hidden)))));
  }
}
