/** Renders one procedural apple-leaf photograph for a class label and seed. */
import { isLeafLabel, LEAF_CLASSES, type LeafImage, type LeafLabel } from './labels.js';
import { rasterize } from './render.js';
import { sampleScene } from './scene.js';

export interface RenderLeafOptions {
  label: LeafLabel;
  /** Any integer; the same (label, seed) gives the same picture at every size. */
  seed: number;
  width: number;
  height: number;
}

/**
 * A synthetic leaf photo: a leaf filling much of the frame over foliage, grass or soil, with
 * rust (orange spots, yellow halos), scab (olive-black irregular patches), both, or neither.
 * The leaf, background and lighting depend on the seed only, so the same seed under two labels
 * shows the same leaf with different disease marks.
 */
export function renderLeaf(opts: RenderLeafOptions): LeafImage {
  const { label, seed, width, height } = opts;
  if (!isLeafLabel(label)) throw new RangeError(`renderLeaf: unknown label '${String(label)}' (expected one of ${LEAF_CLASSES.join(', ')})`);
  if (!Number.isInteger(seed)) throw new RangeError(`renderLeaf: seed must be an integer, got ${seed}`);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width * height > 1 << 26) {
    throw new RangeError(`renderLeaf: size must be positive integers (at most 64 Mpixel), got ${width}x${height}`);
  }
  return rasterize(sampleScene(label, seed, width / height), width, height);
}
