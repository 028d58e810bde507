/**
 * A record of the kernels a process compiles, for compile-time measurements (lavapipe compiles machine
 * code at a kernel's first dispatch, so an empty Mesa shader cache pays for each of them):
 * FOLIAR_DEBUG_PIPELINES=<file> appends "key<TAB>WGSL length<TAB>hash" per compiled kernel, and
 * FOLIAR_DEBUG_WGSL_DIR=<dir> also writes its WGSL to <dir>/<hash>.wgsl (first line: the key).
 * Node only (no static import of node built-ins: the package also runs in browsers); off otherwise.
 */
import { env } from '../env.js';

type GetBuiltin = (id: string) => unknown;
interface Fs { appendFileSync(p: string, s: string): void; writeFileSync(p: string, s: string): void }
interface Crypto { createHash(alg: string): { update(s: string): { digest(enc: 'hex'): string } } }

export function logPipeline(key: string, code: string): void {
  const file = env('FOLIAR_DEBUG_PIPELINES');
  if (!file) return;
  const gb = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process?.getBuiltinModule;
  if (!gb) return;
  const fs = gb('fs') as Fs;
  const hash = (gb('crypto') as Crypto).createHash('sha1').update(code).digest('hex').slice(0, 12);
  fs.appendFileSync(file, `${key}\t${code.length}\t${hash}\n`);
  const dir = env('FOLIAR_DEBUG_WGSL_DIR');
  if (dir) fs.writeFileSync(`${dir}/${hash}.wgsl`, `// ${key}\n${code}`);
}
