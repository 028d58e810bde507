/**
 * The unet suite's first case alone: UNet [32, 64], batch 8, 16x16x4 latents, 77-token context, one
 * training step (forward, MSE, backward, AdamW, loss read back); prints the median of `steps` steps
 * after a warm-up as JSON. For before/after comparisons run from two checkouts in turn (alternating).
 *
 * node --conditions=foliar-source --import tsx bench/tools/unet-step.ts [steps]
 */
import * as ft from '@foliar/tensor';

const steps = Number(process.argv[2] ?? 5);
await ft.init({ backend: 'webgpu' });
const { UNet2DConditionModel } = await import('@foliar/diffusion');
const { AdamW } = await import('@foliar/nn');
ft.manualSeed(0);
const B = 8, size = 16;
const unet = new UNet2DConditionModel({
  block_out_channels: [32, 64], layers_per_block: 2, sample_size: size, in_channels: 4, out_channels: 4,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'], up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'],
  cross_attention_dim: 32, attention_head_dim: 8, norm_num_groups: 32,
});
const opt = new AdamW(unet.parameters(), { lr: 1e-4 });
const x = ft.randn([B, 4, size, size]), target = ft.randn([B, 4, size, size]), ctx = ft.randn([B, 77, 32]);
const ts = Array.from({ length: B }, (_, i) => (i * 997) % 1000);
const times: number[] = [];
let loss0 = NaN;
for (let i = 0; i <= steps; i++) {
  const t0 = performance.now();
  const loss = ft.tidy(() => {
    const l = ft.mseLoss(unet.forward(x, ts, ctx), target);
    l.backward();
    return l.detach();
  });
  opt.step();
  opt.zeroGrad();
  const v = (await loss.data())[0]!;
  if (i === 0) loss0 = v;
  loss.dispose();
  if (i > 0) times.push(performance.now() - t0);
}
const sorted = [...times].sort((a, b) => a - b);
console.log(JSON.stringify({ medianMs: sorted[Math.floor(sorted.length / 2)], times: times.map((t) => Math.round(t)), firstLoss: loss0 }));
ft.shutdown();
