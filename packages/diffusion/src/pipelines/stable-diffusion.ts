import { tidy, cat, randn, noGrad, Generator, type Tensor, type Backend } from '@foliar/tensor';
// files through the platform port: paths in Node, URLs in a browser (package.json `imports`)
import { joinPath as join, mkdirp, writeFileAtomic } from '#platform';
import type { UNet2DConditionModel } from '../models/unet/unet-2d-condition.js';
import type { AutoencoderKL } from '../models/vae/autoencoder-kl.js';
import type { CLIPTextModel } from '../models/clip/clip-text-model.js';
import { CLIPTokenizer } from '../tokenizer/clip-tokenizer.js';
import { schedulerFromConfig, resolveSchedulerConfig, SCHEDULER_REQUIRED, type Scheduler } from '../schedulers/index.js';
import { loadUNet, loadVAE, loadTextEncoder, saveModel, readUNetConfig, readVAEConfig, readTextEncoderConfig, type LoadModelOptions } from '../loading/models.js';
import { readJson } from '../loading/files.js';

export interface PipelineComponents {
  tokenizer: CLIPTokenizer;
  textEncoder: CLIPTextModel;
  vae: AutoencoderKL;
  unet: UNet2DConditionModel;
  scheduler: Scheduler;
}

export interface GenerateOptions {
  prompt: string | string[];
  negativePrompt?: string | string[];
  numInferenceSteps?: number;
  guidanceScale?: number;
  /**
   * diffusers' guidance_rescale φ (Lin et al. 2024, for zero-terminal-SNR models): the guided output is
   * rescaled to the conditional output's standard deviation and mixed, φ·rescaled + (1 − φ)·guided, so
   * strong guidance does not over-expose. Default 0 (off).
   */
  guidanceRescale?: number;
  /** Seed of the latent noise (ignored when `generator` or `latents` is given). */
  seed?: number;
  generator?: Generator;
  height?: number;
  width?: number;
  numImagesPerPrompt?: number;
  /** Initial latents [B, C, h, w] (already unscaled noise). */
  latents?: Tensor;
  /** Called after every denoising step. */
  onStep?: (info: { step: number; total: number; timestep: number; latents: Tensor }) => void;
  /** Hook for tests: the UNet input and output of each step. */
  onUNet?: (info: { step: number; input: Tensor; output: Tensor }) => void;
}

export interface GenerateResult {
  /** Images [B, 3, H, W] in [0, 1]. */
  images: Tensor;
  latents: Tensor;
}

/**
 * Text-to-image with classifier-free guidance (batch [uncond, cond]), diffusers semantics: latents
 * scaled by the scheduler's init sigma, a scheduler step per timestep, decode(latents / scaling_factor),
 * then (x/2 + 0.5) clamped to [0, 1].
 */
/** diffusers' model_index.json of a StableDiffusionPipeline folder (no safety checker, no feature extractor). */
export function modelIndex(schedulerClass: string): Record<string, unknown> {
  return {
    _class_name: 'StableDiffusionPipeline',
    _diffusers_version: '0.30.0',
    feature_extractor: [null, null],
    requires_safety_checker: false,
    safety_checker: [null, null],
    scheduler: ['diffusers', schedulerClass],
    text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  };
}

export class StableDiffusionPipeline implements PipelineComponents {
  tokenizer: CLIPTokenizer;
  textEncoder: CLIPTextModel;
  vae: AutoencoderKL;
  unet: UNet2DConditionModel;
  scheduler: Scheduler;

  constructor(c: PipelineComponents) {
    this.tokenizer = c.tokenizer;
    this.textEncoder = c.textEncoder;
    this.vae = c.vae;
    this.unet = c.unet;
    this.scheduler = c.scheduler;
  }

