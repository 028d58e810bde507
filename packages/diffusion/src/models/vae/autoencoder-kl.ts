import { tidy, randn, type Tensor, type Generator } from '@foliar/tensor';
import { Module, Conv2d, GroupNorm, ModuleList } from '@foliar/nn';
import { ResnetBlock2D } from '../blocks/resnet-block.js';
import { Attention } from '../blocks/attention.js';
import { Downsample2D, Upsample2D } from '../blocks/sampling.js';
import { blockCountError, checkConfigObject, checkFields, checkUnsupported, configError, rule, withDefaults, type ConfigSchema } from '../config-schema.js';
import { planTiling, runPerImage, runTiles, vaeScaleFactor, type TilePlan, type VaeTilingInfo, type VaeTilingMode, type VaeTilingOptions } from './tiling.js';

export { vaeDecodePeakBytes, vaeEncodePeakBytes, vaeScaleFactor, tileStarts, blendWeights, planTiling, runTiles, type TilePlan, type VaeTilingInfo, type VaeTilingMode, type VaeTilingOptions } from './tiling.js';

/** The fields of diffusers' AutoencoderKL config.json that foliar implements. */
export interface AutoencoderKLConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number;
  latent_channels: number;
  norm_num_groups: number;
  act_fn: string;
  scaling_factor: number;
  shift_factor?: number | null;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
  mid_block_add_attention: boolean;
  sample_size?: number;
}

export const VAE_DEFAULTS: AutoencoderKLConfig = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  latent_channels: 4,
  norm_num_groups: 32,
  act_fn: 'silu',
  scaling_factor: 0.18215,
  shift_factor: null,
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: true,
  sample_size: 512,
};

/** Fields without a safe default in a config.json: the model's shape depends on them. */
export const VAE_REQUIRED = ['block_out_channels', 'down_block_types', 'up_block_types', 'latent_channels'] as const;

const VAE_SCHEMA: ConfigSchema = {
  in_channels: rule.posInt,
  out_channels: rule.posInt,
  down_block_types: rule.arrayOf(rule.oneOf(['DownEncoderBlock2D']), "'DownEncoderBlock2D'"),
  up_block_types: rule.arrayOf(rule.oneOf(['UpDecoderBlock2D']), "'UpDecoderBlock2D'"),
  block_out_channels: rule.arrayOf(rule.posInt, 'positive integers'),
  layers_per_block: rule.posInt,
  latent_channels: rule.posInt,
  norm_num_groups: rule.posInt,
  act_fn: rule.oneOf(['silu']),
  scaling_factor: rule.finitePos,
  shift_factor: rule.nullable(rule.finite),
  use_quant_conv: rule.bool,
  use_post_quant_conv: rule.bool,
  mid_block_add_attention: rule.bool,
  sample_size: rule.nullable(rule.either(rule.posInt, rule.arrayOf(rule.posInt, 'positive integers'))),
  force_upcast: rule.bool, // f32 everywhere: upcasting changes nothing
};

/** Options foliar does not implement (the pipeline would ignore them), at the defaults it does. */
const VAE_UNSUPPORTED: Readonly<Record<string, unknown>> = { latents_mean: null, latents_std: null };

/** Validates an AutoencoderKL config (types, ranges, lengths), then fills defaults; errors name `source` and the field. */
export function resolveVAEConfig(raw: unknown, source = 'vae config', required: readonly string[] = []): AutoencoderKLConfig {
  const r = checkConfigObject(raw, source, required);
  checkFields(r, VAE_SCHEMA, source);
  checkUnsupported(r, VAE_UNSUPPORTED, source);
  const c = withDefaults(VAE_DEFAULTS, r);
  const n = c.block_out_channels.length;
  if (c.down_block_types.length !== n || c.up_block_types.length !== n) throw blockCountError(source, c.down_block_types.length, c.up_block_types.length, n);
  const g = c.norm_num_groups;
  const bad = c.block_out_channels.find((ch) => ch % g !== 0);
  if (bad !== undefined) throw configError(source, 'norm_num_groups', `norm_num_groups ${g} does not divide block_out_channels entry ${bad} (GroupNorm needs whole groups)`);
  return c;
}

const EPS = 1e-6;

class VaeMidBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  attentions: ModuleList<Attention> | null;
  constructor(ch: number, groups: number, addAttention: boolean) {
    super();
    const res = () => new ResnetBlock2D({ inChannels: ch, outChannels: ch, tembChannels: null, groups, eps: EPS });
    this.attentions = this.module(
      'attentions',
      addAttention
        ? new ModuleList([new Attention({ queryDim: ch, heads: 1, dimHead: ch, bias: true, normGroups: groups, normEps: EPS, residualConnection: true })])
        : null,
    );
    this.resnets = this.module('resnets', new ModuleList([res(), res()]));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.resnets.at(0).forward(x);
      if (this.attentions) h = this.attentions.at(0).forward(h);
      return this.resnets.at(1).forward(h);
    });
  }
}

class EncoderBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  downsamplers: ModuleList<Downsample2D> | null;
  constructor(inC: number, outC: number, layers: number, groups: number, down: boolean) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: layers }, (_, i) => new ResnetBlock2D({ inChannels: i ? outC : inC, outChannels: outC, tembChannels: null, groups, eps: EPS }))));
    this.downsamplers = this.module('downsamplers', down ? new ModuleList([new Downsample2D(outC, 0)]) : null);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h);
      return this.downsamplers ? this.downsamplers.at(0).forward(h) : h;
    });
  }
}

class DecoderBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  upsamplers: ModuleList<Upsample2D> | null;
  constructor(inC: number, outC: number, layers: number, groups: number, up: boolean) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: layers }, (_, i) => new ResnetBlock2D({ inChannels: i ? outC : inC, outChannels: outC, tembChannels: null, groups, eps: EPS }))));
    this.upsamplers = this.module('upsamplers', up ? new ModuleList([new Upsample2D(outC)]) : null);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h);
      return this.upsamplers ? this.upsamplers.at(0).forward(h) : h;
    });
  }
}

export class Encoder extends Module {
  convIn: Conv2d;
  downBlocks: ModuleList<EncoderBlock>;
  midBlock: VaeMidBlock;
  convNormOut: GroupNorm;
  convOut: Conv2d;
  constructor(c: AutoencoderKLConfig) {
    super();
    const boc = c.block_out_channels;
    this.convIn = this.module('conv_in', new Conv2d(c.in_channels, boc[0]!, 3, { padding: 1 }));
    this.downBlocks = this.module(
      'down_blocks',
      new ModuleList(boc.map((outC, i) => new EncoderBlock(i ? boc[i - 1]! : boc[0]!, outC, c.layers_per_block, c.norm_num_groups, i < boc.length - 1))),
    );
    this.midBlock = this.module('mid_block', new VaeMidBlock(boc[boc.length - 1]!, c.norm_num_groups, c.mid_block_add_attention));
    this.convNormOut = this.module('conv_norm_out', new GroupNorm(c.norm_num_groups, boc[boc.length - 1]!, { eps: EPS }));
    this.convOut = this.module('conv_out', new Conv2d(boc[boc.length - 1]!, 2 * c.latent_channels, 3, { padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.convIn.forward(x);
      for (const b of this.downBlocks) h = b.forward(h);
      h = this.midBlock.forward(h);
      return this.convOut.forward(this.convNormOut.forwardSilu(h));
    });
  }
}

export class Decoder extends Module {
  convIn: Conv2d;
  midBlock: VaeMidBlock;
  upBlocks: ModuleList<DecoderBlock>;
  convNormOut: GroupNorm;
  convOut: Conv2d;
  constructor(c: AutoencoderKLConfig) {
    super();
    const rev = [...c.block_out_channels].reverse();
    this.convIn = this.module('conv_in', new Conv2d(c.latent_channels, rev[0]!, 3, { padding: 1 }));
    this.midBlock = this.module('mid_block', new VaeMidBlock(rev[0]!, c.norm_num_groups, c.mid_block_add_attention));
    this.upBlocks = this.module(
      'up_blocks',
      new ModuleList(rev.map((outC, i) => new DecoderBlock(i ? rev[i - 1]! : rev[0]!, outC, c.layers_per_block + 1, c.norm_num_groups, i < rev.length - 1))),
    );
    this.convNormOut = this.module('conv_norm_out', new GroupNorm(c.norm_num_groups, c.block_out_channels[0]!, { eps: EPS }));
    this.convOut = this.module('conv_out', new Conv2d(c.block_out_channels[0]!, c.out_channels, 3, { padding: 1 }));
  }
  forward(z: Tensor): Tensor {
    return tidy(() => {
      let h = this.midBlock.forward(this.convIn.forward(z));
      for (const b of this.upBlocks) h = b.forward(h);
      return this.convOut.forward(this.convNormOut.forwardSilu(h));
    });
  }
}

/** The diagonal Gaussian over latents: logvar clamped to [−30, 20] as in diffusers. */
export class DiagonalGaussian {
  readonly std: Tensor;
  constructor(
    readonly mean: Tensor,
    readonly logvar: Tensor,
  ) {
    this.std = tidy(() => logvar.mul(0.5).exp());
  }
  /** mean + std · ε with ε from the seeded generator. */
  sample(generator?: Generator): Tensor {
    return tidy(() => this.mean.add(this.std.mul(randn([...this.mean.shape], { generator, backend: this.mean.backend }))));
  }
  mode(): Tensor {
    return this.mean;
  }
  /** KL(q ‖ N(0, I)) summed over latent dims, per batch item. */
  kl(): Tensor {
    return tidy(() => this.mean.square().add(this.logvar.exp()).sub(1).sub(this.logvar).mul(0.5).sum([1, 2, 3]));
  }
  dispose(): void {
    this.mean.dispose();
    this.logvar.dispose();
    this.std.dispose();
  }
}

/**
 * diffusers AutoencoderKL. `encode` returns the latent distribution, `decode` images; no scaling_factor
 * applied. Both split the work when the untiled run would bind a tensor larger than the backend allows
 * (`tilingMode`, see models/vae/tiling.ts): first one image at a time, then overlapping tiles.
 */
export class AutoencoderKL extends Module {
  readonly config: AutoencoderKLConfig;
  encoder: Encoder;
  decoder: Decoder;
  quantConv: Conv2d | null;
  postQuantConv: Conv2d | null;
  /** 'auto' (default): split only when needed; 'on': tile whenever the input exceeds the tile (enableTiling); 'off': never split. */
  tilingMode: VaeTilingMode = 'auto';
  /** Tile size and overlap used when splitting into tiles. */
  tilingOptions: VaeTilingOptions = {};
  /** How the last decode or encode ran; null before the first. */
  lastTiling: VaeTilingInfo | null = null;
  /** Decodes and encodes that ran tiled so far (tests assert that a split happened). */
  tiledRuns = 0;
  constructor(config: Partial<AutoencoderKLConfig> & Record<string, unknown> = {}) {
    super();
    const c = (this.config = resolveVAEConfig(config));
    this.encoder = this.module('encoder', new Encoder(c));
    this.decoder = this.module('decoder', new Decoder(c));
    const l2 = 2 * c.latent_channels;
    this.quantConv = this.module('quant_conv', c.use_quant_conv ? new Conv2d(l2, l2, 1) : null);
    this.postQuantConv = this.module('post_quant_conv', c.use_post_quant_conv ? new Conv2d(c.latent_channels, c.latent_channels, 1) : null);
  }

