/**
 * Does a text-to-image model learn to follow its prompt? Two latent "classes" that differ only in
 * their global level, two prompts, a tiny UNet and text encoder trained from scratch in latent space
 * (denoisingLoss, no VAE). With a zero-terminal-SNR schedule, v-prediction and trailing timesteps
 * (diffusers' rescale_betas_zero_snr; Lin et al. 2024), samples from pure noise must land on the
 * prompted class. With SD's own schedule the last timestep still carries 7% of the signal and the
 * global level leaks through the noise: the model reads it there and learns to ignore the prompt
 * (issue 11, docs/generator-recipe.md). A broken conditioning path (context dropped, text-encoder
 * gradients lost, captions paired with the wrong latents) fails this test.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import * as ft from '@foliar/tensor';
import { AdamW } from '@foliar/nn';
import { createTinyPipeline, denoisingLoss, DDPMScheduler, type PreparedImage } from '@foliar/diffusion';
import { setup, teardown } from '../helpers.js';

const test = suite('conditioning learns');
test.before(async () => {
  await setup();
});
test.after(() => teardown());

test('a tiny text-to-image model trained on two prompts draws each prompt\'s class (zero-terminal-SNR schedule)', async () => {
  ft.manualSeed(0);
  const pipe = createTinyPipeline({
    seed: 0,
    unet: { block_out_channels: [16, 32], layers_per_block: 1, sample_size: 8, norm_num_groups: 8, attention_head_dim: 4 },
    textEncoder: { max_position_embeddings: 12, num_hidden_layers: 2 },
    scheduler: { rescale_betas_zero_snr: true, prediction_type: 'v_prediction', timestep_spacing: 'trailing' },
    words: ['red', 'green', 'leaf'],
  });
  (pipe.vae.config as { scaling_factor: number }).scaling_factor = 1; // the latents below are already unit-scale
  const sched = new DDPMScheduler(pipe.scheduler.config);
  const level = { 'a red leaf': 1.5, 'a green leaf': -1.5 } as const;
  const prompts = Object.keys(level) as (keyof typeof level)[];
  // 16 latents per class: the class level on every channel plus small texture
  const items: { prep: PreparedImage; caption: string }[] = [];
  for (const p of prompts) {
    for (let i = 0; i < 16; i++) {
      const mean = ft.randn([1, 4, 8, 8], { std: 0.2, generator: new ft.Generator(items.length + 1) }).add(level[p]);
      items.push({ prep: { latentMean: mean, latentStd: ft.zeros([1, 4, 8, 8]), pixels: null }, caption: i % 4 === 0 ? '' : p });
    }
  }
  const params = [...pipe.unet.parameters(), ...pipe.textEncoder.parameters()];
  const opt = new AdamW(params, { lr: 2e-3, weightDecay: 0 });
  const gen = new ft.Generator(7);
  try {
    // 150 steps left this seed's "green" samples near the threshold (-1.13, and -0.73 after a change of
    // float summation order in the kernels: a run that had not converged); at 250 both orders land at
    // ±1.4-1.6, and so do seeds 1 and 2 at 150
    for (let step = 0; step < 250; step++) {
      const idx = Array.from({ length: 16 }, (_, i) => (step * 16 + i * 5) % items.length);
      const loss = ft.tidy(() => {
        const ctx = pipe.textEncoder.forward(pipe.tokenize(idx.map((i) => items[i]!.caption))).lastHiddenState;
        return denoisingLoss(pipe, sched, idx.map((i) => items[i]!.prep), ctx, gen, { numInstance: 16 }).loss;
      });
      opt.zeroGrad();
      loss.backward();
      opt.step();
      loss.dispose();
    }
    const means: Record<string, number> = {};
    for (const p of prompts) {
      const r = await pipe.generate({ prompt: new Array(8).fill(p), numInferenceSteps: 10, guidanceScale: 2, height: 16, width: 16, seed: 3 });
      const d = await r.latents.dataF32();
      means[p] = d.reduce((a, v) => a + v, 0) / d.length;
      r.images.dispose();
      r.latents.dispose();
    }
    assert.ok(means['a red leaf']! > 0.75, `"a red leaf" samples at level ${means['a red leaf']!.toFixed(2)} (class +1.5)`);
    assert.ok(means['a green leaf']! < -0.75, `"a green leaf" samples at level ${means['a green leaf']!.toFixed(2)} (class -1.5)`);
  } finally {
    for (const it of items) {
      it.prep.latentMean!.dispose();
      it.prep.latentStd!.dispose();
    }
    pipe.dispose();
  }
});

test.run();
