import sharp from 'sharp';
import { tensor, type Tensor, type Backend } from '@foliar/tensor';

/** An RGB image (the same shape as @foliar/nn's RgbImage). */
export interface RgbLike {
  width: number;
  height: number;
  channels?: 3 | 4;
  data: Uint8Array;
}

/** Decodes (JPEG/PNG/WebP…), resizes the short side and centre-crops to size×size, RGB. Errors name the file. */
export async function loadImageSquare(path: string, size: number): Promise<RgbLike> {
  try {
    const { data, info } = await sharp(path).removeAlpha().resize(size, size, { fit: 'cover', position: 'centre' }).raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    throw new Error(`cannot decode image ${path}: ${(e as Error).message}`);
  }
}

export async function resizeSquare(img: RgbLike, size: number): Promise<RgbLike> {
  if (img.width === size && img.height === size && (img.channels ?? 3) === 3) return img;
  const { data, info } = await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: img.channels ?? 3 } })
    .removeAlpha()
    .resize(size, size, { fit: 'cover' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** RGB images → [N, 3, H, W] in [-1, 1] (what the VAE encoder expects). */
export function imagesToTensor(imgs: RgbLike[], backend?: Backend): Tensor {
  const { width: w, height: h } = imgs[0]!;
  const out = new Float32Array(imgs.length * 3 * h * w);
  imgs.forEach((img, n) => {
    const ch = img.channels ?? 3;
    if (img.width !== w || img.height !== h) throw new RangeError(`image ${n} is ${img.width}x${img.height}, expected ${w}x${h}`);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++) out[((n * 3 + c) * h + y) * w + x] = (img.data[(y * w + x) * ch + c]! / 255) * 2 - 1;
  });
  return tensor(out, { shape: [imgs.length, 3, h, w], ...(backend ? { backend } : {}) });
}
