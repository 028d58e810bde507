import { open, rename, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A temporary sibling path: same directory, so the final rename is atomic. */
function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export interface AtomicWriter {
  write(chunk: Uint8Array | string): Promise<void>;
  /** Flushes to disk and renames over the destination. */
  commit(): Promise<void>;
  /** Removes the temporary file; the destination is untouched. */
  abort(): Promise<void>;
}

/**
 * Writes a file so that readers see either the old content or the complete new one, never a partial
 * file: data goes to a temporary sibling, is fsynced, then renamed over the destination.
 */
export async function openAtomic(path: string): Promise<AtomicWriter> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPath(path);
  const fh: FileHandle = await open(tmp, 'w');
  let done = false;
  return {
    async write(chunk) {
      const data = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        off += bytesWritten;
      }
    },
    async commit() {
      if (done) return;
      done = true;
      await fh.sync();
      await fh.close();
      await rename(tmp, path);
    },
    async abort() {
      if (done) return;
      done = true;
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    },
  };
}

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
