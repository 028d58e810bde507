/**
 * The golden runner: `npm run golden -- <fixtures-dir> [--backend webgpu|cpu] [--filter <substring>]`.
 * Runs every case of a directory in the ../shared/golden format that foliar implements and prints one
 * line per case (PASS / FAIL / SKIP), then `golden: P passed, F failed, S skipped`. Any FAIL exits 1.
 *
 * `--backend webgpu` (the default) where there is no WebGPU (no adapter, or FOLIAR_BACKEND=cpu)
 * reports every device case as SKIP; under FOLIAR_REQUIRE_WEBGPU=1 that is an error instead.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import * as ft from '@foliar/tensor';
import { loadManifest } from './golden/manifest.js';
import { CaseContext, Skip } from './golden/context.js';
import { handlers } from './golden/handlers/index.js';
import { runTokenizerCases } from './golden/tokenizer.js';

function usage(msg?: string): never {
  if (msg) console.error(`golden: ${msg}`);
  console.error('usage: npm run golden -- <fixtures-dir> [--backend webgpu|cpu] [--filter <substring>]');
  process.exit(2);
}

const argv = process.argv.slice(2);
let dir: string | undefined;
let backendName: 'webgpu' | 'cpu' = 'webgpu';
let filter = '';
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (a === '--backend') backendName = (argv[++i] ?? usage('--backend needs a value')) as 'webgpu' | 'cpu';
  else if (a === '--filter') filter = argv[++i] ?? usage('--filter needs a value');
  else if (a === '--help' || a === '-h') usage();
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else dir = a;
}
if (backendName !== 'webgpu' && backendName !== 'cpu') usage(`unknown backend '${backendName}'`);
dir = resolve(dir ?? resolve(import.meta.dirname, '..', '..', 'shared', 'golden'));
if (!existsSync(dir)) usage(`fixtures directory ${dir} does not exist`);

/** The backend under test, or null with the reason when WebGPU was asked for and is unavailable. */
async function initBackend(): Promise<{ backend: ft.Backend | null; why: string }> {
  const require = !!process.env.FOLIAR_REQUIRE_WEBGPU && process.env.FOLIAR_REQUIRE_WEBGPU !== '0';
  let why = '';
  if (backendName === 'webgpu' && process.env.FOLIAR_BACKEND === 'cpu') why = 'FOLIAR_BACKEND=cpu';
  else {
    try {
      return { backend: await ft.init({ backend: backendName }), why };
    } catch (e) {
      if (backendName !== 'webgpu' || !(e instanceof ft.NoAdapterError)) throw e;
      why = `no WebGPU adapter (${e.message.split('\n')[0]})`;
    }
  }
  if (require) {
    console.log(`golden: FAIL ${why}, and FOLIAR_REQUIRE_WEBGPU is set`);
    process.exit(1);
  }
  return { backend: null, why };
}

const { backend, why: noBackend } = await initBackend();
console.log(`golden: ${dir} on ${backend ? backend.describe() : `nothing (${noBackend}): device cases are skipped`}`);
const manifest = await loadManifest(dir);
let passed = 0, failed = 0, skipped = 0;
const fmt = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));

for (const c of manifest.cases) {
  const id = `${c.group}/${c.name}`;
  if (filter && !id.includes(filter)) continue;
  const handler = handlers[c.op];
  if (!handler) {
    skipped++;
    console.log(`SKIP ${id} (op '${c.op}' not implemented)`);
    continue;
  }
  if (!backend) {
    skipped++;
    console.log(`SKIP ${id} (${noBackend})`);
    continue;
  }
  const ctx = new CaseContext(dir, c, backend);
  const t0 = performance.now();
  try {
    await ft.tidyAsync(() => handler(ctx));
    const bad = ctx.checks.filter((k) => !k.diff.ok);
    const maxAbs = Math.max(0, ...ctx.checks.map((k) => k.diff.maxAbs));
    const maxRel = Math.max(0, ...ctx.checks.map((k) => k.diff.maxRel));
    const ms = (performance.now() - t0).toFixed(0);
    if (ctx.checks.length === 0) {
      failed++;
      console.log(`FAIL ${id} (handler compared nothing)`);
    } else if (bad.length) {
      failed++;
      console.log(`FAIL ${id} maxAbs=${fmt(maxAbs)} maxRel=${fmt(maxRel)} (${bad.map((k) => `${k.name}: maxAbs=${fmt(k.diff.maxAbs)} maxRel=${fmt(k.diff.maxRel)}`).join('; ')})`);
    } else {
      passed++;
      console.log(`PASS ${id} maxAbs=${fmt(maxAbs)} maxRel=${fmt(maxRel)} (${ctx.checks.length} tensors, ${ms} ms)`);
    }
  } catch (e) {
    if (e instanceof Skip) {
      skipped++;
      console.log(`SKIP ${id} (${e.message})`);
    } else {
      failed++;
      console.log(`FAIL ${id} (error: ${(e as Error).message.split('\n')[0]})`);
      if (process.env.FOLIAR_DEBUG) console.error(e);
    }
  } finally {
    ctx.close();
  }
}

const tok = await runTokenizerCases(dir, filter);
passed += tok.passed;
failed += tok.failed;
skipped += tok.skipped;

console.log(`golden: ${passed} passed, ${failed} failed, ${skipped} skipped`);
ft.shutdown();
process.exit(failed ? 1 : 0);
