/**
 * What report.html inlines so it works offline as one file: the browser builds of vega, vega-lite and
 * vega-embed read from node_modules, and the report's images as data: URIs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';

export interface InlineScript {
  name: string;
  version: string;
  /** Minified UMD build, safe to place inside <script>…</script>. */
  code: string;
}

/** The UMD builds, in load order: vega-lite needs the `vega` global, vega-embed both. */
const BROWSER_BUILDS = [
  ['vega', 'build/vega.min.js'],
  ['vega-lite', 'build/vega-lite.min.js'],
  ['vega-embed', 'build/vega-embed.min.js'],
] as const;

const require = createRequire(import.meta.url);

/** The package's folder: its entry resolved the way Node would, then up to the package.json that names it. */
function packageDir(name: string): { dir: string; version: string } {
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch (e) {
    throw new Error(`report.html needs the npm package "${name}" (a root dependency; run npm ci): ${(e as Error).message}`);
  }
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (!existsSync(pj)) continue;
    const meta = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string };
    if (meta.name === name) return { dir, version: meta.version ?? 'unknown' };
  }
  throw new Error(`report.html: no package.json naming "${name}" above ${entry}`);
}

/**
 * Makes a script's text safe inside an inline <script>: "</script" would end the element early and
 * "<!--" switches the HTML parser into a mode where a later "<script" nests. Minified builds contain
 * neither today; if a future one does, "<\/script" means the same in every JS string or regex literal.
 */
export function inlineScriptText(code: string, what: string): string {
  if (/<!--/.test(code)) throw new Error(`${what}: contains "<!--", which cannot be inlined in a <script> safely`);
  return code.replace(/<\/(script)/gi, '<\\/$1').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
}

let cache: Promise<InlineScript[]> | null = null;

/** The three browser builds (read once per process). */
export function vegaScripts(): Promise<InlineScript[]> {
  cache ??= Promise.all(BROWSER_BUILDS.map(async ([name, file]) => {
    const { dir, version } = packageDir(name);
    const path = join(dir, file);
    const code = await readFile(path, 'utf8').catch((e: Error) => {
      throw new Error(`report.html: cannot read ${name}'s browser build ${path}: ${e.message}`);
    });
    return { name, version, code: inlineScriptText(code, path) };
  }));
  cache.catch(() => { cache = null; });  // a failed read is retried on the next render
  return cache;
}

export interface InlineImage {
  src: string;
  width: number;
  height: number;
}

/** The image types a data: URI can carry here, by their first bytes. */
function sniff(bytes: Uint8Array): { mime: string; size: (b: Uint8Array) => [number, number] } | null {
  const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  if (bytes.length >= 24 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return { mime: 'image/png', size: (b) => [be32(b, 16), be32(b, 20)] };
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) return { mime: 'image/jpeg', size: () => [0, 0] };
  return null;
}

/** Reads an image (relative to baseDir) as a data: URI; a missing or unreadable file is an error naming it. */
export async function inlineImage(baseDir: string, path: string): Promise<InlineImage> {
  const full = isAbsolute(path) ? path : resolve(baseDir, path);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(full);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message;
    throw new Error(`report image "${path}" (${full}): ${why}`);
  }
  const kind = sniff(bytes);
  if (!kind) throw new Error(`report image "${path}" (${full}): not a PNG or JPEG file`);
  const [width, height] = kind.size(bytes);
  return { src: `data:${kind.mime};base64,${Buffer.from(bytes).toString('base64')}`, width, height };
}
