/** Atomic PNG files (Node); encoding and decoding in memory are png-codec.ts's. */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Raster, RgbImage } from '@foliar/data';
import { decodePng, encodePng } from './png-codec.js';

export { encodePng, decodePng } from './png-codec.js';

/** Writes `img` as a PNG file atomically (temp file + rename), creating parent folders. */
export function writePng(file: string, img: RgbImage): void {
  const bytes = encodePng(img);
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.floor(Math.random() * 1e9).toString(36)}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export function readPng(file: string): Raster {
  return decodePng(readFileSync(file), file);
}
