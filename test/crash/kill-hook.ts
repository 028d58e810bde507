/**
 * Test-only preload for the crash tests (`node --import tsx --import test/crash/kill-hook.ts …`): wraps
 * Node's file-writing functions (node:fs, node:fs/promises, FileHandle) so that a child process can
 * SIGKILL itself at an exact point of its file writes — inside a checkpoint write, between a write and
 * its rename, half-way through a log line. Nothing in the library knows about it.
 *
 * Only writes to paths under FOLIAR_CRASH_ROOT count (the run folder: tsx's cache and the like do not).
 *   FOLIAR_CRASH_AT="<n>:<mode>[:<substring>]"  die at the n-th counted operation whose path contains
 *       <substring> (all of them when absent; `=<path>`: whose path is exactly that). mode: `before` (the operation never happens), `after`
 *       (it completed), `torn` (half the bytes of a write or append reach the file; one entry of a
 *       recursive rm is removed; other operations: as before).
 *   FOLIAR_CRASH_TRACE=<file>  appends "<index> <op> <path relative to the root>" per counted operation.
 * Before dying it prints `crash-hook: SIGKILL at …` on stderr.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join, relative, resolve } from 'node:path';

type Fn = (...args: any[]) => any;
type Mode = 'before' | 'after' | 'torn';

const root = process.env.FOLIAR_CRASH_ROOT ? resolve(process.env.FOLIAR_CRASH_ROOT) : null;
const spec = process.env.FOLIAR_CRASH_AT ?? '';
const m = /^(\d+):(before|after|torn)(?::(.*))?$/.exec(spec);
if (spec && !m) throw new Error(`kill-hook: FOLIAR_CRASH_AT must be <n>:<before|after|torn>[:<substring>], got "${spec}"`);
const target = m ? { n: Number(m[1]), mode: m[2] as Mode, filter: m[3] ?? '' } : null;

// the originals, captured before anything is wrapped
const o = {
  openSync: fs.openSync, writeSync: fs.writeSync, closeSync: fs.closeSync, readdirSync: fs.readdirSync, rmSync: fs.rmSync,
  writeFileSync: fs.writeFileSync, appendFileSync: fs.appendFileSync,
};
const traceFd = process.env.FOLIAR_CRASH_TRACE ? o.openSync(process.env.FOLIAR_CRASH_TRACE, 'a') : null;

let index = 0; // counted operations so far
let matched = 0; // counted operations whose path contains the filter
let depth = 0; // > 0 inside a wrapped call (appendFileSync calls writeFileSync: count it once)

const rel = (p: string) => relative(root!, p) || '.';
function pathOf(p: unknown): string | null {
  if (typeof p === 'string') return resolve(p);
  if (p instanceof URL) return resolve(p.pathname);
  if (Buffer.isBuffer(p)) return resolve(p.toString());
  return null;
}
const under = (p: string | null): p is string => p !== null && root !== null && (p === root || p.startsWith(root + '/'));

function die(op: string, path: string, mode: Mode): never {
  o.writeSync(2, `crash-hook: SIGKILL at operation ${index} (${op} ${rel(path)}, ${mode}; FOLIAR_CRASH_AT=${spec})\n`);
  process.kill(process.pid, 'SIGKILL');
  for (;;) {
    // SIGKILL to oneself is delivered before kill(2) returns; never reached
  }
}

/** Counts the operation; returns the mode to die in when it is the chosen one. */
function count(op: string, paths: (string | null)[]): { mode: Mode; path: string } | null {
  const p = paths.filter(under);
  if (!p.length || depth > 0) return null;
  index++;
  if (traceFd !== null) o.writeSync(traceFd, `${index} ${op} ${p.map(rel).join(' ')}\n`);
  if (!target || !p.some((x) => (target.filter.startsWith('=') ? rel(x) === target.filter.slice(1) : rel(x).includes(target.filter)))) return null;
  matched++;
  return matched === target.n ? { mode: target.mode, path: p[0]! } : null;
}

/** Half of a chunk: [data, kept length] for Uint8Array/string data. */
function half(data: unknown): string | Uint8Array | null {
  if (typeof data === 'string') return data.slice(0, Math.floor(data.length / 2));
  if (data instanceof Uint8Array) return data.subarray(0, Math.floor(data.length / 2));
  return null;
}

