/**
 * Stable Diffusion 1.5 at its real size (issue 16): a random SD 1.5 pipeline (`create-random`, made once
 * under bench/.scratch) loaded, one 512×512 image with 2 DDIM steps and guidance, a VAE encode + decode
 * at 512², one DreamBooth step with prior preservation (LoRA rank 4, gradient checkpointing) and one
 * full fine-tuning step with gradient checkpointing. Each row: median time, device peak above what was
 * live before it, and the process's host peak so far. `--quick` or FOLIAR_SD15=small runs the
 * `sd15-small` preset (SD 1.5's layout at a fifth of the widths). On an adapter with 128 MiB bindings
 * (lavapipe) the full size runs through the split paths: the token embedding in row shards, the VAE
 * tiled at 512². A software adapter trains 2 steps (the second timed) instead of 4, and the full
 * fine-tuning step runs only when its estimated need (weights, gradients and Adam's two moments in f32,
 * plus the LoRA step's activations), added to what the process holds, fits in 80% of the host's memory
 * (on a software adapter device memory is host memory); otherwise its row says what it would need.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import type { FineTuneMethod } from '@foliar/diffusion';
import type { Row, RunInfo } from '../lib/report.js';

const MiB = (b: number) => b / 2 ** 20;
const hostPeakMiB = () => process.resourceUsage().maxRSS / 1024;

async function measured(name: string, fn: () => Promise<void>, runs = 1): Promise<{ ms: number; devicePeakMiB: number }> {
  const times: number[] = [];
  let peak = 0;
  for (let i = 0; i < runs; i++) {
    const resting = ft.memory().liveBytes;
    ft.resetPeakMemory();
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
    peak = Math.max(peak, ft.memory().peakBytes - resting);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  console.error(`${name}: ${(ms / 1000).toFixed(1)} s, device peak +${MiB(peak).toFixed(0)} MiB, host peak ${hostPeakMiB().toFixed(0)} MiB`);
  return { ms, devicePeakMiB: MiB(peak) };
}

export async function sd15Suite(_info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const { createRandomPipeline, StableDiffusionPipeline, schedulerFromConfig, trainDreamBooth, LoRA, FullFineTune } = await import('@foliar/diffusion');
  const { renderLeaf } = await import('@foliar/classifier');
  const { writePng } = await import('@foliar/report');
  const preset = opts.quick || process.env.FOLIAR_SD15 === 'small' ? 'sd15-small' : 'sd15';
  const root = join(import.meta.dirname, '..', '.scratch');
  const dir = join(root, `random-${preset}`);
  const merges = join(process.env.FOLIAR_SHARED ?? join(import.meta.dirname, '..', '..', '..', 'shared'), 'golden', 'clip_tokenizer', 'bpe_simple_vocab_16e6.txt.gz');
  if (!existsSync(join(dir, 'model_index.json'))) {
    const t0 = performance.now();
    await createRandomPipeline(dir, { preset, merges, seed: 0 });
    console.error(`${preset}: random pipeline written in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const rows: Row[] = [];
  const software = ft.backendInfo().adapter?.isSoftware ?? true;
  const row = (name: string, m: { ms: number; devicePeakMiB: number }, extra = ''): Row => ({
    suite: 'sd15', name: `${preset}${dt}: ${name}`, medianMs: m.ms,
    note: `device peak +${m.devicePeakMiB.toFixed(0)} MiB; host peak ${hostPeakMiB().toFixed(0)} MiB${extra}`,
  });
  const dtype = process.env.FOLIAR_SD15_DTYPE === 'f16' ? ('float16' as const) : ('float32' as const);
  const loadOpts = { dtype };
  const dt = dtype === 'float16' ? ', f16 weights' : '';
  let pipe: InstanceType<typeof StableDiffusionPipeline> | null = null;
  const load = await measured('load', async () => {
    pipe = await StableDiffusionPipeline.fromPretrained(dir, loadOpts);
  });
  const p = pipe! as InstanceType<typeof StableDiffusionPipeline>;
  rows.push(row('load the diffusers folder', load, `; ${MiB(ft.memory().liveBytes).toFixed(0)} MiB resident after`));
  try {
    p.scheduler = schedulerFromConfig(p.scheduler.config, 'DDIMScheduler');
    rows.push(row('generate 512x512, 2 DDIM steps, guidance 7.5', await measured('generate', async () => {
      const r = await p.generate({ prompt: 'a photo of an apple leaf', numInferenceSteps: 2, guidanceScale: 7.5, seed: 0, height: 512, width: 512 });
      await r.images.data();
      r.images.dispose();
      r.latents?.dispose();
    })));
    rows.push(row('VAE encode + decode 512x512', await measured('vae', async () => {
      const x = ft.rand([1, 3, 512, 512]).mul(2).sub(1);
      const y = ft.tidy(() => ft.noGrad(() => p.vae.decode(p.vae.encode(x).mode())));
      await y.data();
      x.dispose();
      y.dispose();
    }), `; ${p.vae.lastTiling ? `tiled: ${JSON.stringify(p.vae.lastTiling)}` : 'untiled'}`));
  } catch (e) {
    rows.push({ suite: 'sd15', name: `${preset}: inference failed`, medianMs: NaN, note: (e as Error).message.slice(0, 200) });
  }
  p.dispose();
  if (process.env.FOLIAR_SD15_PARTS === 'inference') return rows;
  // training steps: a fresh pipeline per method (the method changes its UNet), 512 px leaves as images
  const work = join(root, 'sd15-train');
  rmSync(work, { recursive: true, force: true });
  const classDir = join(work, 'class');
  mkdirSync(classDir, { recursive: true });
  for (let i = 0; i < 2; i++) writePng(join(classDir, `class-${i}.png`), renderLeaf({ label: 'healthy', seed: 100 + i, width: 512, height: 512 }));
  let loraPeak = 0, loraResting = 0;
  for (const method of ['lora', 'full'] as const) {
    if (method === 'full' && software) {
      // what the LoRA run held (all three models' weights), plus the UNet's gradients and Adam's m and v
      // in f32, plus what the LoRA step's activations took
      const unetBytes = 4 * (preset === 'sd15' ? 859_520_964 : 0);
      const need = loraResting + 3 * unetBytes + loraPeak * 2 ** 20;
      // device memory is this process's memory on a software adapter: what it holds now counts too
      const hostNeed = process.memoryUsage().rss + 3 * unetBytes + loraPeak * 2 ** 20 + loraResting;
      if (unetBytes > 0 && hostNeed > 0.8 * totalmem()) {
        rows.push({ suite: 'sd15', name: `${preset}: DreamBooth step 512 px, full UNet: not run`, medianMs: NaN,
          note: `needs ~${(need / 2 ** 30).toFixed(1)} GiB (weights ${(loraResting / 2 ** 30).toFixed(1)}, the UNet's gradients and Adam m and v ${(3 * unetBytes / 2 ** 30).toFixed(1)}, activations as in the LoRA step ${(loraPeak / 1024).toFixed(1)}) on the device; with this process's ${(process.memoryUsage().rss / 2 ** 30).toFixed(1)} GiB resident that exceeds 80% of this ${(totalmem() / 2 ** 30).toFixed(0)} GiB host (a 24 GiB GPU would hold it)` });
        continue;
      }
    }
    const fresh = await StableDiffusionPipeline.fromPretrained(dir, loadOpts);
    const m: FineTuneMethod = method === 'lora' ? new LoRA({ rank: 4 }) : new FullFineTune();
    const times: number[] = [];
    let last = 0, peak = 0, resting = 0;
    try {
      resting = ft.memory().liveBytes;
      await trainDreamBooth(fresh, {
        instanceImages: [renderLeaf({ label: 'multiple_diseases', seed: 1, width: 512, height: 512 })],
        instancePrompt: 'a photo of a <diseaes-leaf> leaf', classPrompt: 'a photo of a leaf', classImagesDir: classDir, numClassImages: 2,
        trainBatchSize: 1, resolution: 512, method: m, maxTrainSteps: preset === 'sd15' && !software ? 4 : 2, learningRate: 1e-5, gradientCheckpointing: true,
        outputDir: join(work, method), quiet: true, checkpointingSteps: 0,
        onStep: ({ step }) => {
          const now = performance.now();
          if (step > 1) times.push(now - last);
          if (step === 1) ft.resetPeakMemory();
          peak = Math.max(peak, ft.memory().peakBytes);
          last = now;
        },
      });
      times.sort((a, b) => a - b);
      const ms = times[Math.floor(times.length / 2)]!;
      console.error(`dreambooth ${method}: ${(ms / 1000).toFixed(1)} s/step, device peak +${MiB(peak - resting).toFixed(0)} MiB`);
      if (method === 'lora') {
        loraPeak = MiB(peak - resting);
        loraResting = resting;
      }
      rows.push(row(`DreamBooth step 512 px, prior preservation, ${method === 'lora' ? 'LoRA r4' : 'full UNet'}, gradient checkpointing`, { ms, devicePeakMiB: MiB(peak - resting) }));
    } catch (e) {
      rows.push({ suite: 'sd15', name: `${preset}: DreamBooth ${method} failed`, medianMs: NaN, note: (e as Error).message.slice(0, 200) });
    } finally {
      m.dispose?.();
      fresh.dispose();
    }
  }
  rmSync(work, { recursive: true, force: true });
  return rows;
}
