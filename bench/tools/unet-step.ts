/**
 * The unet suite's first case alone: UNet [32, 64], batch 8, 16x16x4 latents, 77-token context, one
 * training step (forward, MSE, backward, AdamW, loss read back); prints the median of `steps` steps
 * after a warm-up as JSON. For before/after comparisons run from two checkouts in turn (alternating).
 *
 * node --conditions=foliar-source --import tsx bench/tools/unet-step.ts [steps]
 */
import * as ft from '@foliar/tensor';
import { unetTrainCase } from '../lib/unet-train.js';

const steps = Number(process.argv[2] ?? 5);
await ft.init({ backend: 'webgpu' });
const u = await unetTrainCase([32, 64], 16);
const times: number[] = [];
let loss0 = NaN;
for (let i = 0; i <= steps; i++) {
  const t0 = performance.now();
  const v = await u.step();
  if (i === 0) loss0 = v;
  if (i > 0) times.push(performance.now() - t0);
}
u.dispose();
const sorted = [...times].sort((a, b) => a - b);
console.log(JSON.stringify({ medianMs: sorted[Math.floor(sorted.length / 2)], times: times.map((t) => Math.round(t)), firstLoss: loss0 }));
ft.shutdown();
