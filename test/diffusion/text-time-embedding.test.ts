/**
 * UNet `addition_embed_type: "text"` (diffusers' TextTimeEmbedding / AttentionPooling): the pooling
 * against a loop-by-loop reference written from diffusers' definition, gradients against central
 * differences, WebGPU against CPU, the diffusers key names, config validation, and that the prompt
 * reaches the time embedding.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import * as ft from '@foliar/tensor';
import { AttentionPooling, TextTimeEmbedding, UNet2DConditionModel, resolveUNetConfig } from '@foliar/diffusion';
import { setup, teardown, backends, randnArray, assertClose, gradcheck, compareBackends, onBackend } from '../helpers.js';

const test = suite('text-time embedding');
test.before(async () => {
  await setup();
});
test.after(() => teardown());

/** diffusers AttentionPooling, one batch item at a time in f64 loops. */
function poolReference(x: Float32Array, B: number, L: number, D: number, H: number, w: Record<string, Float32Array>): Float64Array {
  const dh = D / H;
  const out = new Float64Array(B * D);
  const lin = (v: Float64Array, W: Float32Array, b: Float32Array) => {
    const r = new Float64Array(D);
    for (let o = 0; o < D; o++) {
      let s = b[o]!;
      for (let i = 0; i < D; i++) s += W[o * D + i]! * v[i]!;
      r[o] = s;
    }
    return r;
  };
  for (let b = 0; b < B; b++) {
    const toks: Float64Array[] = [];
    const cls = new Float64Array(D);
    for (let l = 0; l < L; l++) {
      const t = Float64Array.from(x.subarray((b * L + l) * D, (b * L + l + 1) * D));
      toks.push(t);
      for (let d = 0; d < D; d++) cls[d]! += t[d]! / L;
    }
    for (let d = 0; d < D; d++) cls[d]! += w.pos![d]!;
    const all = [cls, ...toks];
    const q = lin(cls, w.qw!, w.qb!);
    const ks = all.map((t) => lin(t, w.kw!, w.kb!));
    const vs = all.map((t) => lin(t, w.vw!, w.vb!));
    const s = 1 / Math.sqrt(Math.sqrt(dh));
    for (let h = 0; h < H; h++) {
      const logits = ks.map((k) => {
        let acc = 0;
        for (let c = 0; c < dh; c++) acc += q[h * dh + c]! * s * k[h * dh + c]! * s;
        return acc;
      });
      const m = Math.max(...logits);
      const e = logits.map((v) => Math.exp(v - m));
      const z = e.reduce((a, c) => a + c, 0);
      for (let c = 0; c < dh; c++) out[b * D + h * dh + c] = vs.reduce((a, v, j) => a + (e[j]! / z) * v[h * dh + c]!, 0);
    }
  }
  return out;
}

test('AttentionPooling equals diffusers\' definition computed by hand (CPU), at widths and lengths that are not multiples of anything', async () => {
  const { cpu } = backends();
  for (const [B, L, D, H] of [[2, 5, 12, 3], [3, 7, 10, 5], [1, 1, 8, 8]] as const) {
    const pool = new AttentionPooling(H, D);
    await pool.to(cpu);
    const x = randnArray(B * L * D, B * 100 + L);
    const w: Record<string, Float32Array> = {
      pos: (await pool.positionalEmbedding.data()) as Float32Array,
      qw: (await pool.qProj.weight.data()) as Float32Array, qb: (await pool.qProj.bias!.data()) as Float32Array,
      kw: (await pool.kProj.weight.data()) as Float32Array, kb: (await pool.kProj.bias!.data()) as Float32Array,
      vw: (await pool.vProj.weight.data()) as Float32Array, vb: (await pool.vProj.bias!.data()) as Float32Array,
    };
    const xt = onBackend(x, [B, L, D], cpu);
    const y = ft.noGrad(() => pool.forward(xt));
    assert.equal(y.shape, [B, D]);
    await assertClose(await y.data(), poolReference(x, B, L, D, H, w), { rtol: 1e-4, atol: 1e-5, msg: `pool B${B} L${L} D${D} H${H}` });
    y.dispose();
    xt.dispose();
    pool.dispose();
  }
});

