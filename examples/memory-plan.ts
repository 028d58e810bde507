/**
 * The memory plan of Stable Diffusion 1.5 at 512×512 in foliar: parameter bytes per component (f32 and
 * f16), the largest single tensors against common maxStorageBufferBindingSize limits, and the largest
 * activations of one denoising step. Builds the SD1.5 configs on the CPU backend to count (~1 min).
 * Run: `node --conditions=foliar-source --import tsx examples/memory-plan.ts`
 */
import * as ft from '@foliar/tensor';
import { UNet2DConditionModel, AutoencoderKL, CLIPTextModel } from '@foliar/diffusion';

await ft.init({ backend: 'cpu' });
const MiB = 2 ** 20;
const parts = {
  unet: () => new UNet2DConditionModel({}),
  vae: () => new AutoencoderKL({}),
  text_encoder: () => new CLIPTextModel({}),
};
const limits = { 'WebGPU default (128 MiB)': 128 * MiB, '1 GiB': 1024 * MiB, '2 GiB': 2048 * MiB };
let total = 0;
for (const [name, make] of Object.entries(parts)) {
  const m = make();
  const n = m.numParameters();
  total += n;
  const biggest = [...m.stateDict()].sort((a, b) => b[1].size - a[1].size).slice(0, 2);
  console.log(`${name}: ${n.toLocaleString()} parameters = ${((n * 4) / MiB).toFixed(0)} MiB f32, ${((n * 2) / MiB).toFixed(0)} MiB f16; largest: ${biggest.map(([k, t]) => `${k} [${t.shape.join('x')}] ${((t.size * 4) / MiB).toFixed(1)} MiB`).join(', ')}`);
  m.dispose();
}
console.log(`all weights: ${((total * 4) / MiB).toFixed(0)} MiB f32, ${((total * 2) / MiB).toFixed(0)} MiB f16`);
// activations of one UNet step at 512x512 (latents 64x64), CFG batch 2, and of the VAE decode
const act = (label: string, elems: number) => {
  const bytes = elems * 4;
  const over = Object.entries(limits).filter(([, l]) => bytes > l).map(([k]) => k);
  console.log(`${label}: ${(bytes / MiB).toFixed(1)} MiB${over.length ? `  (exceeds ${over.join(', ')})` : ''}`);
};
act('UNet attention scores if materialised, 64x64 latents, 8 heads, batch 2 (foliar never allocates this)', 2 * 8 * 4096 * 4096);
act('UNet GEGLU projection [2, 4096, 2560]', 2 * 4096 * 2560);
act('UNet first-block activation [2, 320, 64, 64]', 2 * 320 * 64 * 64);
act('VAE decoder up-block conv input [1, 512, 256, 256]', 512 * 256 * 256);
act('VAE decoder [1, 256, 512, 512] (after the last upsample)', 256 * 512 * 512);
act('VAE decoder [1, 128, 512, 512]', 128 * 512 * 512);
act('VAE mid-block attention scores if materialised, 64x64 tokens, 1 head', 4096 * 4096);
