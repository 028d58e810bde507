import { interpolate, tidy, type Tensor } from '@foliar/tensor';
import { Module, Conv2d } from '@foliar/nn';

/**
 * diffusers Downsample2D with use_conv: a stride-2 3x3 conv. With padding 0 (the VAE encoder) the
 * input is first padded asymmetrically (0, 1, 0, 1), as diffusers does.
 */
export class Downsample2D extends Module {
  conv: Conv2d;
  constructor(
    channels: number,
    readonly padding: number,
    outChannels = channels,
  ) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, outChannels, 3, { stride: 2, padding }));
  }
  forward(x: Tensor): Tensor {
    if (this.padding !== 0) return this.conv.forward(x);
    return tidy(() => this.conv.forward(x.pad([0, 1, 0, 1])));
  }
}

/** diffusers Upsample2D with use_conv: nearest ×2 (or to an explicit size), then a 3x3 conv. */
export class Upsample2D extends Module {
  conv: Conv2d;
  constructor(channels: number, outChannels = channels) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, outChannels, 3, { padding: 1 }));
  }
  forward(x: Tensor, size?: [number, number]): Tensor {
    return tidy(() => this.conv.forward(interpolate(x, size ? { size, mode: 'nearest' } : { scaleFactor: 2, mode: 'nearest' })));
  }
}