test('TextTimeEmbedding: gradients match central differences; WebGPU matches CPU forward and backward', async () => {
  const { cpu } = backends();
  const emb = new TextTimeEmbedding(6, 10, 2);
  await emb.to(cpu);
  // perturb the LayerNorm affines so they are not the identity
  ft.noGrad(() => {
    for (const [n, p] of emb.namedParameters()) if (n.includes('norm')) ft.copy_(p, ft.tensor(randnArray(p.size, n.length), { shape: p.shape, backend: cpu }).mul(0.3).add(n.endsWith('weight') ? 1 : 0));
  });
  await gradcheck((x) => emb.forward(x), [onBackend(randnArray(2 * 4 * 6, 3), [2, 4, 6], cpu, true)], { msg: 'TextTimeEmbedding wrt the text states' });
  const pos = emb.pool.positionalEmbedding;
  await gradcheck((p) => {
    const keep = emb.pool.positionalEmbedding;
    emb.pool.positionalEmbedding = p;
    try {
      return emb.forward(onBackend(randnArray(2 * 4 * 6, 4), [2, 4, 6], cpu));
    } finally {
      emb.pool.positionalEmbedding = keep;
    }
  }, [onBackend(await pos.data(), [1, 6], cpu, true)], { msg: 'TextTimeEmbedding wrt positional_embedding' });
  const state = new Map(await Promise.all([...emb.stateDict()].map(async ([k, t]) => [k, { shape: t.shape, data: (await t.data()) as Float32Array }] as const)));
  const onGpu = new TextTimeEmbedding(6, 10, 2);
  onGpu.loadStateDict(state);
  await compareBackends((x) => (x.backend === cpu ? emb : onGpu).forward(x), [{ data: randnArray(3 * 9 * 6, 5), shape: [3, 9, 6], requiresGrad: true }], { rtol: 1e-4, atol: 1e-5 });
  emb.dispose();
  onGpu.dispose();
});

test('UNet addition_embed_type "text": diffusers\' key names, the prompt moves the output through the time path, bad head counts are refused', async () => {
  const cfg = {
    block_out_channels: [8, 16], layers_per_block: 1, down_block_types: ['DownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'UpBlock2D'],
    mid_block_type: null, cross_attention_dim: 12, attention_head_dim: 4, norm_num_groups: 4, sample_size: 8, addition_embed_type: 'text' as const, addition_embed_type_num_heads: 3,
  };
  const unet = new UNet2DConditionModel(cfg);
  const keys = [...unet.stateDict().keys()].filter((k) => k.startsWith('add_embedding.'));
  assert.equal(keys.sort(), [
    'add_embedding.norm1.bias', 'add_embedding.norm1.weight', 'add_embedding.norm2.bias', 'add_embedding.norm2.weight',
    'add_embedding.pool.k_proj.bias', 'add_embedding.pool.k_proj.weight', 'add_embedding.pool.positional_embedding',
    'add_embedding.pool.q_proj.bias', 'add_embedding.pool.q_proj.weight', 'add_embedding.pool.v_proj.bias', 'add_embedding.pool.v_proj.weight',
    'add_embedding.proj.bias', 'add_embedding.proj.weight',
  ]);
  assert.equal(unet.stateDict().get('add_embedding.proj.weight')!.shape, [32, 12], 'projects to the time-embedding width (4 × block_out_channels[0])');
  // no cross-attention block at all: the prompt can only arrive through add_embedding
  const x = ft.tensor(randnArray(2 * 4 * 8 * 8, 1), { shape: [2, 4, 8, 8] });
  const c1 = ft.tensor(randnArray(2 * 5 * 12, 2), { shape: [2, 5, 12] });
  const c2 = ft.tensor(randnArray(2 * 5 * 12, 3), { shape: [2, 5, 12] });
  const [a, b] = ft.noGrad(() => [unet.forward(x, [10, 500], c1), unet.forward(x, [10, 500], c2)]);
  const da = await a!.data(), db = await b!.data();
  assert.ok(da.some((v, i) => Math.abs(v - db[i]!) > 1e-4), 'another context changes the output of a UNet without cross-attention');
  const plain = new UNet2DConditionModel({ ...cfg, addition_embed_type: null });
  plain.loadStateDict(new Map([...unet.stateDict()].filter(([k]) => !k.startsWith('add_embedding.'))));
  const [p1, p2] = ft.noGrad(() => [plain.forward(x, [10, 500], c1), plain.forward(x, [10, 500], c2)]);
  assert.equal(await p1!.data(), await p2!.data(), 'without add_embedding the same UNet ignores the context');
  for (const t of [x, c1, c2, a!, b!, p1!, p2!]) t.dispose();
  unet.dispose();
  plain.dispose();
  assert.throws(() => resolveUNetConfig({ ...cfg, addition_embed_type_num_heads: 5 }), /addition_embed_type_num_heads 5 does not divide cross_attention_dim 12/);
  assert.throws(() => resolveUNetConfig({ ...cfg, addition_embed_type: 'text_time' }), /addition_embed_type/);
});

test.run();
