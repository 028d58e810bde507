import { tidy, type Tensor } from '@foliar/tensor';
import { Module, Conv2d, GroupNorm, Linear } from '@foliar/nn';

export interface ResnetBlockOptions {
  inChannels: number;
  outChannels: number;
  /** Time-embedding width; null in the VAE (no time conditioning). */
  tembChannels: number | null;
  groups: number;
  eps: number;
  outputScaleFactor?: number;
}

/** diffusers ResnetBlock2D (time_embedding_norm "default"): GN → SiLU → conv, + temb, GN → SiLU → conv, + shortcut. */
export class ResnetBlock2D extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  timeEmbProj: Linear | null;
  norm2: GroupNorm;
  conv2: Conv2d;
  convShortcut: Conv2d | null;
  readonly outputScaleFactor: number;
  constructor(o: ResnetBlockOptions) {
    super();
    this.norm1 = this.module('norm1', new GroupNorm(o.groups, o.inChannels, { eps: o.eps }));
    this.conv1 = this.module('conv1', new Conv2d(o.inChannels, o.outChannels, 3, { padding: 1 }));
    this.timeEmbProj = this.module('time_emb_proj', o.tembChannels ? new Linear(o.tembChannels, o.outChannels) : null);
    this.norm2 = this.module('norm2', new GroupNorm(o.groups, o.outChannels, { eps: o.eps }));
    this.conv2 = this.module('conv2', new Conv2d(o.outChannels, o.outChannels, 3, { padding: 1 }));
    this.convShortcut = this.module('conv_shortcut', o.inChannels !== o.outChannels ? new Conv2d(o.inChannels, o.outChannels, 1) : null);
    this.outputScaleFactor = o.outputScaleFactor ?? 1;
  }
  /**
   * `tembActivated`: temb is already silu(temb) (the UNet computes it once for all its blocks rather
   * than once per block, as diffusers does; the same values).
   */
  forward(x: Tensor, temb?: Tensor | null, opts: { tembActivated?: boolean } = {}): Tensor {
    return tidy(() => {
      // GN → SiLU fused (one kernel each way)
      // the time embedding (one value per image and channel) is added in conv1's store
      let tAdd: Tensor | null = null;
      if (this.timeEmbProj && temb) {
        const t = this.timeEmbProj.forward(opts.tembActivated ? temb : temb.silu());
        tAdd = t.reshape([t.shape[0]!, t.shape[1]!, 1, 1]).expand([x.shape[0]!, t.shape[1]!, x.shape[2]!, x.shape[3]!]);
      }
      const h = this.conv1.forward(this.norm1.forwardSilu(x), tAdd);
      const skip = this.convShortcut ? this.convShortcut.forward(x) : x;
      // the skip is added in conv2's store (one kernel, not a convolution and an add)
      const out = this.conv2.forward(this.norm2.forwardSilu(h), skip);
      return this.outputScaleFactor === 1 ? out : out.mul(1 / this.outputScaleFactor);
    });
  }
}
