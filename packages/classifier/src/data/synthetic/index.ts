// Procedural apple-leaf photos (Plant Pathology 2020 classes): the dataset that needs no download.
export { LEAF_CLASSES, PP2020_TRAIN_COUNTS, isLeafLabel, type LeafLabel, type LeafImage } from './labels.js';
export { renderLeaf, type RenderLeafOptions } from './leaf.js';
export {
  syntheticLeafDataset, type SyntheticLeafDataset, type SyntheticLeafOptions, type LeafSample,
} from './dataset.js';
export { Rng, hashSeed, mix32 } from './prng.js';
