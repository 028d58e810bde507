import { join } from 'node:path';
import { noGrad, tidy, copy_, zeros, setData_, SafetensorsFile, type Tensor } from '@foliar/tensor';
import { Module, Linear, Dropout, saveSafetensors, readSafetensors, defaultWeight, type LinearDelta } from '@foliar/nn';
import type { StableDiffusionPipeline } from '../../pipelines/stable-diffusion.js';
import type { FineTuneMethod } from './method.js';

/** The low-rank path B·A·x·(α/r) added to a frozen Linear; B starts at zero so training starts at the base model. */
export class LoRAAdapter extends Module implements LinearDelta {
  loraA: Linear;
  loraB: Linear;
  dropout: Dropout;
  readonly scale: number;
  constructor(
    readonly base: Linear,
    readonly rank: number,
    readonly alpha: number,
    dropoutP = 0,
  ) {
    super();
    this.loraA = this.module('lora_A', new Linear(base.inFeatures, rank, { bias: false }));
    this.loraB = this.module('lora_B', new Linear(rank, base.outFeatures, { bias: false }));
    noGrad(() => {
      const w = defaultWeight([rank, base.inFeatures]);
      copy_(this.loraA.weight, w);
      w.dispose();
      const z = zeros([base.outFeatures, rank]);
      copy_(this.loraB.weight, z);
      z.dispose();
    });
    this.dropout = this.module('dropout', new Dropout(dropoutP));
    this.scale = alpha / rank;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.loraB.forward(this.loraA.forward(this.dropout.forward(x))).mul(this.scale));
  }
}

export interface LoRAOptions {
  rank?: number;
  alpha?: number;
  dropout?: number;
  /** UNet attention projections to adapt (default to_q, to_k, to_v, to_out.0). */
  targets?: string[];
  /** Also adapt the text encoder's q_proj/k_proj/v_proj/out_proj. */
  textEncoder?: boolean;
}

const UNET_TARGETS = ['to_q', 'to_k', 'to_v', 'to_out.0'];
const TE_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'out_proj'];

/**
 * LoRA (Hu et al. 2021) on attention projections. Saved in the PEFT key format diffusers'
 * load_lora_weights reads (`unet.<module>.lora_A.weight`, `.lora_B.weight`, `text_encoder.…`), with
 * rank and alpha in the file's metadata.
 */
