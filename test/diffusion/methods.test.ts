/**
 * Fine-tuning methods: LoRA (attach, the low-rank update against a host computation, save in PEFT
 * format, load into a fresh pipeline, merge = adapted output), textual inversion (only the new row
 * changes under training; save/load), full fine-tuning (UNet weights change, VAE and text encoder do
 * not; the saved pipeline reloads).
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { Linear, readSafetensors } from '@foliar/nn';
import { LoRA, TextualInversion, FullFineTune, trainDreamBooth, StableDiffusionPipeline, type StableDiffusionPipeline as Pipe } from '@foliar/diffusion';
import { setup, teardown, assertClose, assertExact, randnArray } from '../helpers.js';
import { tinyPipeline, leafImages } from './fixtures.js';

const test = suite('fine-tuning methods');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-methods-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

/** A fixed UNet call (noisy latents, timestep, text context). */
async function unetOut(pipe: Pipe): Promise<Float32Array> {
  const x = ft.tensor(randnArray(2 * 4 * 8 * 8, 21), { shape: [2, 4, 8, 8], backend: pipe.backend });
  const ctx = pipe.encodeText(['a leaf', 'a rusty leaf']);
  const y = ft.noGrad(() => pipe.unet.forward(x, [10, 700], ctx));
  const d = (await y.data()) as Float32Array;
  for (const t of [x, ctx, y]) t.dispose();
  return d;
}

/** Gives every LoRA B matrix random values (B starts at zero, so a fresh adapter changes nothing). */
function randomizeB(lora: LoRA, seed: number): void {
  let s = seed;
  ft.noGrad(() => {
    for (const [k, t] of lora.stateDict()) if (k.endsWith('lora_B.weight')) ft.setData_(t, randnArray(t.size, s++, 0.3));
  });
}

test('LoRA: B = 0 leaves the model unchanged; the adapter adds (α/r)·B·A·x, computed here on the host', async () => {
  const pipe = tinyPipeline();
  const base = await unetOut(pipe);
  const lora = new LoRA({ rank: 2, alpha: 3 });
  const params = lora.attach(pipe);
  const adapted = lora.stateDict();
  // tiny UNet: 4 transformer blocks × 2 attentions × to_q/to_k/to_v/to_out.0
  assert.is(adapted.size, 4 * 2 * 4 * 2);
  assert.is(params.length, adapted.size);
  assert.ok(pipe.unet.parameters().every((p) => !p.requiresGrad), 'the UNet is frozen');
  assert.ok(params.every((p) => p.requiresGrad));
  assertExact(await unetOut(pipe), base, 'B = 0: output unchanged');
  randomizeB(lora, 1);
  // one projection checked by hand: y − base(x) = (α/r)·B·(A·x)
  const key = [...adapted.keys()].find((k) => k.endsWith('attn2.to_k.lora_A.weight'))!;
  const path = key.replace(/^unet\./, '').replace(/\.lora_A\.weight$/, '');
  const lin = new Map(pipe.unet.namedModules()).get(path) as Linear;
  const A = (await adapted.get(key)!.data()) as Float32Array, B = (await adapted.get(key.replace('lora_A', 'lora_B'))!.data()) as Float32Array;
  const inF = lin.inFeatures, outF = lin.outFeatures;
  const xd = randnArray(3 * inF, 5);
  const x = ft.tensor(xd, { shape: [3, inF], backend: pipe.backend });
  const y = ft.noGrad(() => lin.forward(x));
  const deltas = lin.deltas;
  lin.deltas = [];
  const y0 = ft.noGrad(() => lin.forward(x));
  lin.deltas = deltas;
  const diff = ft.noGrad(() => y.sub(y0));
  const ref = new Float64Array(3 * outF);
  for (let n = 0; n < 3; n++)
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let r = 0; r < 2; r++) {
        let ax = 0;
        for (let i = 0; i < inF; i++) ax += A[r * inF + i]! * xd[n * inF + i]!;
        acc += B[o * 2 + r]! * ax;
      }
      ref[n * outF + o] = (3 / 2) * acc;
    }
  await assertClose(diff, ref, { rtol: 1e-4, atol: 1e-5, msg: 'LoRA delta of one projection' });
  for (const t of [x, y, y0, diff]) t.dispose();
  lora.dispose();
  pipe.dispose();
});

