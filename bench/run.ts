/**
 * `npm run bench [-- --quick] [--filter <suite>] [--no-peers] [--tag <name>]`: kernel benchmarks on the
 * current adapter with the peer libraries measured in the same process. Writes bench/results/*.json and
 * bench/results/latest[-<filter>][-<tag>].md (a tag keeps a variant's table beside the default one, e.g.
 * the sd15 suite with FOLIAR_SD15_DTYPE=f16).
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import * as ft from '@foliar/tensor';
import { installNavigatorGpu } from './lib/peers.js';
import { markdown, writeResults, cpuName, type Row, type RunInfo } from './lib/report.js';
import { fmaPeak, copyPeak } from './suites/peak.js';
import { matmulSuite, pollingSuite } from './suites/matmul.js';
import { extraSuites } from './suites/index.js';
import { tuneNow } from './suites/tuning.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const peers = !args.includes('--no-peers');
const fi = args.indexOf('--filter');
const filter = fi >= 0 ? args[fi + 1] ?? '' : '';
const ti = args.indexOf('--tag');
const tag = ti >= 0 ? (args[ti + 1] ?? '').replace(/[^a-z0-9]+/gi, '-') : '';
// comma-separated substrings of suite names
const want = (s: string) => !filter || filter.split(',').some((f) => f && s.includes(f));

// tfjs-backend-webgpu needs navigator.gpu before it loads; foliar then uses the same GPU object
if (peers) installNavigatorGpu();
const backend = await ft.init({ backend: 'webgpu' });
const be = ft.webgpuBackend()!;
const dawn = (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'node_modules', 'webgpu', 'package.json'), 'utf8')) as { version: string }).version;
const lowered = process.env.FOLIAR_MAX_BINDING_BYTES ? `; binding limit lowered to ${process.env.FOLIAR_MAX_BINDING_BYTES} bytes` : '';
const info: RunInfo = { adapter: backend.describe().replace(/^WebGPU: /, '').split(';')[0]! + lowered, dawn, cpu: cpuName(), node: process.version, date: new Date().toISOString(), peaks: {} };
console.error(`bench on ${backend.describe()}`);

const rows: Row[] = [];
// the peaks copy 128 MiB buffers: they run at the adapter's own binding limit, the suites at the lowered one
ft.setMaxBindingBytes(null);
const fma = await fmaPeak(be);
const copy = await copyPeak(be);
if (process.env.FOLIAR_MAX_BINDING_BYTES) ft.setMaxBindingBytes(Number(process.env.FOLIAR_MAX_BINDING_BYTES));
info.peaks = { fmaGflops: fma.rate, copyGBs: copy.rate };
rows.push(fma, copy);
console.error(`peaks: ${fma.rate!.toFixed(1)} GFLOP/s, ${copy.rate!.toFixed(2)} GB/s`);
// the per-adapter matmul choice: measured (or read from the cache) now, so that no background
// tuning overlaps the timed cases
const tuned = await tuneNow(be);
if (tuned) rows.push(tuned);
if (want('polling')) rows.push(...(await pollingSuite()));
if (want('matmul')) rows.push(...(await matmulSuite(info, { quick, peers })));
for (const [name, suite] of Object.entries(extraSuites)) {
  if (!want(name)) continue;
  try {
    rows.push(...(await suite(info, { quick, peers })));
  } catch (e) {
    console.error(`suite ${name} failed: ${(e as Error).message}`);
    rows.push({ suite: name, name: 'failed', medianMs: NaN, note: (e as Error).message.slice(0, 120) });
  }
}
const latest = `latest${filter ? `-${filter.replace(/[^a-z0-9]+/gi, '-')}` : ''}${tag ? `-${tag}` : ''}.md`;
const file = await writeResults(join(import.meta.dirname, 'results'), info, rows, latest);
console.log(markdown(info, rows));
console.error(`results: ${file}`);
// tfjs keeps the GPU object alive on navigator: exit explicitly
process.exit(0);
