import { fromFloatCHW, imageGrid, writePng, type RgbImage } from '@foliar/nn';
import type { Tensor } from '@foliar/tensor';

/** Images [B, 3, H, W] in [0, 1] → RGB images. */
export async function tensorToImages(images: Tensor): Promise<RgbImage[]> {
  const [b, c, h, w] = images.shape as [number, number, number, number];
  const data = await images.dataF32();
  return Array.from({ length: b }, (_, i) => fromFloatCHW(data.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, '[0,1]'));
}

export function saveGrid(path: string, images: RgbImage[], labels?: string[], title?: string): void {
  writePng(path, imageGrid(images, { cols: Math.ceil(Math.sqrt(images.length)), ...(labels ? { labels } : {}), ...(title ? { title } : {}) }));
}
