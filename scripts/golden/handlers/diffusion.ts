import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import {
  StableDiffusionPipeline, CLIPTokenizer, loadTextEncoder, loadUNet, loadVAE, DDIMScheduler, DDPMScheduler, type SchedulerConfig,
} from '@foliar/diffusion';
import type { CaseContext, Handler } from '../context.js';

const MODEL_TOL = { rtol: 2e-4, atol: 1e-5 };

function pipelineDir(ctx: CaseContext): string {
  return join(ctx.dir, ctx.attr<string>('pipeline_dir', ctx.c.group));
}

async function ids(ctx: CaseContext, name: string): Promise<number[][]> {
  const r = await ctx.raw(name);
  const [b, l] = r.shape as [number, number];
  return Array.from({ length: b }, (_, i) => Array.from(r.data.subarray(i * l, (i + 1) * l)));
}

const textEncoder: Handler = async (ctx) => {
  const dir = pipelineDir(ctx);
  const te = await loadTextEncoder(join(dir, 'text_encoder'));
  const prompts = ctx.c.attrs?.prompts as string[] | undefined;
  const stored = await ids(ctx, 'input_ids');
  if (prompts) {
    const tok = await CLIPTokenizer.fromFolder(join(dir, 'tokenizer'));
    const mine = tok.call(prompts, { padding: 'max_length', maxLength: 77, truncation: true }).inputIds;
    ctx.checks.push({ name: 'input_ids (tokenizer)', diff: exactIds(mine, stored) });
  }
  const out = te.forward(stored);
  await ctx.check('last_hidden_state', out.lastHiddenState, 'last_hidden_state', MODEL_TOL);
  await ctx.check('pooler_output', out.pooledOutput, 'pooler_output', MODEL_TOL);
  te.dispose();
};

function exactIds(a: number[][], b: number[][]): { maxAbs: number; maxRel: number; ok: boolean; worst: number } {
  let bad = 0;
  a.forEach((row, i) => row.forEach((v, j) => (bad += v === b[i]?.[j] ? 0 : 1)));
  if (a.length !== b.length) bad++;
  return { maxAbs: bad, maxRel: bad, ok: bad === 0, worst: -1 };
}

const unetCase: Handler = async (ctx) => {
  const m = await loadUNet(join(pipelineDir(ctx), 'unet'));
  const sample = await ctx.t('sample');
  const ctxEmb = await ctx.t('encoder_hidden_states');
  const ts = Array.from((await ctx.raw('timestep')).data);
  const out = ft.noGrad(() => m.forward(sample, ts, ctxEmb));
  await ctx.check('out', out, 'out', MODEL_TOL);
  m.dispose();
};