  /**
   * Loads a diffusers StableDiffusionPipeline folder (model_index.json, tokenizer/, text_encoder/, vae/,
   * unet/, scheduler/). `variant`: diffusers' weight variant ('fp16' reads `*.fp16.safetensors`);
   * `dtype`: the models' parameters in memory, 'float32' (default) or 'float16' (loading/models.ts
   * LoadModelOptions: half the memory, activations stay f32).
   */
  static async fromPretrained(dir: string, opts: LoadModelOptions = {}): Promise<StableDiffusionPipeline> {
    const indexPath = join(dir, 'model_index.json');
    const index = await readJson<unknown>(indexPath);
    if (index === null || typeof index !== 'object' || Array.isArray(index)) throw new Error(`${indexPath}: expected a JSON object, got ${JSON.stringify(index)}`);
    const entries = index as Record<string, unknown>;
    for (const part of ['tokenizer', 'text_encoder', 'vae', 'unet', 'scheduler']) {
      if (!(part in entries)) throw new Error(`${indexPath} has no '${part}' entry`);
    }
    const schedEntry = entries.scheduler;
    if (!Array.isArray(schedEntry) || typeof schedEntry[1] !== 'string') throw new Error(`${indexPath}: "scheduler" must be [library, class name], got ${JSON.stringify(schedEntry)}`);
    const schedCls = schedEntry[1];
    const schedPath = join(dir, 'scheduler', 'scheduler_config.json');
    const rawSched = await readJson<unknown>(schedPath);
    // validated as read, so errors name the file and the field; the class fills its own defaults
    resolveSchedulerConfig(rawSched, schedPath, SCHEDULER_REQUIRED);
    const sched = { ...(rawSched as Record<string, unknown>) };
    // every component's config before any component is built
    await Promise.all([readTextEncoderConfig(join(dir, 'text_encoder')), readVAEConfig(join(dir, 'vae')), readUNetConfig(join(dir, 'unet'))]);
    // StableDiffusionPipeline.__init__ rewrites a DDIM/PNDM steps_offset of 0 to 1
    if ((sched.steps_offset ?? 0) !== 1 && (schedCls === 'DDIMScheduler' || schedCls === 'PNDMScheduler')) sched.steps_offset = 1;
    const [tokenizer, textEncoder, vae, unet] = await Promise.all([
      CLIPTokenizer.fromFolder(join(dir, 'tokenizer')),
      loadTextEncoder(join(dir, 'text_encoder'), opts),
      loadVAE(join(dir, 'vae'), opts),
      loadUNet(join(dir, 'unet'), opts),
    ]);
    return new StableDiffusionPipeline({ tokenizer, textEncoder, vae, unet, scheduler: schedulerFromConfig(sched, schedCls) });
  }

  /** Writes the diffusers folder layout back (diffusers' from_pretrained reloads it). */
  async save(dir: string): Promise<void> {
    await mkdirp(dir);
    const schedName = this.scheduler.constructor.name;
    await writeFileAtomic(join(dir, 'model_index.json'), JSON.stringify(modelIndex(schedName), null, 2) + '\n');
    await mkdirp(join(dir, 'scheduler'));
    await writeFileAtomic(join(dir, 'scheduler', 'scheduler_config.json'), JSON.stringify({ _class_name: schedName, ...this.scheduler.config }, null, 2) + '\n');
    await this.tokenizer.save(join(dir, 'tokenizer'));
    await saveModel(this.textEncoder, join(dir, 'text_encoder'), 'text_encoder');
    await saveModel(this.vae, join(dir, 'vae'), 'vae');
    await saveModel(this.unet, join(dir, 'unet'), 'unet');
  }

  get backend(): Backend {
    return this.unet.convIn.weight.backend;
  }

  /** input_ids padded to the model length, as the pipeline tokenizes them. */
  tokenize(prompts: string[]): number[][] {
    return this.tokenizer.call(prompts, { padding: 'max_length', maxLength: this.tokenizer.modelMaxLength, truncation: true }).inputIds;
  }

  /** Text embeddings [B, L, D] (last hidden state). */
  encodeText(prompts: string[]): Tensor {
    const out = noGrad(() => this.textEncoder.forward(this.tokenize(prompts)));
    out.pooledOutput.dispose();
    return out.lastHiddenState;
  }

