// The classifier's images are @foliar/data's RgbImage (re-exported here for existing imports).
export { assertRgbImage, type RgbImage } from '@foliar/data';
