#!/usr/bin/env node
// Bundles foliar for browsers with esbuild (platform "browser": package.json `browser` conditions
// pick each package's browser entry and #platform port; no Node built-in may be reached, and none is
// stubbed or marked external: one that slips in fails the build).
//   - examples/browser/dist/check/<package>.js: every package's public browser API, bundled alone
//   - examples/browser/dist/app.js: the demo page's script (examples/browser/src/main.ts)
// Sources are bundled straight from TypeScript (condition foliar-source), so no `npm run build` is
// needed first. usage: node scripts/build-browser.mjs [--minify] [--quiet]
import { build } from 'esbuild';
import { mkdirSync, writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const out = join(root, 'examples/browser/dist');
const minify = process.argv.includes('--minify');
const quiet = process.argv.includes('--quiet');
export const PACKAGES = ['tensor', 'data', 'report', 'nn', 'diffusion', 'classifier'];

const common = {
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2022',
  conditions: ['foliar-source'],
  sourcemap: true,
  minify,
  logLevel: 'silent',
  metafile: true,
  absWorkingDir: root,
};

/** Node built-ins and Node-only packages that must never appear in a browser bundle. */
const NODE_ONLY = /^(node:|fs$|path$|crypto$|zlib$|os$|child_process$|module$|url$|stream$|util$|events$|readline$|worker_threads$)|(^|\/)node_modules\/(sharp|cli-progress|webgpu|csv-parse\/dist\/cjs)\//;

/**
 * Reads of Node's `process` global in the packages' sources (browsers have none: "process is not
 * defined" at run time, which no bundler reports). `globalThis.process?.…` is fine, and so is the
 * Node side of a platform port (src/platform/node.ts, progress-node.ts) and the CLI code.
 */
const PROCESS_READ = /(?<![.\w$])process\.(env|argv|stderr|stdout|pid|exit|exitCode|cwd|platform|versions|on|hrtime|memoryUsage|nextTick)\b/;
function processReads(inputs) {
  const found = [];
  for (const f of inputs) {
    if (!/^packages\/[^/]+\/src\//.test(f) || /\/platform\/[^/]*node\.ts$/.test(f)) continue;
    readFileSync(join(root, f), 'utf8').split('\n').forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      if (PROCESS_READ.test(code) && !/^\s*\*/.test(code)) found.push(`${f}:${i + 1}: ${line.trim().slice(0, 120)}`);
    });
  }
  return found;
}

mkdirSync(join(out, 'check'), { recursive: true });
const report = [];
let failed = false;
for (const pkg of PACKAGES) {
  try {
    const r = await build({
      ...common,
      stdin: { contents: `export * from '@foliar/${pkg}';`, resolveDir: root, sourcefile: `check-${pkg}.ts`, loader: 'ts' },
      outfile: join(out, 'check', `${pkg}.js`),
    });
    const bad = Object.keys(r.metafile.inputs).filter((f) => NODE_ONLY.test(f));
    if (bad.length) throw new Error(`Node-only inputs in the browser bundle: ${bad.join(', ')}`);
    const reads = processReads(Object.keys(r.metafile.inputs));
    if (reads.length) throw new Error(`reads of Node's process global (undefined in browsers; use globalThis.process?.env, e.g. env() in packages/tensor/src/env.ts):\n  ${reads.join('\n  ')}`);
    const bytes = Object.values(r.metafile.outputs).reduce((a, o) => a + (o.entryPoint || o.exports ? o.bytes : 0), 0);
    report.push(`@foliar/${pkg}: ${(bytes / 1024).toFixed(0)} KiB`);
  } catch (e) {
    failed = true;
    const errs = e.errors?.map((x) => `  ${x.location ? `${x.location.file}:${x.location.line}: ` : ''}${x.text}`).join('\n') ?? `  ${e.message}`;
    report.push(`@foliar/${pkg}: FAILED\n${errs}`);
  }
}
try {
  const r = await build({ ...common, entryPoints: [join(root, 'examples/browser/src/main.ts')], outfile: join(out, 'app.js') });
  const bad = Object.keys(r.metafile.inputs).filter((f) => NODE_ONLY.test(f));
  const reads = processReads(Object.keys(r.metafile.inputs));
  if (bad.length || reads.length) throw new Error(`the page reaches Node-only code:\n  ${[...bad, ...reads].join('\n  ')}`);
  copyFileSync(join(root, 'examples/browser/index.html'), join(out, 'index.html'));
  report.push('demo page: examples/browser/dist/index.html');
} catch (e) {
  failed = true;
  report.push(`demo page: FAILED\n${e.errors?.map((x) => `  ${x.location ? `${x.location.file}:${x.location.line}: ` : ''}${x.text}`).join('\n') ?? e.message}`);
}
writeFileSync(join(out, 'build.txt'), report.join('\n') + '\n');
if (!quiet || failed) console.log(report.join('\n'));
process.exit(failed ? 1 : 0);
