import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { loadUNet, loadTextEncoder, DDPMScheduler, readJson, priorPreservationLoss, type SchedulerConfig } from '@foliar/diffusion';
import type { CaseContext, Handler } from '../context.js';

/** One train_dreambooth.py step with prior preservation: the loss and UNet parameter gradients. */
const dreamboothCase: Handler = async (ctx: CaseContext) => {
  const dir = join(ctx.dir, ctx.attr<string>('pipeline_dir', ctx.c.group));
  const unet = await loadUNet(join(dir, 'unet'));
  const te = await loadTextEncoder(join(dir, 'text_encoder'));
  const sched = new DDPMScheduler(await readJson<Partial<SchedulerConfig>>(join(dir, 'scheduler', 'scheduler_config.json')));
  const vaeCfg = await readJson<{ scaling_factor?: number }>(join(dir, 'vae', 'config.json'));
  const scaling = vaeCfg.scaling_factor ?? 0.18215;
  // latents as the script samples them: (mean + std·eps) · scaling_factor
  const mean = await ctx.t('latent_mean'), std = await ctx.t('latent_std'), eps = await ctx.t('latent_eps');
  const latents = mean.add(std.mul(eps)).mul(scaling);
  await ctx.check('model_input', latents, 'model_input');
  const noise = await ctx.t('noise');
  const ts = Array.from((await ctx.raw('timesteps')).data);
  const noisy = sched.addNoise(latents, noise, ts);
  await ctx.check('noisy_model_input', noisy, 'noisy_model_input');
  const r = await ctx.raw('input_ids');
  const [b, l] = r.shape as [number, number];
  const ids = Array.from({ length: b }, (_, i) => Array.from(r.data.subarray(i * l, (i + 1) * l)));
  const ehs = ft.noGrad(() => te.forward(ids).lastHiddenState);
  await ctx.check('encoder_hidden_states', ehs, 'encoder_hidden_states', { rtol: 2e-4, atol: 1e-5 });
  const pred = unet.forward(noisy, ts, ehs);
  await ctx.check('model_pred', pred, 'model_pred', { rtol: 2e-4, atol: 1e-5 });
  const target = sched.target(latents, noise, ts);
  const { loss, instanceLoss, priorLoss } = priorPreservationLoss(pred, target, { numInstance: b / 2, priorLossWeight: ctx.attr<number>('prior_loss_weight', 1) });
  await ctx.check('loss', loss, 'loss', { rtol: 2e-4, atol: 1e-6 });
  await ctx.check('instance_loss', instanceLoss, 'instance_loss', { rtol: 2e-4, atol: 1e-6 });
  await ctx.check('prior_loss', priorLoss, 'prior_loss', { rtol: 2e-4, atol: 1e-6 });
  loss.backward();
  const params = new Map(unet.namedParameters());
  for (const name of Object.keys(ctx.c.tensors)) {
    if (!name.startsWith('grad/')) continue;
    await ctx.check(name, params.get(name.slice(5))?.grad, name, { rtol: 1e-3, atol: 1e-6 });
  }
  // L2 norm of every UNet parameter's gradient (attrs.grad_l2_norms_all_unet_params)
  const norms = ctx.c.attrs?.grad_l2_norms_all_unet_params as Record<string, number> | undefined;
  if (norms) {
    const mine: number[] = [], ref: number[] = [];
    for (const [k, v] of Object.entries(norms)) {
      const g = params.get(k)?.grad;
      mine.push(g ? Math.sqrt(await g.square().sum().item()) : 0);
      ref.push(v);
    }
    const { compare } = await import('../compare.js');
    ctx.checks.push({ name: 'grad_l2_norms_all_unet_params', diff: compare(mine, ref, { rtol: 1e-3, atol: 1e-7 }) });
  }
  unet.dispose();
  te.dispose();
};

export const dreamboothHandlers: Record<string, Handler> = { 'train_dreambooth step': dreamboothCase };
