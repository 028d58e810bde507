/**
 * Paths that come from data files (CSV image ids, metadata.jsonl file names, a weights index's shard
 * names) are untrusted: `../../x` or `/etc/passwd` must not make a reader open files outside the
 * folder the data describes. The check is lexical (symlinks inside the folder are the owner's choice).
 */
import { isAbsolute, relative, resolve, sep, win32 } from 'node:path';

export class UnsafePathError extends Error {
  override name = 'UnsafePathError';
}

/**
 * Resolves `rel` inside `root` and returns the absolute path, or throws an UnsafePathError naming
 * `what` (e.g. `train.csv line 7: image_id`) when `rel` is empty, absolute, holds a NUL byte, or
 * leaves `root` (after resolving `.` and `..`), or names `root` itself.
 */
export function resolveInside(root: string, rel: string, what: string): string {
  const shown = JSON.stringify(rel);
  if (typeof rel !== 'string' || rel === '') throw new UnsafePathError(`${what}: empty path`);
  if (rel.includes('\0')) throw new UnsafePathError(`${what}: path ${shown} holds a NUL byte`);
  // win32 too: `C:\x` or `\\host\share` written on Windows must not pass as a relative name
  if (isAbsolute(rel) || win32.isAbsolute(rel)) throw new UnsafePathError(`${what}: absolute path ${shown} refused (paths must be relative to ${root})`);
  const base = resolve(root);
  const full = resolve(base, rel);
  const r = relative(base, full);
  if (r === '') throw new UnsafePathError(`${what}: path ${shown} names the folder ${base} itself, not a file in it`);
  if (r === '..' || r.startsWith(`..${sep}`) || isAbsolute(r)) throw new UnsafePathError(`${what}: path ${shown} leads outside ${base}`);
  return full;
}
