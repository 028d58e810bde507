// Batching data loader: deterministic per-(seed, epoch) order, per-sample augmentation streams,
// and prefetching of upcoming batches with bounded concurrency so image decoding (sharp's thread
// pool) overlaps the training step.
import { assertRgbImage } from './image.js';
import { Rng } from './rng.js';
import type { ImageDataset } from './dataset.js';
import { cachedDataset } from './dataset.js';
import type { Sampler } from './split.js';
import { normalizeToChw, IMAGENET_NORMALIZATION, type ImageTransform, type Normalization } from './transforms.js';

export interface Batch {
  /** N*3*H*W, CHW per image, normalized. */
  images: Float32Array;
  labels: Int32Array;
  /** Dataset index of each image. */
  indices: Int32Array;
  /** Batch size N (the last batch may be smaller unless dropLast). */
  size: number;
  height: number;
  width: number;
  epoch: number;
  /** Position of this batch in the epoch. */
  batchIndex: number;
}

export interface DataLoaderOptions {
  batchSize: number;
  /** Output size after `transform` (square side or `[width, height]`); images of another size are an error. */
  imageSize: number | [number, number];
  /** Shuffle each epoch (default true). Ignored when `sampler` is given. */
  shuffle?: boolean;
  /** Base seed for order and augmentation (default 0). */
  seed?: number;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Per-sample transform; gets an RNG keyed by (seed, epoch, position in epoch). */
  transform?: ImageTransform;
  /** Normalization to float (default ImageNet mean/std). */
  normalization?: Normalization;
  /** Custom epoch order (e.g. `classBalancedSampler`), replacing shuffle. */
  sampler?: Sampler;
  /** Number of batches prepared ahead of the one being consumed (default 2). */
  prefetch?: number;
  /** Max samples being loaded/transformed at once across all prefetched batches (default 8). */
  concurrency?: number;
  /** Memoize `dataset.get` results in memory (default false). */
  cache?: boolean;
}

/** Runs at most `limit` async tasks at a time, in submission order. */
class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(task: () => Promise<T> | T): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((res) => this.queue.push(res));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

export class DataLoader {
  readonly dataset: ImageDataset;
  private readonly opts: Required<Omit<DataLoaderOptions, 'transform' | 'sampler' | 'imageSize'>> & Pick<DataLoaderOptions, 'transform' | 'sampler'>;
  readonly width: number;
  readonly height: number;

  constructor(dataset: ImageDataset, options: DataLoaderOptions) {
    if (!(Number.isInteger(options.batchSize) && options.batchSize > 0)) throw new Error(`DataLoader: batchSize must be a positive integer, got ${options.batchSize}`);
    [this.width, this.height] = typeof options.imageSize === 'number' ? [options.imageSize, options.imageSize] : options.imageSize;
    this.dataset = options.cache ? cachedDataset(dataset) : dataset;
    this.opts = {
      batchSize: options.batchSize,
      shuffle: options.shuffle ?? true,
      seed: options.seed ?? 0,
      dropLast: options.dropLast ?? false,
      normalization: options.normalization ?? IMAGENET_NORMALIZATION,
      prefetch: Math.max(0, options.prefetch ?? 2),
      concurrency: Math.max(1, options.concurrency ?? 8),
      cache: options.cache ?? false,
      transform: options.transform,
      sampler: options.sampler,
    };
  }

  /** Dataset indices visited in `epoch`, a pure function of (seed, epoch). */
  order(epoch: number): Int32Array {
    if (this.opts.sampler) {
      const o = this.opts.sampler(epoch);
      for (const i of o) if (!(i >= 0 && i < this.dataset.length)) throw new Error(`DataLoader: sampler returned index ${i} outside [0, ${this.dataset.length})`);
      return o;
    }
    const o = new Int32Array(this.dataset.length);
    for (let i = 0; i < o.length; i++) o[i] = i;
    return this.opts.shuffle ? new Rng(this.opts.seed, 0x0d3e, epoch).shuffle(o) : o;
  }

  /** Number of batches in one epoch. */
  batchesPerEpoch(epoch = 0): number {
    const n = this.opts.sampler ? this.order(epoch).length : this.dataset.length;
    return this.opts.dropLast ? Math.floor(n / this.opts.batchSize) : Math.ceil(n / this.opts.batchSize);
  }

  /**
   * Batches of `epoch`, in order. `fromBatch` skips the first batches without loading them, to
   * resume mid-epoch exactly (augmentations depend only on (seed, epoch, position)).
   */
  async *epoch(epoch: number, options: { fromBatch?: number } = {}): AsyncGenerator<Batch> {
    const order = this.order(epoch);
    const bs = this.opts.batchSize;
    const nBatches = this.opts.dropLast ? Math.floor(order.length / bs) : Math.ceil(order.length / bs);
    const limiter = new Limiter(this.opts.concurrency);
    const pending: Promise<Batch>[] = [];
    let next = Math.max(0, options.fromBatch ?? 0);
    const fill = (): void => {
      while (pending.length <= this.opts.prefetch && next < nBatches) {
        const p = this.loadBatch(order, epoch, next++, limiter);
        p.catch(() => {}); // observed when awaited; avoids unhandled rejections if the consumer stops early
        pending.push(p);
      }
    };
    fill();
    while (pending.length > 0) {
      const batch = await pending.shift()!;
      fill();
      yield batch;
    }
  }

  private async loadBatch(order: Int32Array, epoch: number, b: number, limiter: Limiter): Promise<Batch> {
    const { batchSize, transform, normalization, seed } = this.opts;
    const start = b * batchSize;
    const n = Math.min(batchSize, order.length - start);
    const { width: W, height: H } = this;
    const per = 3 * W * H;
    const images = new Float32Array(n * per);
    const labels = new Int32Array(n);
    const indices = order.slice(start, start + n);
    await Promise.all(
      Array.from({ length: n }, (_, k) =>
        limiter.run(async () => {
          const idx = indices[k];
          const sample = await this.dataset.get(idx);
          const img = transform ? transform(sample.image, new Rng(seed, 0xa06, epoch, start + k)) : sample.image;
          assertRgbImage(img, `sample ${idx}`);
          if (img.width !== W || img.height !== H) {
            throw new Error(`DataLoader: sample ${idx} is ${img.width}x${img.height} after transform, expected ${W}x${H} (set imageSize or add a resize/crop)`);
          }
          if (!(Number.isInteger(sample.label))) throw new Error(`DataLoader: sample ${idx} has non-integer label ${sample.label}`);
          normalizeToChw(img, images, k * per, normalization);
          labels[k] = sample.label;
        }),
      ),
    );
    return { images, labels, indices, size: n, height: H, width: W, epoch, batchIndex: b };
  }
}
