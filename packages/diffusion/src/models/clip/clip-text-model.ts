import { tidy, tensor, scaledDotProductAttention, isGradEnabled, type Tensor } from '@foliar/tensor';
import { Module, Linear, LayerNorm, Embedding, ModuleList, checkpoint } from '@foliar/nn';
import { checkConfigObject, checkFields, configError, rule, withDefaults, type ConfigSchema } from '../config-schema.js';

/** The fields of transformers' CLIPTextConfig that foliar implements. */
export interface CLIPTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: 'quick_gelu' | 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh';
  layer_norm_eps: number;
  eos_token_id: number;
  bos_token_id?: number;
  pad_token_id?: number;
  projection_dim?: number;
}

export const CLIP_TEXT_DEFAULTS: CLIPTextConfig = {
  vocab_size: 49408,
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  eos_token_id: 49407,
  bos_token_id: 49406,
  pad_token_id: 1,
};

const HIDDEN_ACTS = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh'] as const;

/** Fields without a safe default in a config.json: the model's shape depends on them. */
export const CLIP_TEXT_REQUIRED = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads'] as const;

const CLIP_TEXT_SCHEMA: ConfigSchema = {
  vocab_size: rule.posInt,
  hidden_size: rule.posInt,
  intermediate_size: rule.posInt,
  num_hidden_layers: rule.posInt,
  num_attention_heads: rule.posInt,
  max_position_embeddings: rule.posInt,
  hidden_act: rule.oneOf(HIDDEN_ACTS),
  layer_norm_eps: rule.finitePos,
  eos_token_id: rule.nonNegInt,
  bos_token_id: rule.nullable(rule.nonNegInt),
  pad_token_id: rule.nullable(rule.nonNegInt),
  projection_dim: rule.nullable(rule.posInt),
};

/** Validates a CLIPTextConfig (types, ranges, head split, token ids), then fills defaults; errors name `source` and the field. */
export function resolveCLIPTextConfig(raw: unknown, source = 'text encoder config', required: readonly string[] = []): CLIPTextConfig {
  const r = checkConfigObject(raw, source, required);
  checkFields(r, CLIP_TEXT_SCHEMA, source);
  const c = withDefaults(CLIP_TEXT_DEFAULTS, r);
  if (c.hidden_size % c.num_attention_heads) throw configError(source, 'num_attention_heads', `hidden_size ${c.hidden_size} is not divisible by ${c.num_attention_heads} heads (num_attention_heads)`);
  // pooling reads the eos position: an id outside the vocabulary would never match
  if (c.eos_token_id >= c.vocab_size) throw configError(source, 'eos_token_id', `eos_token_id ${c.eos_token_id} is outside the vocabulary (vocab_size ${c.vocab_size})`);
  return c;
}

class CLIPAttention extends Module {
  qProj: Linear;
  kProj: Linear;
  vProj: Linear;
  outProj: Linear;
  constructor(
    dim: number,
    readonly heads: number,
  ) {
    super();
    this.kProj = this.module('k_proj', new Linear(dim, dim));
    this.vProj = this.module('v_proj', new Linear(dim, dim));
    this.qProj = this.module('q_proj', new Linear(dim, dim));
    this.outProj = this.module('out_proj', new Linear(dim, dim));
  }
  /** `residual` (x's shape) is added in out_proj's store. */
  forward(x: Tensor, residual?: Tensor | null): Tensor {
    return tidy(() => {
      const [b, l, c] = x.shape as [number, number, number];
      const split = (t: Tensor) => t.reshape([b, l, this.heads, c / this.heads]).transpose(1, 2);
      const a = scaledDotProductAttention(split(this.qProj.forward(x)), split(this.kProj.forward(x)), split(this.vProj.forward(x)), { mask: 'causal' });
      return this.outProj.forward(a.transpose(1, 2).reshape([b, l, c]), residual ?? null);
    });
  }
}

class CLIPMLP extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(
    dim: number,
    inner: number,
    readonly act: CLIPTextConfig['hidden_act'],
  ) {
    super();
    this.fc1 = this.module('fc1', new Linear(dim, inner));
    this.fc2 = this.module('fc2', new Linear(inner, dim));
  }
  /** `residual` (x's shape) is added in fc2's store. */
  forward(x: Tensor, residual?: Tensor | null): Tensor {
    return tidy(() => {
      const h = this.fc1.forward(x);
      const a = this.act === 'quick_gelu' ? h.quickGelu() : this.act === 'gelu' ? h.gelu() : h.gelu('tanh');
      return this.fc2.forward(a, residual ?? null);
    });
  }
}

class CLIPEncoderLayer extends Module {
  selfAttn: CLIPAttention;
  layerNorm1: LayerNorm;
  mlp: CLIPMLP;
  layerNorm2: LayerNorm;
  constructor(c: CLIPTextConfig) {
    super();
    this.selfAttn = this.module('self_attn', new CLIPAttention(c.hidden_size, c.num_attention_heads));
    this.layerNorm1 = this.module('layer_norm1', new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }));
    this.mlp = this.module('mlp', new CLIPMLP(c.hidden_size, c.intermediate_size, c.hidden_act));
    this.layerNorm2 = this.module('layer_norm2', new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      // the residuals are added in the stores of out_proj and fc2 (no add kernels)
      const h = this.selfAttn.forward(this.layerNorm1.forward(x), x);
      return this.mlp.forward(this.layerNorm2.forward(h), h);
    });
  }
}

