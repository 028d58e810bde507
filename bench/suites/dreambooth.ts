/**
 * DreamBooth training steps through the real entry point, `trainDreamBooth`, on the small SD-shaped
 * pipeline of `createTinyPipeline()` (UNet [32, 64] with cross-attention, VAE [32, 64] = 2x
 * downsampling): latents 16² (32 px images) and 32² (64 px), VAE latents cached or encoded every
 * step, gradient checkpointing off or on, full UNet fine-tuning or LoRA rank 4; prior preservation on
 * (batch = 1 instance + 1 class image). Per case: median step time after warm-up, the time to the
 * first step (where caching moves the VAE work), and the peak device memory of the timed
 * steps above what was resident before the call. Ratios (caching speed-up, checkpointing memory
 * saving) are within this run. No peer: no other JavaScript library trains diffusion models.
 */
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { writePng } from '@foliar/report';
import type { FineTuneMethod } from '@foliar/diffusion';
import type { Row, RunInfo } from '../lib/report.js';

interface Case {
  latent: 16 | 32;
  cache: boolean;
  checkpointing: boolean;
  method: 'full' | 'lora';
}

/** One `trainDreamBooth` call. */
interface Run {
  /** Wall time between consecutive `onStep` calls after the warm-up, ms. */
  times: number[];
  /** Peak device bytes during the timed steps minus the bytes live before the call. */
  peakBytes: number;
  trainedParams: number;
  /** From the call to the first `onStep`: class-image listing, adapter setup, VAE encoding when caching, step 1. */
  setupMs: number;
}

interface Measured {
  row: Row;
  peakMiB: number;
}

const WARM = 2;
const MiB = (b: number) => b / 2 ** 20;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const onOff = (b: boolean) => (b ? 'on' : 'off');
const nameOf = (c: Case) => `dreambooth ${c.method} ${c.latent}² latents cache=${onOff(c.cache)} ckpt=${onOff(c.checkpointing)}`;
const sameCase = (a: Case, b: Case) => a.latent === b.latent && a.method === b.method && a.cache === b.cache && a.checkpointing === b.checkpointing;

async function runOnce(c: Case, dir: string, steps: number): Promise<Run> {
  // loaded here: a package that fails to load fails this suite, not the whole bench
  const { createTinyPipeline, trainDreamBooth, FullFineTune, LoRA } = await import('@foliar/diffusion');
  const { renderLeaf } = await import('@foliar/classifier');
  const res = c.latent * 2; // the tiny VAE downsamples 2x
  const leaf = (label: 'multiple_diseases' | 'healthy', seed: number) => renderLeaf({ label, seed, width: res, height: res });
  // class images already on disk, so `ensureClassImages` generates nothing inside the measurement
  const classDir = join(dir, `class-${res}`);
  mkdirSync(classDir, { recursive: true });
  for (let i = 0; i < 2; i++) writePng(join(classDir, `class-${i}.png`), leaf('healthy', 100 + i));

  const pipe = createTinyPipeline({ seed: 0 });
  const method: FineTuneMethod = c.method === 'lora' ? new LoRA({ rank: 4 }) : new FullFineTune();
  // count what the method hands the optimizer, whichever method it is
  let trained = 0;
  const attach = method.attach.bind(method);
  method.attach = (p) => {
    const params = attach(p);
    trained = params.reduce((a, t) => a + t.size, 0);
    return params;
  };
  const outputDir = join(dir, 'run');
  const resting = ft.memory().liveBytes;
  const times: number[] = [];
  let last = 0, setup = 0, peak = 0;
  const t0 = performance.now();
  try {
    await trainDreamBooth(pipe, {
      instanceImages: [leaf('multiple_diseases', 1), leaf('multiple_diseases', 2)],
      instancePrompt: 'a photo of a <diseaes-leaf> leaf',
      classPrompt: 'a photo of a leaf', classImagesDir: classDir, numClassImages: 2, trainBatchSize: 1,
      resolution: res, method, maxTrainSteps: WARM + steps, learningRate: 1e-5,
      cacheLatents: c.cache, gradientCheckpointing: c.checkpointing,
      outputDir, quiet: true, checkpointingSteps: 0,
      onStep: ({ step }) => {
        const now = performance.now();
        if (step === 1) setup = now - t0;
        if (step > WARM) {
          times.push(now - last);
          peak = Math.max(peak, ft.memory().peakBytes);
        }
        // the next step is the first timed one: its peak starts from what is live now
        if (step === WARM) ft.resetPeakMemory();
        last = now;
      },
    });
  } finally {
    method.dispose?.();
    pipe.dispose();
    rmSync(outputDir, { recursive: true, force: true });
  }
  return { times, peakBytes: peak - resting, trainedParams: trained, setupMs: setup };
}