  /** [uncond…, cond…] embeddings for classifier-free guidance (or cond only when guidance ≤ 1). */
  encodePrompt(prompts: string[], negative: string[] | null, guidance: boolean): Tensor {
    const cond = this.encodeText(prompts);
    if (!guidance) return cond;
    const uncond = this.encodeText(negative ?? prompts.map(() => ''));
    const both = cat([uncond, cond], 0);
    cond.dispose();
    uncond.dispose();
    return both;
  }

  get vaeScaleFactor(): number {
    return 2 ** (this.vae.config.block_out_channels.length - 1);
  }

  async generate(o: GenerateOptions): Promise<GenerateResult> {
    const prompts = (typeof o.prompt === 'string' ? [o.prompt] : o.prompt).flatMap((p) => new Array<string>(o.numImagesPerPrompt ?? 1).fill(p));
    const negRaw = o.negativePrompt === undefined ? null : typeof o.negativePrompt === 'string' ? [o.negativePrompt] : o.negativePrompt;
    const negative = negRaw ? prompts.map((_, i) => negRaw[Math.floor(i / (o.numImagesPerPrompt ?? 1)) % negRaw.length]!) : null;
    const g = o.guidanceScale ?? 7.5;
    const phi = o.guidanceRescale ?? 0;
    if (!(phi >= 0 && phi <= 1)) throw new RangeError(`guidanceRescale must be in [0, 1], got ${phi}`);
    const cfg = g > 1;
    const steps = o.numInferenceSteps ?? 50;
    const sample = this.unet.config.sample_size ?? 64;
    const h = o.height ?? sample * this.vaeScaleFactor;
    const w = o.width ?? sample * this.vaeScaleFactor;
    if (h % this.vaeScaleFactor || w % this.vaeScaleFactor) throw new RangeError(`height and width must be multiples of ${this.vaeScaleFactor}, got ${h}x${w}`);
    const B = prompts.length;
    const emb = this.encodePrompt(prompts, negative, cfg);
    this.scheduler.setTimesteps(steps);
    const gen = o.generator ?? new Generator(o.seed ?? 0);
    const shape = [B, this.unet.config.in_channels, h / this.vaeScaleFactor, w / this.vaeScaleFactor];
    let latents = tidy(() => (o.latents ?? randn(shape, { generator: gen, backend: this.backend })).mul(this.scheduler.initNoiseSigma));
    const ts = this.scheduler.timesteps;
    {
      for (let i = 0; i < ts.length; i++) {
        const t = ts[i]!;
        const next = noGrad(() => tidy(() => {
          const inp = this.scheduler.scaleModelInput(cfg ? cat([latents, latents], 0) : latents, t);
          const out = this.unet.forward(inp, t, emb);
          o.onUNet?.({ step: i, input: inp, output: out });
          let eps = out;
          if (cfg) {
            const [u, c] = out.chunk(2, 0) as [Tensor, Tensor];
            eps = u.add(c.sub(u).mul(g));
            if (phi > 0) {
              // per image, over all its values, unbiased as torch.std
              const dims = [1, 2, 3];
              const rescaled = eps.mul(c.std(dims, { unbiased: true, keepdim: true }).div(eps.std(dims, { unbiased: true, keepdim: true })));
              eps = rescaled.mul(phi).add(eps.mul(1 - phi));
            }
          }
          const r = this.scheduler.step(eps, t, latents, { generator: gen });
          r.predOriginalSample?.dispose();
          return r.prevSample;
        }));
        latents.dispose();
        latents = next;
        o.onStep?.({ step: i, total: ts.length, timestep: t, latents });
        // yield to the event loop between steps so progress bars repaint
        await this.backend.sync();
      }
    }
    emb.dispose();
    const images = this.decodeLatents(latents);
    return { images, latents };
  }

  /** decode(latents / scaling_factor) mapped from [-1, 1] to [0, 1]. */
  decodeLatents(latents: Tensor): Tensor {
    return noGrad(() => tidy(() => this.vae.decode(latents.mul(1 / this.vae.config.scaling_factor)).mul(0.5).add(0.5).clamp(0, 1)));
  }

  dispose(): void {
    this.textEncoder.dispose();
    this.vae.dispose();
    this.unet.dispose();
  }
}

