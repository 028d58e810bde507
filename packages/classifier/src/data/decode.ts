// Decoding with sharp lives in @foliar/data (re-exported here for existing imports).
export { decodeImage, ImageDecodeError, type DecodeOptions, type ResizeMode } from '@foliar/data';
