import type { TrainConfig } from '@foliar/classifier';

/**
 * Classifier training profiles of the experiment scripts.
 * quick: fits in ~15 minutes on a 2-core machine with WebGPU on lavapipe (ResNet18 at 64x64 trains
 * at ~8-10 images/s there): 6 epochs of 26 steps of 32 images (~5,000 images seen), validation on
 * 10% of the pool, 100 held-out test images per class.
 * full: 128x128, 30 whole epochs, early stopping on the mean AUC, 200 test images per class.
 */
export const CLASSIFIER_PROFILES: Record<'quick' | 'full', Partial<TrainConfig>> = {
  quick: { imageSize: 64, epochs: 6, maxStepsPerEpoch: 26, batchSize: 32, evalBatchSize: 64, valFraction: 0.1, testFraction: 0, heldOutTest: 100, warmupEpochs: 1, lr: 0.02, patience: 0 },
  full: { imageSize: 128, epochs: 30, maxStepsPerEpoch: 0, batchSize: 32, evalBatchSize: 64, valFraction: 0.1, testFraction: 0, heldOutTest: 200, warmupEpochs: 1, lr: 0.02, patience: 8 },
};

export type ProfileName = keyof typeof CLASSIFIER_PROFILES;

export function profileOf(name: string | undefined): ProfileName {
  const p = name ?? 'quick';
  if (!(p in CLASSIFIER_PROFILES)) throw new Error(`--profile must be quick or full, got "${p}"`);
  return p as ProfileName;
}

/** Parses an integer flag; undefined stays undefined. */
export function intFlag(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`--${name} must be an integer, got "${v}"`);
  return n;
}
