/**
 * The browser side of @foliar/diffusion's platform port (package.json `imports` "#platform",
 * condition `browser`): a model folder is a URL (absolute, or relative to the page), read with
 * `fetch`. A folder cannot be listed over HTTP, so weight files are found by their conventional
 * names (loading/files.ts). Writing model folders needs Node.
 */
import type * as NodePlatform from './node.js';

export const PLATFORM = 'browser' as const;

/** Joins URL pieces with single slashes (`a/` + `b` = `a/b`; `..` is left to the server). */
export const joinPath: typeof NodePlatform.joinPath = (...parts) =>
  parts.filter((p) => p !== '').map((p, i) => (i === 0 ? p.replace(/\/+$/, '') : p.replace(/^\/+|\/+$/g, ''))).join('/');

class FetchError extends Error {
  constructor(readonly url: string, readonly code: string, message: string) {
    super(message);
  }
}

async function get(url: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new FetchError(url, 'EFETCH', `cannot fetch ${url}: ${(e as Error).message}`);
  }
  if (res.status === 404) throw new FetchError(url, 'ENOENT', `${url}: file not found (HTTP 404)`);
  if (!res.ok) throw new FetchError(url, 'EHTTP', `cannot fetch ${url}: HTTP ${res.status}`);
  return res;
}

export const readBytes: typeof NodePlatform.readBytes = async (url) => new Uint8Array(await (await get(url)).arrayBuffer());
export const readText: typeof NodePlatform.readText = async (url) => (await get(url)).text();

/** Whether the server has the file (a HEAD request answered 2xx). */
export const fileExists: typeof NodePlatform.fileExists = async (url) => {
  try {
    const res = await fetch(url, { method: 'HEAD' });
    return res.ok;
  } catch {
    return false;
  }
};

/** HTTP has no folder listing. */
export const listDir: typeof NodePlatform.listDir = async () => null;

export const gunzip: typeof NodePlatform.gunzip = async (bytes) => {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
};

const noWrite = (path: string): Error => new Error(`cannot write ${path}: a browser has no file system (save model folders in Node; weights as bytes: serializeSafetensors)`);
export const mkdirp: typeof NodePlatform.mkdirp = async (path) => {
  throw noWrite(path);
};
export const writeFileAtomic: typeof NodePlatform.writeFileAtomic = async (path) => {
  throw noWrite(path);
};

/**
 * `rel` (a name from a data file, e.g. a shard in a weights index) as a URL inside the folder URL
 * `root`; refused like Node's resolveInside when it is empty, absolute, has a scheme, a NUL, a
 * backslash or a `..` segment.
 */
export const resolveInside: typeof NodePlatform.resolveInside = (root, rel, what) => {
  const shown = JSON.stringify(rel);
  if (typeof rel !== 'string' || rel === '') throw new Error(`${what}: empty path`);
  if (rel.includes('\0') || rel.includes('\\')) throw new Error(`${what}: path ${shown} holds a NUL byte or a backslash`);
  if (rel.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(rel)) throw new Error(`${what}: path ${shown} is absolute`);
  const segs = rel.split('/').filter((s) => s !== '' && s !== '.');
  if (!segs.length || segs.includes('..')) throw new Error(`${what}: path ${shown} leaves ${root}`);
  return joinPath(root, segs.join('/'));
};
