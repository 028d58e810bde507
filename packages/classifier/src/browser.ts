// @foliar/classifier for browsers (package.json `exports`, condition `browser`): the models, the
// study's metrics, the procedural leaves, image transforms and a trained model file loaded from bytes
// or a URL (loadModelBytes, fetchModel, classifyImages). Dataset folders, training, checkpoints and
// the CLI need Node (index.ts). test/browser/entries.test.ts keeps the lists in step.
export * from './models/resnet.js';
export * from './metrics/index.js';
export {
  LEAF_CLASSES, PP2020_TRAIN_COUNTS, isLeafLabel, renderLeaf, syntheticLeafDataset,
  type LeafLabel, type LeafImage, type RenderLeafOptions, type SyntheticLeafDataset, type SyntheticLeafOptions, type LeafSample,
} from './data/synthetic/index.js';
export * from './data/transforms.js';
export { Rng, hashKey } from './data/rng.js';
export { decodeImage, ImageDecodeError, type DecodeOptions, type ResizeMode } from './data/decode.js';
export { TinyResNet, buildModel, ARCHS, type Arch, type Classifier } from './train/model.js';
export { parseModelInfo, type ModelInfo } from './train/model-bytes.js';
export { META_KEY as MODEL_FILE_META_KEY, loadModelBytes, fetchModel, classifyImages } from './train/model-bytes.js';