class CLIPEmbeddings extends Module {
  tokenEmbedding: Embedding;
  positionEmbedding: Embedding;
  constructor(c: CLIPTextConfig) {
    super();
    this.tokenEmbedding = this.module('token_embedding', new Embedding(c.vocab_size, c.hidden_size));
    this.positionEmbedding = this.module('position_embedding', new Embedding(c.max_position_embeddings, c.hidden_size));
  }
}

class CLIPEncoder extends Module {
  layers: ModuleList<CLIPEncoderLayer>;
  constructor(c: CLIPTextConfig) {
    super();
    this.layers = this.module('layers', new ModuleList(Array.from({ length: c.num_hidden_layers }, () => new CLIPEncoderLayer(c))));
  }
}

class CLIPTextTransformer extends Module {
  embeddings: CLIPEmbeddings;
  encoder: CLIPEncoder;
  finalLayerNorm: LayerNorm;
  constructor(c: CLIPTextConfig) {
    super();
    this.embeddings = this.module('embeddings', new CLIPEmbeddings(c));
    this.encoder = this.module('encoder', new CLIPEncoder(c));
    this.finalLayerNorm = this.module('final_layer_norm', new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }));
  }
}

export interface CLIPTextOutput {
  lastHiddenState: Tensor;
  pooledOutput: Tensor;
  /** Hidden states after each layer (index 0 = embeddings), when requested. */
  hiddenStates?: Tensor[];
}

/**
 * transformers CLIPTextModel: token + position embeddings, pre-LN causal transformer, final LayerNorm.
 * Pooling follows transformers: at argmax(input_ids) for legacy configs with eos_token_id == 2, else at
 * the first eos token. `clipSkip` k > 0 returns the hidden state k layers before the last, final-normed
 * (the convention of SD front ends).
 */
export class CLIPTextModel extends Module {
  readonly config: CLIPTextConfig;
  textModel: CLIPTextTransformer;
  /** Recompute each encoder layer in backward instead of keeping its activations. */
  gradientCheckpointing = false;
  constructor(config: Partial<CLIPTextConfig> & Record<string, unknown> = {}) {
    super();
    const c = (this.config = resolveCLIPTextConfig(config));
    this.textModel = this.module('text_model', new CLIPTextTransformer(c));
  }

  /** transformers' gradient_checkpointing_enable(): per-layer activation checkpointing when training. */
  enableGradientCheckpointing(on = true): this {
    this.gradientCheckpointing = on;
    return this;
  }

  forward(inputIds: number[][], opts: { clipSkip?: number; outputHiddenStates?: boolean } = {}): CLIPTextOutput {
    const b = inputIds.length;
    const l = inputIds[0]?.length ?? 0;
    if (l > this.config.max_position_embeddings) throw new RangeError(`CLIPTextModel: ${l} tokens exceed max_position_embeddings ${this.config.max_position_embeddings}`);
    const be = this.textModel.embeddings.tokenEmbedding.weight.backend;
    const flat = new Int32Array(b * l);
    inputIds.forEach((row, i) => {
      if (row.length !== l) throw new RangeError('CLIPTextModel: rows of input_ids have different lengths');
      row.forEach((id, j) => {
        if (id < 0 || id >= this.config.vocab_size) throw new RangeError(`CLIPTextModel: token id ${id} is outside the vocabulary (${this.config.vocab_size})`);
        flat[i * l + j] = id;
      });
    });
    const tm = this.textModel;
    const ids = tensor(flat, { shape: [b, l], backend: be });
    const pos = tensor(Int32Array.from({ length: l }, (_, i) => i), { shape: [1, l], backend: be });
    const hidden: Tensor[] = [];
    let h = tidy(() => tm.embeddings.tokenEmbedding.forward(ids).add(tm.embeddings.positionEmbedding.forward(pos)));
    ids.dispose();
    pos.dispose();
    const keep = opts.outputHiddenStates || (opts.clipSkip ?? 0) > 0;
    if (keep) hidden.push(h);
    for (const layer of tm.encoder.layers) {
      const next = this.gradientCheckpointing && isGradEnabled() ? checkpoint((x) => layer.forward(x), h) : layer.forward(h);
      if (!keep) h.dispose();
      h = next;
      if (keep) hidden.push(h);
    }
    const skip = opts.clipSkip ?? 0;
    const pre = skip > 0 ? hidden[hidden.length - 1 - skip]! : h;
    const last = tm.finalLayerNorm.forward(pre);
    const normed = skip > 0 ? tm.finalLayerNorm.forward(h) : last;
    // pooled output from the final layer's normalised states
    const eos = this.config.eos_token_id;
    const rows = inputIds.map((row) => {
      if (eos === 2) return row.indexOf(Math.max(...row));
      const k = row.indexOf(eos);
      return k < 0 ? row.length - 1 : k;
    });
    const pooled = tidy(() => {
      const idx = tensor(Int32Array.from(rows.map((r, i) => i * l + r)), { backend: be });
      return normed.reshape([b * l, normed.shape[2]!]).indexSelect(0, idx);
    });
    if (normed !== last) normed.dispose();
    if (!opts.outputHiddenStates) for (const t of hidden) if (t !== h || skip > 0) t.dispose();
    if (!opts.outputHiddenStates && skip === 0) {
      /* h was consumed into last */
    }
    if (!keep) h.dispose();
    return { lastHiddenState: last, pooledOutput: pooled, ...(opts.outputHiddenStates ? { hiddenStates: hidden } : {}) };
  }
}
