import { tensor, tidy, type Tensor, type Backend } from '@foliar/tensor';
import { Module, Linear } from '@foliar/nn';

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