  /** diffusers' enable_tiling: tile whenever the input is larger than the tile (and still whenever a run would not fit). */
  enableTiling(opts: VaeTilingOptions = {}): void {
    this.tilingMode = 'on';
    this.tilingOptions = { ...opts };
  }
  /** Back to 'auto': split only when the untiled run would exceed the binding limit. Use `tilingMode = 'off'` to never split. */
  disableTiling(): void {
    this.tilingMode = 'auto';
  }

  /** The plan decode/encode would follow for an input of this shape (latent units for decode, pixels for encode). */
  planFor(op: 'decode' | 'encode', shape: readonly number[], limitBytes: number): TilePlan {
    const f = op === 'encode' ? vaeScaleFactor(this.config) : 1;
    const [b, , h, w] = shape as [number, number, number, number];
    // an encode input that is not a multiple of the scale factor cannot be cut into aligned tiles
    const whole = op === 'encode' && (h % f !== 0 || w % f !== 0);
    return planTiling({ op, mode: whole ? 'off' : this.tilingMode, options: this.tilingOptions, config: this.config, batch: b, h: h / (whole ? 1 : f), w: w / (whole ? 1 : f), limitBytes });
  }

  /** quant_conv(encoder(x)): the [mean, logvar] moments. */
  private moments(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.encoder.forward(x);
      return this.quantConv ? this.quantConv.forward(h) : h;
    });
  }

  encode(x: Tensor): DiagonalGaussian {
    const plan = this.planFor('encode', x.shape, x.backend.maxBindingBytes);
    this.lastTiling = plan.info;
    const { mean, logvar } = tidy(() => {
      let moments: Tensor;
      if (plan.info.strategy === 'whole') moments = this.moments(x);
      else if (plan.info.strategy === 'batch-split') moments = runPerImage(x, (one) => this.moments(one));
      else {
        this.tiledRuns++;
        const f = vaeScaleFactor(this.config);
        moments = runTiles(x, { startsH: plan.startsH, startsW: plan.startsW, tile: plan.info.tileLatent!, scaleIn: f, scaleOut: 1, chunk: plan.info.chunk }, (t) => this.moments(t));
      }
      // the blend mixes moments (as diffusers does), before the split and the clamp
      const [m, lv] = moments.chunk(2, 1) as [Tensor, Tensor];
      return { mean: m.contiguous(), logvar: lv.clamp(-30, 20) };
    });
    return new DiagonalGaussian(mean, logvar);
  }

  private decodeWhole(z: Tensor): Tensor {
    return tidy(() => this.decoder.forward(this.postQuantConv ? this.postQuantConv.forward(z) : z));
  }

  decode(z: Tensor): Tensor {
    const plan = this.planFor('decode', z.shape, z.backend.maxBindingBytes);
    this.lastTiling = plan.info;
    if (plan.info.strategy === 'whole') return this.decodeWhole(z);
    if (plan.info.strategy === 'batch-split') return runPerImage(z, (one) => this.decodeWhole(one));
    this.tiledRuns++;
    const f = vaeScaleFactor(this.config);
    return runTiles(z, { startsH: plan.startsH, startsW: plan.startsW, tile: plan.info.tileLatent!, scaleIn: 1, scaleOut: f, chunk: plan.info.chunk }, (t) => this.decodeWhole(t));
  }
}
