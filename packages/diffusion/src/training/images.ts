// Training images: decoding and resizing live in @foliar/data (one RgbImage for every package);
// `imagesToTensor` puts them on a device as [N, 3, H, W] in [-1, 1].
import { imagesToChw, type RgbImage } from '@foliar/data';
import { tensor, type Tensor, type Backend } from '@foliar/tensor';

export { loadImageSquare, resizeSquare } from '@foliar/data';

/** @deprecated @foliar/data's `RgbImage` (the same type; this alias stays for existing imports). */
export type RgbLike = RgbImage;

/** RGB images → [N, 3, H, W] in [-1, 1] (what the VAE encoder expects). */
export function imagesToTensor(imgs: RgbImage[], backend?: Backend): Tensor {
  const { data, shape } = imagesToChw(imgs);
  return tensor(data, { shape, ...(backend ? { backend } : {}) });
}
