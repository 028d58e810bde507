// Generated images as pictures: [B, 3, H, W] tensors → RGB images (refusing NaN/Inf), grids. Used by
// the pipelines, the trainers' validation grids and the CLI (whose PNG grid files are cli/grid-file.ts's).
import { fromFloatCHW, type Raster } from '@foliar/data';
import type { Tensor } from '@foliar/tensor';

/** Images with NaN/Inf pixels: a broken model or config, never to be written as black PNGs. */
export class NonFiniteImageError extends Error {
  override name = 'NonFiniteImageError';
  constructor(
    readonly what: string,
    /** Non-finite values in all. */
    readonly count: number,
    /** Indices of the images that hold any. */
    readonly images: number[],
    readonly total: number,
  ) {
    super(
      `${what}: ${count} non-finite value${count === 1 ? '' : 's'} (NaN/Inf) in ${images.length} of ${total} image${total === 1 ? '' : 's'} (first: image ${images[0]}); ` +
        'nothing written (check the weights, the VAE scaling_factor and the scheduler betas)',
    );
  }
}

/** Images [B, 3, H, W] in [0, 1] → RGB images; any non-finite value is a NonFiniteImageError. */
export async function tensorToImages(images: Tensor, what = 'generated images'): Promise<Raster[]> {
  const [b, c, h, w] = images.shape as [number, number, number, number];
  const data = await images.dataF32();
  const per = c * h * w;
  let count = 0;
  const bad: number[] = [];
  for (let i = 0; i < b; i++) {
    let n = 0;
    for (let j = i * per, end = j + per; j < end; j++) if (!Number.isFinite(data[j]!)) n++;
    if (n) {
      count += n;
      bad.push(i);
    }
  }
  if (count) throw new NonFiniteImageError(what, count, bad, b);
  return Array.from({ length: b }, (_, i) => fromFloatCHW(data.subarray(i * per, (i + 1) * per), c, h, w, '[0,1]'));
}
