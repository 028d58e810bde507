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

interface Case {
  title: string;
  /** One training step; resolves once the loss is on the host. */
  step: () => Promise<void>;
  dispose: () => void;
}

/**
 * One training step as the profile cases run it: the model's forward (scoped by its own blocks), the
 * loss under 'loss', backward, the optimizer under 'optimizer', one readback.
 */
function trainStep(forward: () => ft.Tensor, lossOf: (out: ft.Tensor) => ft.Tensor, opt: { step(): void; zeroGrad(): void }): () => Promise<void> {
  return async () => {
    const loss = ft.tidy(() => {
      const out = forward();
      const l = ft.profileScope('loss', () => lossOf(out));
      l.backward();
      return l.detach();
    });
    ft.profileScope('optimizer', () => {
      opt.step();
      opt.zeroGrad();
    });
    await loss.data();
    loss.dispose();
  };
}

async function unetCase(): Promise<Case> {
  const { createTinyPipeline } = await import('@foliar/diffusion');
  const { AdamW } = await import('@foliar/nn');
  const pipe = createTinyPipeline({ seed: 0 });
  pipe.vae.dispose();
  pipe.textEncoder.dispose();
  const unet = pipe.unet;
  const B = 8;
  const opt = new AdamW(unet.parameters(), { lr: 1e-4 });
  const latents = ft.randn([B, 4, 16, 16]);
  const noise = ft.randn([B, 4, 16, 16]);
  const ctx = ft.randn([B, 77, unet.config.cross_attention_dim]);
  const ts = Array.from({ length: B }, (_, i) => (i * 997) % 1000);
  return {
    title: `tiny UNet [32, 64] train step, batch ${B}, 16x16x4 latents, 77-token context (MSE + AdamW)`,
    // the model's own block scopes are the top level; the loss and optimizer get theirs
    step: trainStep(() => unet.forward(latents, ts, ctx), (pred) => ft.mseLoss(pred, noise), opt),
    dispose: () => {
      for (const t of [latents, noise, ctx]) t.dispose();
      opt.dispose();
      unet.dispose();
    },
  };
}

async function resnetCase(): Promise<Case> {
  const { resnet18 } = await import('@foliar/classifier');
  const { SGD } = await import('@foliar/nn');
  ft.manualSeed(0);
  const B = 32;
  const model = resnet18({ numClasses: 4 });
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = ft.randn([B, 3, 64, 64]);
  const y = ft.tensor(Int32Array.from({ length: B }, (_, i) => i % 4));
  return {
    title: `ResNet18 train step, batch ${B}, 64x64 (cross-entropy + SGD momentum)`,
    step: trainStep(() => model.forward(x), (logits) => ft.crossEntropy(logits, y), opt),
    dispose: () => {
      x.dispose();
      y.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}

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
