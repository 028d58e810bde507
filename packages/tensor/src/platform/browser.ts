/**
 * The browser side of @foliar/tensor's platform port (package.json `imports` "#platform", condition
 * `browser`): the same functions as ./node.ts with no Node built-in and no Dawn binding. Files are
 * URLs, read with `fetch`.
 */
import { loadSafetensors, type SafetensorsReader } from '../io/safetensors-buffer.js';
import { NoAdapterError } from '../device/errors.js';
import type * as NodePlatform from './node.js';

export const PLATFORM = 'browser' as const;

/** No Dawn binding in a browser: WebGPU is `navigator.gpu` or nothing. */
export const nodeGpu: typeof NodePlatform.nodeGpu = async () => {
  throw new NoAdapterError(
    'This browser exposes no WebGPU (navigator.gpu is undefined). Use a browser with WebGPU ' +
      '(Chrome/Edge 113+, Safari 26+, Firefox 141+ on Windows; Chromium on Linux: --enable-unsafe-webgpu), ' +
      'or init({ backend: "cpu" }).',
  );
};

/** A software adapter in a browser (SwiftShader) computes on about as many threads as the page sees cores. */
export const softwareThreads: typeof NodePlatform.softwareThreads = () => globalThis.navigator?.hardwareConcurrency || 4;

/** Fetches `url` as bytes; the error names the URL and the HTTP status. */
export async function fetchBytes(url: string, what = 'file'): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${what} ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`cannot fetch ${what} ${url}: HTTP ${res.status}${res.status === 404 ? ' (file not found)' : ''}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Opens a safetensors file by URL: fetched whole, then read tensor by tensor from memory. */
export const openSafetensors: typeof NodePlatform.openSafetensors = async (url) => loadSafetensors(await fetchBytes(url, 'safetensors file'), url);


/** A browser has no file to write into: serialise with serializeSafetensors and hand the bytes on (a download, IndexedDB). */
export const writeSafetensorsTo: typeof NodePlatform.writeSafetensorsTo = async (path) => {
  throw new Error(`cannot write ${path}: a browser has no file system; serialise with serializeSafetensors() and save the bytes yourself`);
};
