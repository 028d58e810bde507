/**
 * Whole models: the tiny SD UNet of `createTinyPipeline` (batch 2, 32x32x4 latents, 77-token context),
 * forward (no grad) and forward + backward times, with the peak device memory of each against the
 * parameter bytes. ResNet18 training throughput and its PyTorch peer are the `resnet` suite (resnet.ts).
 */
import * as ft from '@foliar/tensor';
import type { Row, RunInfo } from '../lib/report.js';

const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Tiny UNet forward and forward+backward: median ms of a few runs, and the highest peak device memory among them. */
async function unetRows(quick: boolean): Promise<Row[]> {
  // loaded here, not at the top: a package that fails to load then fails this suite, not the whole run
  const { createTinyPipeline } = await import('@foliar/diffusion');
  const pipe = createTinyPipeline({ seed: 0 });
  const unet = pipe.unet;
  const params = unet.parameters();
  const paramBytes = params.reduce((a, p) => a + p.size * 4, 0);
  const latents = ft.randn([2, 4, 32, 32]);
  const ctx = ft.randn([2, 77, unet.config.cross_attention_dim as number]);
  const r = ft.randn([2, 4, 32, 32]);
  const runs = quick ? 3 : 5;
  const rows: Row[] = [];
  const cases: [string, () => Promise<void>][] = [
    ['forward (no grad)', async () => {
      const y = ft.noGrad(() => unet.forward(latents, [500, 500], ctx));
      await y.data();
      y.dispose();
    }],
    ['forward+backward', async () => {
      const loss = ft.tidy(() => {
        const l = unet.forward(latents, [500, 500], ctx).mul(r).sum();
        l.backward();
        return l.detach();
      });
      await loss.data();
      loss.dispose();
      unet.zeroGrad();
    }],
  ];
  try {
    for (const [label, fn] of cases) {
      await fn(); // warm-up: pipeline compiles
      const times: number[] = [];
      let peak = 0;
      const resting = ft.memory().liveBytes; // parameters, inputs, and whatever earlier suites left alive
      for (let i = 0; i < runs; i++) {
        ft.resetPeakMemory();
        const t0 = performance.now();
        await fn();
        times.push(performance.now() - t0);
        peak = Math.max(peak, ft.memory().peakBytes);
      }
      const ms = median(times);
      rows.push({
        suite: 'models', name: `tiny UNet ${label}, batch 2, 32x32x4 latents`, medianMs: ms,
        note: `peak device memory +${MiB(peak - resting)} over the resting ${MiB(resting)}; UNet parameters ${MiB(paramBytes)} (${(params.reduce((a, p) => a + p.size, 0) / 1e6).toFixed(2)}M)`,
      });
      console.error(`${rows.at(-1)!.name}: ${ms.toFixed(1)} ms, ${rows.at(-1)!.note}`);
    }
  } finally {
    latents.dispose();
    ctx.dispose();
    r.dispose();
    for (const m of [pipe.unet, pipe.vae, pipe.textEncoder]) m.dispose();
  }
  return rows;
}

export async function modelsSuite(_info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  return unetRows(opts.quick);
}
