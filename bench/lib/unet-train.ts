/**
 * The training-speed case of issue 12, built once for the `unet` suite and the bench tools: a
 * UNet2DConditionModel with the study's layout (`channels` per level, cross-attention on all but the
 * first level), AdamW, batch `batch` of `size`² 4-channel latents against a 77-token context, seeded so
 * every caller sees the same weights and inputs (first-step loss 1.1012305… at [32, 64], 16²).
 */
import * as ft from '@foliar/tensor';

export const UNET_CONTEXT = 77;
export const UNET_CROSS = 32;
export const UNET_HEADS = 8;

export interface UNetTrainCase {
  params: number;
  /** One training step (forward, MSE, backward, AdamW); resolves with the loss, read back. */
  step(): Promise<number>;
  /** One forward without gradients, its output read back. */
  forward(): Promise<void>;
  dispose(): void;
}

export async function unetTrainCase(channels: number[], size: number, batch = 8): Promise<UNetTrainCase> {
  const { UNet2DConditionModel } = await import('@foliar/diffusion');
  const { AdamW } = await import('@foliar/nn');
  ft.manualSeed(0);
  const levels = channels.length;
  const unet = new UNet2DConditionModel({
    block_out_channels: channels, layers_per_block: 2, sample_size: size, in_channels: 4, out_channels: 4,
    down_block_types: ['DownBlock2D', ...Array<string>(levels - 1).fill('CrossAttnDownBlock2D')],
    up_block_types: [...Array<string>(levels - 1).fill('CrossAttnUpBlock2D'), 'UpBlock2D'],
    cross_attention_dim: UNET_CROSS, attention_head_dim: UNET_HEADS, norm_num_groups: 32,
  });
  const params = unet.parameters().reduce((a, p) => a + p.size, 0);
  const opt = new AdamW(unet.parameters(), { lr: 1e-4 });
  const x = ft.randn([batch, 4, size, size]);
  const target = ft.randn([batch, 4, size, size]);
  const ctx = ft.randn([batch, UNET_CONTEXT, UNET_CROSS]);
  const ts = Array.from({ length: batch }, (_, i) => (i * 997) % 1000);
  return {
    params,
    async step() {
      const loss = ft.tidy(() => {
        const l = ft.mseLoss(unet.forward(x, ts, ctx), target);
        l.backward();
        return l.detach();
      });
      opt.step();
      opt.zeroGrad();
      const v = (await loss.data())[0]!;
      loss.dispose();
      return v;
    },
    async forward() {
      const y = ft.noGrad(() => unet.forward(x, ts, ctx));
      await y.data();
      y.dispose();
    },
    dispose() {
      for (const t of [x, target, ctx]) t.dispose();
      opt.dispose();
      unet.dispose();
    },
  };
}
