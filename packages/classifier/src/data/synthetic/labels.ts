/** The Plant Pathology 2020 (FGVC7) classes and the minimal image type the generator returns. */

export const LEAF_CLASSES = ['healthy', 'multiple_diseases', 'rust', 'scab'] as const;
export type LeafLabel = (typeof LEAF_CLASSES)[number];

/** Interleaved 8-bit RGB, row-major (structurally compatible with `RgbImage` from @foliar/nn). */
export interface LeafImage {
  width: number;
  height: number;
  channels: 3;
  data: Uint8Array;
}

/** Image counts per class in the Kaggle Plant Pathology 2020 training set (1,821 images). */
export const PP2020_TRAIN_COUNTS: Readonly<Record<LeafLabel, number>> = {
  healthy: 516,
  multiple_diseases: 91,
  rust: 622,
  scab: 592,
};

export function isLeafLabel(x: unknown): x is LeafLabel {
  return typeof x === 'string' && (LEAF_CLASSES as readonly string[]).includes(x);
}
