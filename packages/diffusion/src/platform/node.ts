/**
 * The Node side of @foliar/diffusion's platform port (package.json `imports` "#platform"; browsers
 * get ./browser.ts): model folders are paths on disk.
 */
import { readFile, readdir, mkdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic as writeAtomic } from '@foliar/tensor';

export const PLATFORM = 'node' as const;

/** Joins path pieces (a folder and names inside it). */
export function joinPath(...parts: string[]): string {
  return join(...parts);
}

/** A file's bytes; a missing file throws an error with code 'ENOENT'. */
export async function readBytes(path: string): Promise<Uint8Array> {
  return readFile(path);
}

/** A UTF-8 text file; a missing file throws an error with code 'ENOENT'. */
export async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

export async function fileExists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** The names in a folder; null where a folder cannot be listed (a browser); a missing folder throws. */
export async function listDir(path: string): Promise<string[] | null> {
  return readdir(path);
}

/** gzip-compressed bytes, decompressed. */
export async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  return gunzipSync(bytes);
}

export async function mkdirp(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
}

/** Writes a file atomically (temporary file renamed into place). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  return writeAtomic(path, data);
}

export { resolveInside } from '@foliar/tensor';