const isWriteFlag = (flags: unknown) => typeof flags === 'string' ? /[wax+]/.test(flags) : typeof flags === 'number' && (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR)) !== 0;

// ------------------------------------------------------------ node:fs/promises

const P = fsp as unknown as Record<string, Fn>;
const handlePaths = new WeakMap<object, string>();

function wrapAsync(name: string, paths: (a: any[]) => (string | null)[], torn?: (a: any[], orig: Fn) => Promise<unknown>): void {
  const orig = P[name]!;
  P[name] = async function (this: unknown, ...a: any[]) {
    const hit = count(name, paths(a));
    if (!hit) {
      depth++;
      try {
        return await orig.apply(this, a);
      } finally {
        depth--;
      }
    }
    if (hit.mode === 'torn' && torn) {
      await torn(a, orig);
      die(name, hit.path, 'torn');
    }
    if (hit.mode === 'after') {
      await orig.apply(this, a);
      die(name, hit.path, 'after');
    }
    die(name, hit.path, hit.mode);
  };
}

const two = (a: any[]) => [pathOf(a[0]), pathOf(a[1])];
const one = (a: any[]) => [pathOf(a[0])];
const halfData = (a: any[], orig: Fn) => orig(a[0], half(a[1]) ?? a[1], a[2]);
/** A recursive rm cut short: one entry of the folder goes (a file, or the folder itself if empty). */
async function tornRm(a: any[], orig: Fn): Promise<void> {
  const p = pathOf(a[0])!;
  let entries: string[] = [];
  try {
    entries = (o.readdirSync(p) as string[]).sort();
  } catch {
    // not a folder (or missing): nothing half-done to leave
    return;
  }
  if (entries.length) o.rmSync(join(p, entries[0]!), { recursive: true, force: true });
  else await orig(...a);
}

wrapAsync('rename', two);
wrapAsync('link', two);
wrapAsync('copyFile', two);
wrapAsync('unlink', one);
wrapAsync('rm', one, tornRm);
wrapAsync('rmdir', one);
wrapAsync('mkdir', one);
wrapAsync('truncate', one);
wrapAsync('writeFile', one, halfData);
wrapAsync('appendFile', one, halfData);

{
  const orig = P.open!;
  P.open = async function (this: unknown, ...a: any[]) {
    const path = pathOf(a[0]);
    const writing = isWriteFlag(a[1]);
    const hit = writing ? count('open', [path]) : null;
    if (hit?.mode === 'after') {
      await orig.apply(this, a);
      die('open', hit.path, 'after');
    }
    if (hit) die('open', hit.path, hit.mode);
    const fh = (await orig.apply(this, a)) as Record<string, Fn>;
    if (writing && path) {
      handlePaths.set(fh, path);
      // Node 20 defines FileHandle#close as an instance field, not on the prototype
      const close = fh.close!;
      fh.close = async function (this: unknown, ...c: any[]) {
        const hit2 = count('handle.close', [path]);
        if (hit2?.mode === 'after') {
          await close.apply(this, c);
          die('handle.close', hit2.path, 'after');
        }
        if (hit2) die('handle.close', hit2.path, hit2.mode);
        return close.apply(this, c);
      };
    }
    return fh;
  };
}

// FileHandle methods (the class is not exported: take it from an open handle)
{
  const probe = await fsp.open(process.execPath, 'r');
  const H = Object.getPrototypeOf(probe) as Record<string, Fn>;
  await probe.close();
  const wrapHandle = (name: string, torn?: (fh: any, a: any[], orig: Fn) => Promise<unknown>) => {
    const orig = H[name]!;
    H[name] = async function (this: object, ...a: any[]) {
      const path = handlePaths.get(this) ?? null;
      const hit = path ? count(`handle.${name}`, [path]) : null;
      if (!hit) return orig.apply(this, a);
      if (hit.mode === 'torn' && torn) {
        await torn(this, a, orig);
        die(`handle.${name}`, hit.path, 'torn');
      }
      if (hit.mode === 'after') {
        await orig.apply(this, a);
        die(`handle.${name}`, hit.path, 'after');
      }
      die(`handle.${name}`, hit.path, hit.mode);
    };
  };
  wrapHandle('write', (fh, a, orig) => {
    if (typeof a[0] === 'string') return orig.call(fh, half(a[0]));
    const buf = a[0] as Uint8Array;
    const off = typeof a[1] === 'number' ? a[1] : 0;
    const len = typeof a[2] === 'number' ? a[2] : buf.length - off;
    return orig.call(fh, buf, off, Math.floor(len / 2));
  });
  wrapHandle('writeFile', (fh, a, orig) => orig.call(fh, half(a[0]) ?? a[0]));
  wrapHandle('appendFile', (fh, a, orig) => orig.call(fh, half(a[0]) ?? a[0]));
  wrapHandle('truncate');
  wrapHandle('sync');
  wrapHandle('datasync');
}