const vaeCase: Handler = async (ctx) => {
  const vae = await loadVAE(join(pipelineDir(ctx), 'vae'));
  const image = await ctx.t('image');
  const dist = ft.noGrad(() => vae.encode(image));
  await ctx.check('latent_mean', dist.mean, 'latent_mean', MODEL_TOL);
  await ctx.check('latent_std', dist.std, 'latent_std', MODEL_TOL);
  await ctx.check('latent_logvar', dist.logvar, 'latent_logvar', MODEL_TOL);
  await ctx.check('decode_of_mean', ft.noGrad(() => vae.decode(dist.mean)), 'decode_of_mean', MODEL_TOL);
  const z = await ctx.t('z');
  await ctx.check('decode_of_z', ft.noGrad(() => vae.decode(z)), 'decode_of_z', MODEL_TOL);
  dist.dispose();
  vae.dispose();
};
const pipelineCase: Handler = async (ctx) => {
  const pipe = await StableDiffusionPipeline.fromPretrained(pipelineDir(ctx));
  const prompt = ctx.attr<string>('prompt');
  const mine = pipe.tokenize([prompt, '']);
  ctx.checks.push({ name: 'input_ids_prompt', diff: exactIds([mine[0]!], await ids(ctx, 'input_ids_prompt')) });
  ctx.checks.push({ name: 'input_ids_negative', diff: exactIds([mine[1]!], await ids(ctx, 'input_ids_negative')) });
  const emb = pipe.encodePrompt([prompt], null, true);
  await ctx.check('prompt_embeds_cfg', emb, 'prompt_embeds_cfg', MODEL_TOL);
  emb.dispose();
  const latents = await ctx.t('latents_init');
  const steps = ctx.attr<number>('num_inference_steps');
  const seen: { step: number; input: Float32Array; output: Float32Array; latents?: Float32Array }[] = [];
  const pending: Promise<void>[] = [];
  const res = await pipe.generate({
    prompt,
    numInferenceSteps: steps,
    guidanceScale: ctx.attr<number>('guidance_scale'),
    latents,
    onUNet: ({ step, input, output }) => {
      const rec = { step, input: new Float32Array(0), output: new Float32Array(0) } as (typeof seen)[number];
      seen.push(rec);
      pending.push(input.dataF32().then((d) => void (rec.input = d)));
      pending.push(output.dataF32().then((d) => void (rec.output = d)));
    },
    onStep: ({ step, latents: l }) => {
      pending.push(l.dataF32().then((d) => void (seen[step]!.latents = d)));
    },
  });
  await Promise.all(pending);
  ctx.checks.push({ name: 'timesteps', diff: exactIds([pipe.scheduler.timesteps], [Array.from((await ctx.raw('timesteps')).data)]) });
  for (const s of seen) {
    await ctx.checkArray(`step${s.step}_unet_in`, s.input, `step${s.step}_unet_in`, MODEL_TOL);
    await ctx.checkArray(`step${s.step}_unet_out`, s.output, `step${s.step}_unet_out`, MODEL_TOL);
    if (s.latents) await ctx.checkArray(`step${s.step}_latents`, s.latents, `step${s.step}_latents`, MODEL_TOL);
  }
  await ctx.check('image', res.images, 'image', MODEL_TOL);
  res.images.dispose();
  res.latents.dispose();
  pipe.dispose();
};

const ddimCase: Handler = async (ctx) => {
  const s = new DDIMScheduler(ctx.attr<Partial<SchedulerConfig>>('config'));
  await ctx.checkArray('alphas_cumprod', s.alphasCumprod, 'alphas_cumprod');
  const n = ctx.c.tensors.timesteps!.shape[0]!;
  s.setTimesteps(n);
  ctx.checks.push({ name: 'timesteps', diff: exactIds([s.timesteps], [Array.from((await ctx.raw('timesteps')).data)]) });
  for (let i = 0; i < n; i++) {
    const sample = await ctx.t(i === 0 ? 'sample0' : `prev_sample${i - 1}`);
    const out = await ctx.t(`model_output${i}`);
    const r = s.step(out, s.timesteps[i]!, sample, { eta: ctx.attr<number>('eta', 0) });
    await ctx.check(`prev_sample${i}`, r.prevSample, `prev_sample${i}`);
    await ctx.check(`pred_original_sample${i}`, r.predOriginalSample, `pred_original_sample${i}`);
  }
};

const ddpmCase: Handler = async (ctx) => {
  const s = new DDPMScheduler(ctx.attr<Partial<SchedulerConfig>>('config'));
  await ctx.checkArray('betas', s.betas, 'betas');
  await ctx.checkArray('alphas_cumprod', s.alphasCumprod, 'alphas_cumprod');
  const ts = Array.from((await ctx.raw('add_noise_timesteps')).data);
  await ctx.check('noisy', s.addNoise(await ctx.t('x0'), await ctx.t('noise'), ts), 'noisy');
  s.setTimesteps(ctx.attr<number>('num_inference_steps'));
  ctx.checks.push({ name: 'inference_timesteps', diff: exactIds([s.timesteps], [Array.from((await ctx.raw('inference_timesteps')).data)]) });
  const r = s.step(await ctx.t('model_output'), ctx.attr<number>('step_timestep'), await ctx.t('sample'), { varianceNoise: await ctx.t('variance_noise') });
  await ctx.check('prev_sample', r.prevSample, 'prev_sample');
  await ctx.check('pred_original_sample', r.predOriginalSample, 'pred_original_sample');
};

export const diffusionHandlers: Record<string, Handler> = {
  CLIPTextModel: textEncoder,
  UNet2DConditionModel: unetCase,
  AutoencoderKL: vaeCase,
  'StableDiffusionPipeline.__call__': pipelineCase,
  'DDIMScheduler.step': ddimCase,
  DDPMScheduler: ddpmCase,
};
