import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { readSafetensors, StateDictError } from '@foliar/nn';
import { AutoencoderKL, CLIPTextModel, loadVAE, loadTextEncoder, weightFiles } from '@foliar/diffusion';
import { setup, teardown, assertClose } from '../helpers.js';

/**
 * Checkpoints in the wild: legacy VAE attention names (query/key/value/proj_attn, 1x1-conv shaped),
 * text encoders without the `text_model.` prefix and with int64 position_ids, F16/BF16 weights, and
 * bad files — each loads, or fails naming what is wrong.
 */
const test = suite('diffusers weight loading');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-load-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

const vaeCfg = { block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, latent_channels: 4, down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'] };

async function writeModel(sub: string, cfg: object, entries: [string, { dtype: ft.SafetensorsDtype; shape: number[]; data: Float32Array | Int32Array | BigInt64Array }][], file: string): Promise<string> {
  const d = join(dir, sub);
  await ft.writeFileAtomic(join(d, 'config.json'), JSON.stringify(cfg));
  await ft.writeSafetensors(join(d, file), entries);
  return d;
}

test('VAE with legacy attention keys and 1x1-conv shaped weights loads and matches', async () => {
  ft.manualSeed(3);
  const ref = new AutoencoderKL(vaeCfg);
  const entries: [string, { dtype: ft.SafetensorsDtype; shape: number[]; data: Float32Array }][] = [];
  for (const [k, t] of ref.stateDict()) {
    let key = k.replace('.to_q.', '.query.').replace('.to_k.', '.key.').replace('.to_v.', '.value.').replace('.to_out.0.', '.proj_attn.');
    let shape = [...t.shape];
    if (key !== k && k.endsWith('.weight')) shape = [...shape, 1, 1];
    entries.push([key, { dtype: 'F16', shape, data: (await t.data()) as Float32Array }]);
    key = '';
  }
  const d = await writeModel('vae-legacy', vaeCfg, entries, 'diffusion_pytorch_model.safetensors');
  const vae = await loadVAE(d);
  const x = ft.rand([1, 3, 16, 16], { low: -1, high: 1 });
  const a = ft.noGrad(() => vae.decode(vae.encode(x).mean));
  // the reference through F16-rounded weights: compare loosely
  const b = ft.noGrad(() => ref.decode(ref.encode(x).mean));
  await assertClose(a, b, { rtol: 2e-2, atol: 2e-2, msg: 'legacy VAE output' });
});

test('text encoder without the text_model. prefix and with int64 position_ids loads', async () => {
  ft.manualSeed(5);
  const cfg = { vocab_size: 100, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 12, eos_token_id: 99 };
  const ref = new CLIPTextModel(cfg);
  const entries: [string, { dtype: ft.SafetensorsDtype; shape: number[]; data: Float32Array | BigInt64Array }][] = [];
  for (const [k, t] of ref.stateDict()) entries.push([k.replace(/^text_model\./, ''), { dtype: 'F32', shape: [...t.shape], data: (await t.data()) as Float32Array }]);
  entries.push(['embeddings.position_ids', { dtype: 'I64', shape: [1, 12], data: BigInt64Array.from({ length: 12 }, (_, i) => BigInt(i)) }]);
  const d = await writeModel('te', cfg, entries, 'model.safetensors');
  const te = await loadTextEncoder(d);
  const ids = [[98, 5, 7, 99, 99, 99]];
  await assertClose(te.forward(ids).lastHiddenState, ref.forward(ids).lastHiddenState, { rtol: 1e-6, atol: 1e-6 });
});

test('a mis-shaped weight file is refused with every bad key named', async () => {
  const cfg = { vocab_size: 50, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 8, eos_token_id: 49 };
  const ref = new CLIPTextModel(cfg);
  const entries: [string, { dtype: ft.SafetensorsDtype; shape: number[]; data: Float32Array }][] = [];
  for (const [k, t] of ref.stateDict()) {
    if (k.endsWith('fc1.bias')) continue; // missing
    const shape = k.endsWith('token_embedding.weight') ? [51, 8] : [...t.shape];
    entries.push([k, { dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }]);
  }
  entries.push(['text_model.extra.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
  const d = await writeModel('bad', cfg, entries, 'model.safetensors');
  try {
    await loadTextEncoder(d);
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.instance(e, StateDictError);
    const m = (e as Error).message;
    assert.match(m, /token_embedding\.weight expects \[50, 8\], got \[51, 8\]/);
  }
});

test('a truncated weight file names the file and the problem', async () => {
  const d = join(dir, 'trunc');
  await ft.writeFileAtomic(join(d, 'config.json'), '{}');
  await ft.writeSafetensors(join(d, 'model.safetensors'), [['w', { dtype: 'F32', shape: [1000], data: new Float32Array(1000) }]]);
  const { truncate } = await import('node:fs/promises');
  await truncate(join(d, 'model.safetensors'), 500);
  const files = await weightFiles(d);
  try {
    await readSafetensors(files[0]!);
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.match((e as Error).message, /model\.safetensors/);
    assert.match((e as Error).message, /past the end|truncated/);
  }
  assert.ok(existsSync(files[0]!));
});

test.run();
