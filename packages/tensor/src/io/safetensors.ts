/**
 * safetensors files on disk (Node). Opening reads only the 8-byte length and the header; each tensor
 * is then read with positioned reads of its own byte range, so multi-gigabyte files never need one
 * huge buffer. Writing streams tensor by tensor into a temporary file renamed into place.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { openAtomic } from './atomic.js';
import { SafetensorsIndex, tensorList, type TensorsToWrite } from './safetensors-buffer.js';
import { checkTensorData, decodeSafetensorsData, encodeSafetensorsData, type SafetensorsData, type SafetensorsReadAs, type SafetensorsReadOptions, type SafetensorsTensor } from './safetensors-codec.js';
import { buildSafetensorsHeader, parseHeaderLength, parseSafetensorsHeader, SafetensorsError, type BuiltHeader, type SafetensorsHeader } from './safetensors-format.js';

export * from './safetensors-format.js';
export * from './safetensors-codec.js';
export * from './safetensors-buffer.js';

/** Node caps one read/write call below 2 GiB; larger ranges go in pieces. */
const IO_PIECE = 1 << 30;

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SafetensorsError(path, code === 'ENOENT' ? 'file not found' : `cannot open (${(e as Error).message})`);
  }
}

/** Fills `into` from `position`, looping over short reads. */
async function readFully(fh: FileHandle, into: Uint8Array, position: number, path: string, what: string): Promise<void> {
  let off = 0;
  while (off < into.length) {
    const { bytesRead } = await fh.read(into, off, Math.min(IO_PIECE, into.length - off), position + off);
    if (bytesRead === 0) throw new SafetensorsError(path, `unexpected end of file at byte ${position + off} while reading ${what} (file truncated since it was opened?)`);
    off += bytesRead;
  }
}

async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size } = await fh.stat();
  const prefix = new Uint8Array(8);
  if (size >= 8) await readFully(fh, prefix, 0, path, 'the header length');
  const n = parseHeaderLength(prefix, size, path);
  const json = new Uint8Array(n);
  await readFully(fh, json, 8, path, 'the header');
  return parseSafetensorsHeader(json, size, path);
}

/** The validated header of a file, reading nothing but its first 8 + N bytes. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openForRead(path);
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

/** A safetensors file opened for reading tensor by tensor. Close it when done. */
export class SafetensorsFile extends SafetensorsIndex {
  private fh: FileHandle | null;

  private constructor(path: string, header: SafetensorsHeader, fh: FileHandle) {
    super(path, header);
    this.fh = fh;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const fh = await openForRead(path);
    try {
      return new SafetensorsFile(path, await readHeaderFrom(fh, path), fh);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get path(): string {
    return this.source;
  }

  /** Reads one tensor's bytes from disk and decodes them (see SafetensorsReadOptions). */
  async read<A extends SafetensorsReadAs = 'raw'>(name: string, opts: SafetensorsReadOptions<A> = {}): Promise<SafetensorsTensor<SafetensorsData<A>>> {
    const e = this.require(name);
    if (!this.fh) throw new SafetensorsError(this.source, `cannot read '${name}': the file is closed`);
    // a fresh ArrayBuffer is 8-aligned, so decoding views it without another copy
    const bytes = new Uint8Array(e.byteLength);
    await readFully(this.fh, bytes, e.byteOffset, this.source, `tensor '${name}'`);
    return decodeSafetensorsData(e, bytes, opts.as, this.source);
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }
}

/** Input errors from the in-memory helpers name only the tensor; on disk, name the file too. */
function named(path: string, e: unknown): unknown {
  return e instanceof Error && e.message.startsWith('safetensors: ') ? new Error(`${path}: ${e.message.slice('safetensors: '.length)}`, { cause: e }) : e;
}

/**
 * Writes tensors to `path` as safetensors, laid out as Python's safetensors does (loadable by it),
 * one tensor at a time into a temporary file that is renamed over `path` only when complete.
 */
export async function writeSafetensors(path: string, tensors: TensorsToWrite, metadata?: Record<string, string>): Promise<void> {
  let built: BuiltHeader<ReturnType<typeof tensorList>[number]>;
  try {
    // everything checkable is checked before the first byte is written
    built = buildSafetensorsHeader(tensorList(tensors), metadata);
    for (const it of built.order) checkTensorData(it.name, it.t);
  } catch (e) {
    throw named(path, e);
  }
  const w = await openAtomic(path);
  try {
    await w.write(built.prefix);
    for (const it of built.order) for (const chunk of encodeSafetensorsData(it.name, it.t)) await w.write(chunk);
    await w.commit();
  } catch (e) {
    await w.abort();
    throw named(path, e);
  }
}
