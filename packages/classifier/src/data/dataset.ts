// Datasets yielding decoded RGB images: the interface the DataLoader consumes, a file-backed
// implementation over a LabeledImageSet, and an in-memory cache wrapper.
import type { RgbImage } from './image.js';
import type { LabeledImageSet } from './layouts.js';
import { decodeImage, type ResizeMode } from './decode.js';

export interface Sample {
  image: RgbImage;
  label: number;
}

/** Anything indexable that yields samples, synchronously or not. */
export interface ImageDataset {
  readonly length: number;
  get(i: number): Promise<Sample> | Sample;
}

export interface ImageFileDatasetOptions {
  /** Decode straight to this size (square side or `[width, height]`); omit to keep the file's size. */
  size?: number | [number, number];
  /** How to reach `size` (default `cover`: shorter side + center crop). */
  mode?: ResizeMode;
  /** Keep decoded (resized) images in memory after the first read (default false). */
  cache?: boolean;
}

/** Images of a LabeledImageSet, decoded with sharp on demand. */
export class ImageFileDataset implements ImageDataset {
  private readonly cacheStore: (Promise<Sample> | undefined)[] | undefined;

  constructor(readonly set: LabeledImageSet, private readonly options: ImageFileDatasetOptions = {}) {
    this.cacheStore = options.cache ? new Array(set.items.length) : undefined;
  }

  get length(): number {
    return this.set.items.length;
  }

  get(i: number): Promise<Sample> {
    if (!(Number.isInteger(i) && i >= 0 && i < this.length)) throw new RangeError(`ImageFileDataset.get: index ${i} outside [0, ${this.length})`);
    const cached = this.cacheStore?.[i];
    if (cached) return cached;
    const item = this.set.items[i];
    const p = decodeImage(item.path, { size: this.options.size, mode: this.options.mode }).then((image) => ({ image, label: item.label }));
    if (this.cacheStore) {
      this.cacheStore[i] = p;
      p.catch(() => { this.cacheStore![i] = undefined; }); // a failed read is retried, not cached
    }
    return p;
  }
}

/**
 * Memoize any dataset's samples in memory. Stores the promise, so concurrent requests for the
 * same index decode once. Callers must not mutate returned images (transforms return new ones).
 */
export function cachedDataset(ds: ImageDataset): ImageDataset {
  const store: (Promise<Sample> | Sample | undefined)[] = new Array(ds.length);
  return {
    get length() { return ds.length; },
    get(i: number) {
      const hit = store[i];
      if (hit !== undefined) return hit;
      const v = ds.get(i);
      store[i] = v;
      if (v instanceof Promise) {
        v.then((s) => { store[i] = s; }, () => { store[i] = undefined; });
      }
      return v;
    },
  };
}