// ------------------------------------------------------------ node:fs (synchronous)

const S = fs as unknown as Record<string, Fn>;
const fdPaths = new Map<number, string>();

function wrapSync(name: string, paths: (a: any[]) => (string | null)[], torn?: (a: any[], orig: Fn) => void): void {
  const orig = S[name]!;
  S[name] = function (this: unknown, ...a: any[]) {
    const hit = count(name, paths(a));
    if (!hit) {
      depth++;
      try {
        return orig.apply(this, a);
      } finally {
        depth--;
      }
    }
    if (hit.mode === 'torn' && torn) {
      depth++;
      torn(a, orig);
      die(name, hit.path, 'torn');
    }
    if (hit.mode === 'after') {
      depth++;
      orig.apply(this, a);
      die(name, hit.path, 'after');
    }
    die(name, hit.path, hit.mode);
  };
}

const fdPath = (a: any[]) => [typeof a[0] === 'number' ? fdPaths.get(a[0]) ?? null : pathOf(a[0])];
const halfSync = (a: any[], orig: Fn) => orig(a[0], half(a[1]) ?? a[1], a[2]);

wrapSync('writeFileSync', fdPath, halfSync);
wrapSync('appendFileSync', fdPath, halfSync);
wrapSync('renameSync', two);
wrapSync('linkSync', two);
wrapSync('copyFileSync', two);
wrapSync('unlinkSync', one);
wrapSync('rmSync', one, (a, orig) => {
  const p = pathOf(a[0])!;
  let entries: string[] = [];
  try {
    entries = (o.readdirSync(p) as string[]).sort();
  } catch {
    return;
  }
  if (entries.length) o.rmSync(join(p, entries[0]!), { recursive: true, force: true });
  else orig(...a);
});
wrapSync('rmdirSync', one);
wrapSync('mkdirSync', one);
wrapSync('truncateSync', one);
wrapSync('writeSync', fdPath, (a, orig) => {
  if (typeof a[1] === 'string') return orig(a[0], half(a[1]));
  const buf = a[1] as Uint8Array;
  const off = typeof a[2] === 'number' ? a[2] : 0;
  const len = typeof a[3] === 'number' ? a[3] : buf.length - off;
  orig(a[0], buf, off, Math.floor(len / 2));
});
wrapSync('fsyncSync', fdPath);
{
  const openSync = S.openSync!;
  S.openSync = function (this: unknown, ...a: any[]) {
    const path = pathOf(a[0]);
    const writing = isWriteFlag(a[1]);
    const hit = writing ? count('openSync', [path]) : null;
    if (hit?.mode === 'after') {
      openSync.apply(this, a);
      die('openSync', hit.path, 'after');
    }
    if (hit) die('openSync', hit.path, hit.mode);
    const fd = openSync.apply(this, a) as number;
    if (writing && path) fdPaths.set(fd, path);
    return fd;
  };
  const closeSync = S.closeSync!;
  S.closeSync = function (this: unknown, fd: number) {
    const path = fdPaths.get(fd) ?? null;
    fdPaths.delete(fd);
    const hit = count('closeSync', [path]);
    if (hit?.mode === 'after') {
      closeSync.call(this, fd);
      die('closeSync', hit.path, 'after');
    }
    if (hit) die('closeSync', hit.path, hit.mode);
    return closeSync.call(this, fd);
  };
}

// named ESM imports of node:fs and node:fs/promises see the wrappers too
syncBuiltinESMExports();
