#!/usr/bin/env node
// Bundles foliar for browsers with esbuild (platform "browser": package.json `browser` conditions
// pick each package's browser entry and #platform port; no Node built-in may be reached, and none is
// stubbed or marked external: one that slips in fails the build).
//   - examples/browser/dist/check/<package>.js: every package's public browser API, bundled alone
//   - examples/browser/dist/app.js: the demo page's script (examples/browser/src/main.ts)
// Sources are bundled straight from TypeScript (condition foliar-source), so no `npm run build` is
// needed first. usage: node scripts/build-browser.mjs [--minify] [--quiet]
import { build } from 'esbuild';
import { mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
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
    const bytes = Object.values(r.metafile.outputs).reduce((a, o) => a + (o.entryPoint || o.exports ? o.bytes : 0), 0);
    report.push(`@foliar/${pkg}: ${(bytes / 1024).toFixed(0)} KiB`);
  } catch (e) {
    failed = true;
    const errs = e.errors?.map((x) => `  ${x.location ? `${x.location.file}:${x.location.line}: ` : ''}${x.text}`).join('\n') ?? `  ${e.message}`;
    report.push(`@foliar/${pkg}: FAILED\n${errs}`);
  }
}
try {
  await build({ ...common, entryPoints: [join(root, 'examples/browser/src/main.ts')], outfile: join(out, 'app.js') });
  copyFileSync(join(root, 'examples/browser/index.html'), join(out, 'index.html'));
  report.push('demo page: examples/browser/dist/index.html');
} catch (e) {
  failed = true;
  report.push(`demo page: FAILED\n${e.errors?.map((x) => `  ${x.location ? `${x.location.file}:${x.location.line}: ` : ''}${x.text}`).join('\n') ?? e.message}`);
}
writeFileSync(join(out, 'build.txt'), report.join('\n') + '\n');
if (!quiet || failed) console.log(report.join('\n'));
process.exit(failed ? 1 : 0);
