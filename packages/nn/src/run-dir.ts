// Run folders after a kill. Atomic writes go through `<file>.tmp-<pid>-<random>` and checkpoint
// folders through `<name>.partial-<pid>`; a process killed mid-write leaves them behind, and nothing
// else ever removes them. Trainers call `cleanStaleTemps` when they start in a folder, and
// `filterJsonl` to drop log lines a resumed run will write again.
import { readdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@foliar/tensor';

const TEMP_FILE = /\.tmp-(\d+)-[0-9a-z]+$/i;
const PARTIAL_DIR = /\.partial-(\d+)$/;

/** Whether a process with this id exists (EPERM: it exists, but belongs to another user). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface CleanStaleOptions {
  /** Folder levels searched below `dir` (default 3: run/final/unet/file). */
  depth?: number;
  /**
   * Only these subfolders of `dir` are searched (plus the files directly in `dir`): a trainer names
   * its own, so an output folder shared with other files is not combed through. Default: all.
   */
  within?: string[];
  /**
   * Which writers count as gone. Default: a process that no longer exists, or this very process
   * (a trainer starting in a folder owns it; and in a container a restarted run often has the pid
   * of the killed one). Temps of other live processes are left alone: they may be writing now.
   */
  isStale?: (pid: number) => boolean;
}

/**
 * Removes the temporary files and partial checkpoint folders that killed writers left under `dir`;
 * resolves to the removed paths. A missing `dir` is not an error.
 */
export async function cleanStaleTemps(dir: string, opts: CleanStaleOptions = {}): Promise<string[]> {
  const stale = opts.isStale ?? ((pid: number) => pid === process.pid || !pidAlive(pid));
  const removed: string[] = [];
  const walk = async (d: string, depth: number, top = false): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        const m = PARTIAL_DIR.exec(e.name);
        if (m && (!top || !opts.within) && stale(Number(m[1]))) {
          await rm(p, { recursive: true, force: true });
          removed.push(p);
        } else if (depth > 0 && (!top || !opts.within || opts.within.includes(e.name))) await walk(p, depth - 1);
      } else if (e.isFile()) {
        const m = TEMP_FILE.exec(e.name);
        if (m && stale(Number(m[1]))) {
          await rm(p, { force: true });
          removed.push(p);
        }
      }
    }
  };
  await walk(dir, opts.depth ?? 3, true);
  return removed;
}

/**
 * Keeps the lines of a JSONL file for which `keep(record)` holds, rewriting it atomically (a crash
 * leaves the old file or the new one). Lines that do not parse (a write cut short by a kill) go too.
 * Resolves to the number of lines dropped; the file is not rewritten when none is. A missing file
 * is not an error.
 */
export async function filterJsonl(path: string, keep: (record: Record<string, unknown>) => boolean): Promise<number> {
  if (!existsSync(path)) return 0;
  const lines = (await readFile(path, 'utf8')).split('\n');
  if (lines.at(-1) === '') lines.pop();
  const kept = lines.filter((line) => {
    try {
      const r = JSON.parse(line) as unknown;
      return typeof r === 'object' && r !== null && keep(r as Record<string, unknown>);
    } catch {
      return false;
    }
  });
  const dropped = lines.length - kept.length;
  if (dropped) await writeFileAtomic(path, kept.map((l) => `${l}\n`).join(''));
  return dropped;
}