test('LoRA: save (PEFT keys) → a fresh pipeline loads the same output; merge gives the adapted output', async () => {
  const pipe = tinyPipeline();
  const lora = new LoRA({ rank: 2, alpha: 4 });
  lora.attach(pipe);
  randomizeB(lora, 7);
  const adapted = await unetOut(pipe);
  const out = join(dir, 'lora');
  await lora.save(pipe, out);
  const file = await readSafetensors(join(out, 'pytorch_lora_weights.safetensors'));
  assert.ok(file.has('unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight'), 'PEFT key layout');
  assert.ok([...file.keys()].every((k) => /^unet\..*\.(to_q|to_k|to_v|to_out\.0)\.lora_[AB]\.weight$/.test(k)));
  // a fresh pipeline (same base weights) with the saved adapter
  const fresh = tinyPipeline();
  const l2 = new LoRA({ rank: 2, alpha: 4 });
  l2.attach(fresh);
  await l2.load(fresh, out);
  assertExact(await unetOut(fresh), adapted, 'reloaded LoRA output');
  // LoRA.fromPretrained reads rank, alpha and targets from the file's metadata
  const third = tinyPipeline();
  const l4 = await LoRA.fromPretrained(third, out);
  assert.is(l4.rank, 2);
  assert.is(l4.alpha, 4);
  assertExact(await unetOut(third), adapted, 'LoRA.fromPretrained output');
  l4.dispose();
  third.dispose();
  // merge: W ← W + (α/r)·B·A, adapters gone, state-dict keys those of the base model
  const keysBefore = [...pipe.unet.stateDict().keys()];
  lora.merge();
  await assertClose(await unetOut(pipe), adapted, { rtol: 1e-4, atol: 1e-5, msg: 'merged vs adapted output' });
  assert.ok([...pipe.unet.namedModules()].every(([, m]) => !(m instanceof Linear) || m.deltas.length === 0), 'no adapters left');
  assert.equal([...pipe.unet.stateDict().keys()], keysBefore);
  // a file for another rank is refused with the key named
  const l3 = new LoRA({ rank: 3 });
  const other = tinyPipeline();
  l3.attach(other);
  let msg = '';
  await l3.load(other, out).catch((e: Error) => (msg = e.message));
  assert.match(msg, /lora_[AB]\.weight: \d+ values for shape \[/);
  for (const p of [pipe, fresh, other]) p.dispose();
  l2.dispose();
  l3.dispose();
});

test('textual inversion: the new row starts at the initializer, only it changes in training; save/load', async () => {
  const pipe = tinyPipeline();
  const emb = () => pipe.textEncoder.textModel.embeddings.tokenEmbedding.weight;
  const before = (await emb().data()) as Float32Array;
  const V = emb().shape[0]!, D = emb().shape[1]!;
  const ti = new TextualInversion({ token: '<scab-leaf>', initializerToken: 'l' });
  const r = await trainDreamBooth(pipe, {
    instanceImages: leafImages(2, 16, 'scab'), instancePrompt: 'a <scab-leaf>', resolution: 16, method: ti,
    learningRate: 5e-2, maxTrainSteps: 4, outputDir: join(dir, 'ti'), quiet: true,
  });
  assert.is(r.steps, 4);
  const after = (await emb().data()) as Float32Array;
  assert.equal(emb().shape, [V + 1, D], 'one row added');
  const id = pipe.tokenizer.tokenId('<scab-leaf>')!;
  assert.is(id, V);
  assertExact(after.subarray(0, V * D), before, 'every other row unchanged (AdamW weight decay included)');
  const init = pipe.tokenizer.encode('l')[0]!;
  const newRow = after.subarray(V * D);
  const initRow = before.subarray(init * D, (init + 1) * D);
  assert.ok(newRow.some((v, i) => Math.abs(v - initRow[i]!) > 1e-4), 'the new row trained');
  // the saved embedding loads into a fresh pipeline: same text-encoder output for a prompt with the token
  const fresh = tinyPipeline();
  const t2 = new TextualInversion({ token: '<scab-leaf>', initializerToken: 'l' });
  t2.attach(fresh);
  await t2.load(fresh, join(dir, 'ti', 'final'));
  const a = pipe.encodeText(['a <scab-leaf> photo']), b = fresh.encodeText(['a <scab-leaf> photo']);
  assertExact(await b.data(), await a.data(), 'text embeddings after loading learned_embeds.safetensors');
  for (const t of [a, b]) t.dispose();
  ti.dispose();
  t2.dispose();
  pipe.dispose();
  fresh.dispose();
});

test('full fine-tune: UNet weights change, VAE and text encoder do not; final/ reloads with fromPretrained', async () => {
  const pipe = tinyPipeline();
  const snap = async (m: { stateDict(): Map<string, ft.Tensor> }) => new Map(await Promise.all([...m.stateDict()].map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
  const [u0, v0, t0] = [await snap(pipe.unet), await snap(pipe.vae), await snap(pipe.textEncoder)];
  const method = new FullFineTune();
  await trainDreamBooth(pipe, { instanceImages: leafImages(1, 16), instancePrompt: 'a sks leaf', resolution: 16, method, learningRate: 1e-3, maxTrainSteps: 3, outputDir: join(dir, 'full'), quiet: true });
  const [u1, v1, t1] = [await snap(pipe.unet), await snap(pipe.vae), await snap(pipe.textEncoder)];
  let changed = 0;
  for (const [k, a] of u0) if (a.some((v, i) => v !== u1.get(k)![i])) changed++;
  assert.ok(changed > u0.size * 0.9, `${changed} of ${u0.size} UNet tensors changed`);
  for (const [k, a] of v0) assertExact(v1.get(k)!, a, `VAE ${k}`);
  for (const [k, a] of t0) assertExact(t1.get(k)!, a, `text encoder ${k}`);
  const re = await StableDiffusionPipeline.fromPretrained(join(dir, 'full', 'final'));
  const u2 = await snap(re.unet);
  for (const [k, a] of u1) assertExact(u2.get(k)!, a, `reloaded UNet ${k}`);
  re.dispose();
  pipe.dispose();
});

test.run();
