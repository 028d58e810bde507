/**
 * Whole models. ResNet18 training step (forward + cross-entropy + backward + SGD momentum), batch 32
 * at 64x64, in images/s, with PyTorch on this machine's CPU as the peer when a python3 with torch is
 * found (bench/suites/resnet_torch.py). It takes tens of seconds on a software adapter, so a --quick
 * run includes it only under `--filter models`. Then the tiny SD UNet of `createTinyPipeline` (batch
 * 2, 32x32 latents, 77-token context): forward (no grad) and forward + backward times, with the peak
 * device memory of each against the parameter bytes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { SGD } from '@foliar/nn';
import type { Row, RunInfo } from '../lib/report.js';

const BATCH = 32, SIZE = 64;
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median ms of `steps` training steps after one warm-up step (tinybench's warm-up would take minutes here). */
async function resnetStepMs(steps: number): Promise<number> {
  // loaded here, not at the top: a package that fails to load then fails this suite, not the whole run
  const { resnet18 } = await import('@foliar/classifier');
  ft.manualSeed(0);
  const model = resnet18({ numClasses: 4 });
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = ft.randn([BATCH, 3, SIZE, SIZE]);
  const y = ft.tensor(Int32Array.from({ length: BATCH }, (_, i) => i % 4));
  const times: number[] = [];
  try {
    for (let i = 0; i <= steps; i++) {
      const t0 = performance.now();
      const loss = ft.tidy(() => {
        const l = ft.crossEntropy(model.forward(x), y);
        l.backward();
        return l.detach();
      });
      opt.step();
      opt.zeroGrad();
      await loss.data(); // the device has finished the step
      loss.dispose();
      if (i > 0) times.push(performance.now() - t0);
    }
  } finally {
    x.dispose();
    y.dispose();
    opt.dispose();
    model.dispose();
  }
  return median(times);
}

/** PyTorch CPU median ms per step at SIZE, or why there is none. */
function torchMs(steps: number): { ms: number; label: string } | { skip: string } {
  const script = join(import.meta.dirname, 'resnet_torch.py');
  if (!existsSync(script)) return { skip: `PyTorch peer skipped: ${script} not found` };
  // Debian's python3-torch lives under /usr/bin/python3 when a venv python3 comes first on PATH
  const pythons = [...new Set([process.env.FOLIAR_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p))];
  const python = pythons.find((p) => spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0);
  if (!python) return { skip: `PyTorch peer skipped: python3 -c "import torch" fails for ${pythons.join(', ')}` };
  const r = spawnSync(python, [script, `sizes=${SIZE}`, `batch=${BATCH}`, `steps=${steps}`], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return { skip: `PyTorch peer failed: ${(r.stderr ?? r.error?.message ?? '').trim().split('\n').slice(-2).join(' ')}` };
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { torch: string; threads: number; results: Record<string, number> };
  return { ms: out.results[String(SIZE)]!, label: `PyTorch ${out.torch} CPU, ${out.threads} threads` };
}

async function resnetRow(steps: number, peers: boolean): Promise<Row> {
  const ms = await resnetStepMs(steps);
  const row: Row = {
    suite: 'models', name: `ResNet18 train step, batch ${BATCH}, ${SIZE}x${SIZE}`, medianMs: ms,
    rate: BATCH / (ms / 1000), unit: 'img/s', peers: {},
  };
  console.error(`resnet18 train ${SIZE}x${SIZE}: ${ms.toFixed(0)} ms/step, ${row.rate!.toFixed(1)} img/s`);
  if (peers) {
    const t = torchMs(steps);
    if ('skip' in t) {
      console.error(t.skip);
      row.peers!['pytorch-cpu'] = null;
      row.note = t.skip;
    } else {
      row.peers!['pytorch-cpu'] = t.ms;
      row.note = `${t.label}: ${(BATCH / (t.ms / 1000)).toFixed(1)} img/s`;
      console.error(`${row.name}: ${row.note}`);
    }
  }
  return row;
}

/** Tiny UNet forward and forward+backward: median ms of a few runs, peak device memory of the last one. */
async function unetRows(quick: boolean): Promise<Row[]> {
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
  const rows: Row[] = [];
  // run.ts only calls this suite under a filter that matches it, so any filter means "asked for"
  const fi = process.argv.indexOf('--filter');
  const explicit = fi >= 0 && !!process.argv[fi + 1];
  // the UNet first: ResNet's optimizer state is not all freed at once, which would inflate the UNet's resting bytes
  rows.push(...(await unetRows(opts.quick)));
  if (!opts.quick || explicit) rows.push(await resnetRow(opts.quick ? 2 : 4, opts.peers));
  else console.error('models: ResNet18 training step skipped in --quick runs (use --filter models)');
  return rows;
}