export class LoRA implements FineTuneMethod {
  readonly name = 'lora';
  readonly defaultLearningRate = 1e-4;
  private adapters = new Map<string, LoRAAdapter>();
  constructor(readonly opts: LoRAOptions = {}) {}
  get rank(): number {
    return this.opts.rank ?? 4;
  }
  get alpha(): number {
    return this.opts.alpha ?? this.rank;
  }
  get trainsTextEncoder(): boolean {
    return this.opts.textEncoder ?? false;
  }
  private targetsOf(root: Module, prefix: string, names: string[]): [string, Linear][] {
    const out: [string, Linear][] = [];
    for (const [path, m] of root.namedModules()) {
      if (!(m instanceof Linear)) continue;
      if (names.some((t) => path === t || path.endsWith(`.${t}`))) out.push([`${prefix}.${path}`, m]);
    }
    return out;
  }
  attach(pipe: StableDiffusionPipeline): Tensor[] {
    pipe.unet.requiresGrad_(false);
    pipe.vae.requiresGrad_(false);
    pipe.textEncoder.requiresGrad_(false);
    const targets = [
      ...this.targetsOf(pipe.unet, 'unet', this.opts.targets ?? UNET_TARGETS),
      ...(this.trainsTextEncoder ? this.targetsOf(pipe.textEncoder, 'text_encoder', TE_TARGETS) : []),
    ];
    if (!targets.length) throw new Error('LoRA: no target Linear layers found');
    const params: Tensor[] = [];
    for (const [key, lin] of targets) {
      const a = new LoRAAdapter(lin, this.rank, this.alpha, this.opts.dropout ?? 0);
      lin.deltas.push(a);
      this.adapters.set(key, a);
      params.push(...a.parameters());
    }
    return params;
  }
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [key, a] of this.adapters) {
      out.set(`${key}.lora_A.weight`, a.loraA.weight);
      out.set(`${key}.lora_B.weight`, a.loraB.weight);
    }
    return out;
  }
  async save(_pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    const meta = { r: this.rank, lora_alpha: this.alpha, target_modules: this.opts.targets ?? UNET_TARGETS };
    await saveSafetensors(this.stateDict(), join(dir, 'pytorch_lora_weights.safetensors'), {
      metadata: { format: 'pt', lora_adapter_metadata: JSON.stringify({ unet: meta }), 'foliar.lora': JSON.stringify(meta) },
    });
  }
  async load(_pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    const sd = await readSafetensors(join(dir, 'pytorch_lora_weights.safetensors'));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !sd.has(k));
    if (missing.length) throw new Error(`LoRA weights in ${dir} lack ${missing.length} keys (first: ${missing[0]})`);
    noGrad(() => {
      for (const [k, t] of own) {
        const v = sd.get(k)!;
        if (v.data.length !== t.size) throw new Error(`LoRA weight ${k}: ${v.data.length} values for shape [${t.shape.join(', ')}]`);
        setData_(t, v.data);
      }
    });
  }
  /**
   * Attaches the LoRA saved in `dir` (pytorch_lora_weights.safetensors, as `save` writes it) to `pipe`:
   * rank, alpha and target modules come from the file's metadata (the rank from the weights when the
   * metadata is absent), the text-encoder part is attached when the file has one. `merge()` bakes it in.
   */
  static async fromPretrained(pipe: StableDiffusionPipeline, dir: string): Promise<LoRA> {
    const path = join(dir, 'pytorch_lora_weights.safetensors');
    const f = await SafetensorsFile.open(path);
    let opts: LoRAOptions;
    try {
      const keys = [...f.keys()];
      const firstA = keys.find((k) => k.startsWith('unet.') && k.endsWith('.lora_A.weight'));
      if (!firstA) throw new Error(`${path} holds no UNet LoRA weights (keys like unet.<module>.lora_A.weight)`);
      const meta = parseLoRAMeta(f.metadata, path);
      const rank = meta.r ?? f.entry(firstA)!.shape[0]!;
      opts = { rank, alpha: meta.lora_alpha ?? rank, ...(meta.target_modules ? { targets: meta.target_modules } : {}), textEncoder: keys.some((k) => k.startsWith('text_encoder.')) };
    } finally {
      f.close();
    }
    const lora = new LoRA(opts);
    lora.attach(pipe);
    try {
      await lora.load(pipe, dir);
    } catch (e) {
      lora.dispose();
      throw e;
    }
    return lora;
  }
  /** Detaches and frees the adapters (they live outside the pipeline's module tree). */
  dispose(): void {
    for (const a of this.adapters.values()) {
      a.base.deltas = a.base.deltas.filter((d) => d !== a);
      a.dispose();
    }
    this.adapters.clear();
  }
  /** W ← W + (α/r)·B·A for every adapter, then removes the adapters. */
  merge(): void {
    noGrad(() => {
      for (const a of this.adapters.values()) {
        const delta = tidy(() => a.loraB.weight.matmul(a.loraA.weight).mul(a.scale));
        const w = tidy(() => a.base.weight.add(delta));
        copy_(a.base.weight, w);
        w.dispose();
        delta.dispose();
        a.base.deltas = a.base.deltas.filter((d) => d !== a);
        a.dispose();
      }
    });
    this.adapters.clear();
  }
}


function parseLoRAMeta(meta: Record<string, string>, path: string): { r?: number; lora_alpha?: number; target_modules?: string[] } {
  const raw = meta['foliar.lora'] ?? (meta.lora_adapter_metadata ? JSON.stringify((JSON.parse(meta.lora_adapter_metadata) as { unet?: unknown }).unet ?? {}) : '{}');
  try {
    const m = JSON.parse(raw) as { r?: unknown; lora_alpha?: unknown; target_modules?: unknown };
    return {
      ...(typeof m.r === 'number' ? { r: m.r } : {}),
      ...(typeof m.lora_alpha === 'number' ? { lora_alpha: m.lora_alpha } : {}),
      ...(Array.isArray(m.target_modules) ? { target_modules: m.target_modules.map(String) } : {}),
    };
  } catch (e) {
    throw new Error(`${path}: unreadable LoRA metadata (${(e as Error).message})`);
  }
}
