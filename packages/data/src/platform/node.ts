/**
 * The Node side of @foliar/data's platform port (package.json `imports` "#platform"; browsers get
 * ./browser.ts): files are paths, images are decoded by sharp.
 */
import { readFile } from 'node:fs/promises';

export const PLATFORM = 'node' as const;
export { decodeImage, loadImageSquare, resizeSquare } from '../decode.js';

/** A text file (UTF-8) by path. */
export async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}
