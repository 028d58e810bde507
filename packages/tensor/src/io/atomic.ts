/**
 * Atomic file writes: data goes to `<path>.tmp-<pid>-<random>` in the same directory, is fsynced, then
 * renamed over `path`, so readers see the old file or the complete new one, never a partial one.
 */
import { open, rename, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';

export function atomicTempPath(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export interface AtomicWriter {
  /** The temporary file being written. */
  readonly tempPath: string;
  write(chunk: Uint8Array | string): Promise<void>;
  /** Flushes, fsyncs and renames over the destination. */
  commit(): Promise<void>;
  /** Removes the temporary file; the destination is untouched. Safe to call after a failure. */
  abort(): Promise<void>;
}

/** Small chunks are gathered up to this size, so many tiny tensors do not mean many syscalls. */
const STAGE = 1 << 20;
/** Node caps one write call below 2 GiB. */
const IO_PIECE = 1 << 30;

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, Math.min(IO_PIECE, data.length - off));
    off += bytesWritten;
  }
}

/** Opens `path` for an atomic write (creating its directory); nothing is visible until `commit`. */
export async function openAtomic(path: string): Promise<AtomicWriter> {
  await mkdir(dirname(path), { recursive: true });
  const tempPath = atomicTempPath(path);
  const fh = await open(tempPath, 'wx');
  const stage = new Uint8Array(STAGE);
  let staged = 0;
  let state: 'open' | 'committed' | 'aborted' = 'open';
  const live = (what: string) => {
    if (state !== 'open') throw new Error(`${path}: cannot ${what}, the atomic write was already ${state}`);
  };
  const flush = async () => {
    if (staged) await writeAll(fh, stage.subarray(0, staged));
    staged = 0;
  };
  const writer: AtomicWriter = {
    tempPath,
    async write(chunk) {
      live('write');
      const data = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
      if (staged + data.length <= STAGE) {
        stage.set(data, staged);
        staged += data.length;
        return;
      }
      await flush();
      if (data.length < STAGE) {
        stage.set(data, 0);
        staged = data.length;
      } else await writeAll(fh, data);
    },
    async commit() {
      live('commit');
      try {
        await flush();
        await fh.sync();
        await fh.close();
        await rename(tempPath, path);
        state = 'committed';
      } catch (e) {
        await writer.abort();
        throw e;
      }
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      await fh.close().catch(() => undefined);
      await unlink(tempPath).catch(() => undefined);
    },
  };
  return writer;
}

/** Writes `data` to `path` atomically. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const w = await openAtomic(path);
  try {
    await w.write(data);
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
}
