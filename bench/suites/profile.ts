/**
 * Step profiles: one training step, after a warm-up step (pipeline compiles), of
 *  (a) the tiny SD UNet of `createTinyPipeline` (block channels [32, 64]), batch 8, 16x16x4 latents,
 *      77-token context, MSE on the noise + AdamW, and
 *  (b) ResNet18, batch 32, 64x64, cross-entropy + SGD momentum,
 * run under `ft.profile`: dispatches, GPU time (timestamp queries) and host time per op kind and per
 * model block. The tables go to bench/results/latest-step-profile.md (run.ts writes the summary rows
 * to latest-profile.md); also printed to stderr.
 *
 * `npm run bench -- --filter profile --no-peers`, or alone (no peaks or tuning first):
 * `node --conditions=foliar-source --import tsx bench/suites/profile.ts`.
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import * as ft from '@foliar/tensor';
import type { Row, RunInfo } from '../lib/report.js';
import { unetCase, resnetCase } from '../lib/step-cases.js';

const f = (x: number | null) => (x === null ? 'n/a' : x.toFixed(0));

export async function profileSuite(info: RunInfo, _opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  const sections: string[] = [];
  for (const make of [unetCase, resnetCase]) {
    const c = await make();
    try {
      await c.step(); // warm-up: pipeline compiles, optimizer state
      const { report } = await ft.profile(c.step);
      // the same step unprofiled: what the per-dispatch passes and timestamps cost
      const t0 = performance.now();
      await c.step();
      const plainMs = performance.now() - t0;
      const top = (rs: ft.ProfileRow[], n: number) => rs.slice(0, n).map((r) => `${r.name} ${(r.share * 100).toFixed(0)}%`).join(', ');
      const note = `${report.dispatches} dispatches, GPU ${f(report.gpuMs)} ms, host ${f(report.hostMs)} ms; unprofiled step ${plainMs.toFixed(0)} ms; top ops: ${top(report.byOp, 3)}; top scopes: ${top(report.byScope, 3)}`;
      rows.push({ suite: 'profile', name: `${c.title}, profiled`, medianMs: report.wallMs, note });
      console.error(`${c.title}: ${note}`);
      sections.push(`## ${c.title}`, '', `Unprofiled, the same step took ${plainMs.toFixed(0)} ms (wall, right after).`, '', ft.formatProfile(report, { top: 25 }));
      console.error(ft.formatProfile(report, { top: 25 }));
    } finally {
      c.dispose();
    }
  }
  const md = [
    '# foliar step profiles',
    '',
    `- adapter: ${info.adapter}`,
    `- ${info.date}; Node ${info.node}; CPU: ${info.cpu}; load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')} (1 / 5 / 15 min) when written: GPU and wall times scale with other work on the cores, dispatch counts do not`,
    '- one training step after a warm-up step, under `ft.profile` (see docs/profiling.md): each dispatch runs in',
    '  its own compute pass with timestamp queries, so the profiled wall time is not the step time;',
    '  GPU ms are per-dispatch sums, host ms the time spent in `dispatch()`. Scope rows are exclusive;',
    "  `<scope> (backward)` holds the backward kernels of the ops run in `<scope>`, `(none)` ops outside any scope.",
    '',
    ...sections,
  ].join('\n');
  await ft.writeFileAtomic(join(import.meta.dirname, '..', 'results', 'latest-step-profile.md'), md);
  return rows;
}

// standalone: print the rows as JSON
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const backend = await ft.init({ backend: 'webgpu' });
  console.error(`bench on ${backend.describe()}`);
  const { cpuName } = await import('../lib/report.js');
  const info: RunInfo = { adapter: backend.describe().replace(/^WebGPU: /, '').split(';')[0]!, dawn: '', cpu: cpuName(), node: process.version, date: new Date().toISOString(), peaks: {} };
  const rows = await profileSuite(info, { quick: process.argv.includes('--quick'), peers: false });
  console.log(JSON.stringify(rows, null, 2));
  ft.shutdown();
}