function summarize(c: Case, runs: Run[]): Measured {
  const times = runs.flatMap((r) => r.times);
  const ms = median(times);
  // the peak is deterministic up to allocation order: the largest over the rounds
  const peakMiB = MiB(Math.max(...runs.map((r) => r.peakBytes)));
  const setup = median(runs.map((r) => r.setupMs)) / 1000;
  return {
    peakMiB,
    row: {
      suite: 'dreambooth', name: nameOf(c), medianMs: ms, rate: 1000 / ms, unit: 'steps/s',
      note: `${(1000 / ms).toFixed(2)} steps/s (min ${Math.min(...times).toFixed(0)} ms); peak +${peakMiB.toFixed(1)} MiB; ${(runs[0]!.trainedParams / 1e6).toFixed(3)}M trained params; setup+step 1 ${setup.toFixed(1)} s; ${times.length} steps in ${runs.length} runs`,
    },
  };
}

export async function dreamboothSuite(_info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  // the timed steps of a case are split over rounds (alternating case order): on a shared machine the
  // load drifts over tens of seconds, and back-to-back cases would otherwise compare different loads
  const rounds = opts.quick ? 1 : 3;
  const perRound = opts.quick ? 5 : 3;
  const cases: Case[] = [];
  for (const latent of opts.quick ? ([16] as const) : ([16, 32] as const))
    for (const method of ['full', 'lora'] as const)
      for (const cache of [true, false])
        for (const checkpointing of [false, true]) cases.push({ latent, method, cache, checkpointing });
  const dir = mkdtempSync(join(tmpdir(), 'foliar-bench-db-'));
  const runs = cases.map((): Run[] => []);
  try {
    for (const latent of new Set(cases.map((c) => c.latent))) {
      const mine = cases.map((c, i) => [c, i] as const).filter(([c]) => c.latent === latent);
      // one untimed run first: shader compilation and buffer-pool growth at a new shape otherwise
      // land on whichever case happens to run first
      await runOnce(mine[0]![0], dir, 1);
      for (let r = 0; r < rounds; r++) {
        for (const [c, i] of r % 2 ? [...mine].reverse() : mine) {
          const run = await runOnce(c, dir, perRound);
          console.error(`${nameOf(c)} round ${r + 1}/${rounds}: steps ${run.times.map((t) => t.toFixed(0)).join(' ')} ms, peak +${MiB(run.peakBytes).toFixed(1)} MiB, setup ${(run.setupMs / 1000).toFixed(1)} s`);
          runs[i]!.push(run);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const done = cases.map((c, i) => summarize(c, runs[i]!));
  // within-run ratios: what caching buys in step time and checkpointing in peak memory
  const get = (c: Case) => done[cases.findIndex((k) => sameCase(k, c))]!;
  const summary = ['dreambooth summary (ratios within this run):', '| case | caching speed-up (ckpt off / on) | ckpt peak MiB off → on (saving) | ckpt step-time cost |', '| --- | --- | --- | --- |'];
  for (const c of cases.filter((k) => k.cache && !k.checkpointing)) {
    const speed = (ck: boolean) => (get({ ...c, cache: false, checkpointing: ck }).row.medianMs / get({ ...c, checkpointing: ck }).row.medianMs).toFixed(2);
    const mem = (cache: boolean) => {
      const off = get({ ...c, cache }), on = get({ ...c, cache, checkpointing: true });
      return { text: `${off.peakMiB.toFixed(1)} → ${on.peakMiB.toFixed(1)} (${(100 * (1 - on.peakMiB / off.peakMiB)).toFixed(0)}%)`, cost: (on.row.medianMs / off.row.medianMs).toFixed(2) };
    };
    const [mOn, mOff] = [mem(true), mem(false)];
    summary.push(`| ${c.method} ${c.latent}² | ${speed(false)}x / ${speed(true)}x | cache on: ${mOn.text}; cache off: ${mOff.text} | ${mOn.cost}x / ${mOff.cost}x |`);
  }
  console.error(summary.join('\n'));
  return done.map((m) => m.row);
}
