// @foliar/classifier public API
export * from './models/resnet.js';
export * from './data/index.js';
export * from './metrics/index.js';
// the synthetic generator's own PRNG stays internal (data/ exports the loader's Rng)
export {
  LEAF_CLASSES, PP2020_TRAIN_COUNTS, isLeafLabel, renderLeaf, syntheticLeafDataset,
  type LeafLabel, type LeafImage, type RenderLeafOptions, type SyntheticLeafDataset, type SyntheticLeafOptions, type LeafSample,
} from './data/synthetic/index.js';
export * from './train/index.js';
