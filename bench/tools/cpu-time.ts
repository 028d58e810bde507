/**
 * Work per step as this process's CPU time (user + system, lavapipe's worker threads included), for
 * before/after comparisons of two checkouts on a machine that is not quiet: wall time moves with the
 * load (other processes take the cores), CPU time much less. On a software adapter it counts both the
 * host's dispatch work and the kernels' own work; on a real GPU it counts only the host's.
 * Cases: UNet [32, 64] batch 8 at 16² and 32² latents (training step and forward), and a chain of 300
 * small elementwise ops with autograd (dispatch-bound). Prints one JSON line: min and median of `steps`.
 *
 * node --conditions=foliar-source --import tsx bench/tools/cpu-time.ts [steps, default 5]
 * Run it from the two checkouts in turn, several rounds, and compare the minima (the least disturbed).
 */
import * as ft from '@foliar/tensor';
import { unetTrainCase } from '../lib/unet-train.js';

const steps = Number(process.argv[2] ?? 5);
await ft.init({ backend: 'webgpu' }); // the adapter being measured, not the CPU reference backend
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const stats = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return { min: +s[0]!.toFixed(1), median: +s[Math.floor(s.length / 2)]!.toFixed(1) }; };
/** `n` timed calls after one warm-up (pipelines compile, the buffer pool fills). */
async function timed(n: number, fn: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i <= n; i++) {
    const c0 = cpuMs();
    await fn();
    if (i > 0) out.push(cpuMs() - c0);
  }
  return out;
}

const result: Record<string, { min: number; median: number }> = {};
for (const size of [16, 32]) {
  const u = await unetTrainCase([32, 64], size);
  try {
    result[`unet ${size}² train step, cpu ms`] = stats(await timed(steps, async () => { await u.step(); }));
    result[`unet ${size}² forward, cpu ms`] = stats(await timed(steps, () => u.forward()));
  } finally {
    u.dispose();
  }
}
{
  const a = ft.keep(ft.randn([64, 64]).requiresGrad_(true));
  result['300 small ops fwd+bwd, cpu ms'] = stats(await timed(steps * 6, async () => {
    const l = ft.tidy(() => {
      let h = a;
      for (let k = 0; k < 100; k++) h = h.mul(1.001).add(0.01).relu();
      const s = h.sum();
      s.backward();
      return s.detach();
    });
    await l.data();
    l.dispose();
    a.grad?.dispose();
    a.grad = null;
  }));
  a.dispose();
}
console.log(JSON.stringify(result));
