/**
 * The training steps that the step tools measure: the tiny SD UNet of `createTinyPipeline` (block
 * channels [32, 64]), batch 8, 16x16x4 latents, 77-token context, MSE on the noise + AdamW; and
 * ResNet18, batch 32, 64x64, cross-entropy + SGD momentum. Used by the `profile` suite and
 * `tools/dispatch-sites.ts`, so both look at the same step.
 */
import * as ft from '@foliar/tensor';

export interface StepCase {
  title: string;
  /** One training step; resolves once the loss is on the host. */
  step: () => Promise<void>;
  dispose: () => void;
}

/**
 * One training step as the profile cases run it: the model's forward (scoped by its own blocks), the
 * loss under 'loss', backward, the optimizer under 'optimizer', one readback.
 */
export function trainStep(forward: () => ft.Tensor, lossOf: (out: ft.Tensor) => ft.Tensor, opt: { step(): void; zeroGrad(): void }): () => Promise<void> {
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

export async function unetCase(): Promise<StepCase> {
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

export async function resnetCase(): Promise<StepCase> {
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
