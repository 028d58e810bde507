/**
 * Float16 weights on the golden tiny SD models (issue 16): loadUNet / loadTextEncoder / loadVAE with
 * { dtype: 'float16' } hold f16 parameters (half the bytes) and reproduce diffusers' outputs
 * (../shared/golden/tiny-sd-current) within the error that rounding the weights to f16 causes.
 *
 * Tolerance, and why: an f16 weight carries a relative rounding error of at most 2^-11 (4.9e-4);
 * activations and accumulation stay f32, so the output error is that weight noise propagated through
 * the network. Measured on lavapipe (max |err| / rms, output scale max|ref| ≈ 2): UNet 1.2e-3 / 2.1e-4,
 * text encoder 1.8e-3 / 3.9e-4, VAE mean 4.8e-4 / 1.2e-4, VAE decode 3.4e-3 / 4.1e-4 (f32 weights:
 * ≤ 1.9e-6). The bounds are max |err| ≤ 4e-3 · max|ref| and rms ≤ 5e-4 · max|ref|: 2-3x above what
 * was measured, 10x below the error of perturbing the weights by 1% (checked below, so the bound is
 * not vacuous). Separately, the f16 run must equal an f32 run whose weights hold the same rounded
 * values to 1e-5 · max|ref|: the kernels add no error of their own.
 */
import { suite, skip } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { saveSafetensors, type Module } from '@foliar/nn';
import { loadUNet, loadTextEncoder, loadVAE, type LoadModelOptions } from '@foliar/diffusion';
import { setup, teardown, backends, shared, readGolden } from '../helpers.js';

const test = suite('float16 golden tiny SD');
let tmp = '';
test.before(async () => {
  await setup();
  tmp = mkdtempSync(join(tmpdir(), 'foliar-f16-'));
});
test.after(() => {
  teardown();
  rmSync(tmp, { recursive: true, force: true });
});

const MAX_TOL = 4e-3;
const RMS_TOL = 5e-4;

function errors(a: Float32Array, ref: Float32Array): { max: number; rms: number; scale: number } {
  let m = 0, s = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - ref[i]!);
    m = Math.max(m, e);
    s += e * e;
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return { max: m, rms: Math.sqrt(s / a.length), scale };
}

function dir(sub: string): string {
  const d = shared(join('golden/tiny-sd-current', sub), 'f16 golden');
  if (!d) skip('../shared/golden/tiny-sd-current not found', 'shared');
  return d!;
}

function paramBytes(m: Module): number {
  return m.parameters().reduce((a, p) => a + p.size * (p.dtype === 'float16' ? 2 : 4), 0);
}

/** Every parameter rounded to f16 and back to f32 (the same values as the f16 model, in f32 storage). */
function roundedF32<M extends Module>(m: M): M {
  return m.to({ dtype: 'float16' }).to({ dtype: 'float32' });
}

async function values(t: ft.Tensor): Promise<Float32Array> {
  const d = await t.dataF32();
  t.dispose();
  return d;
}

function check(name: string, f16: Float32Array, ref: Float32Array, f32: Float32Array, rounded: Float32Array): void {
  const e = errors(f16, ref), e32 = errors(f32, ref), er = errors(f16, rounded);
  console.log(`  ${name}: f16 max ${e.max.toExponential(2)} rms ${e.rms.toExponential(2)}; f32 max ${e32.max.toExponential(2)}; f16 vs rounded-f32 ${er.max.toExponential(2)} (max|ref| ${e.scale.toFixed(3)})`);
  assert.ok(e.max <= MAX_TOL * e.scale, `${name}: f16 max |err| ${e.max} > ${MAX_TOL} · ${e.scale}`);
  assert.ok(e.rms <= RMS_TOL * e.scale, `${name}: f16 rms ${e.rms} > ${RMS_TOL} · ${e.scale}`);
  assert.ok(er.max <= 1e-5 * e.scale, `${name}: f16 weights vs f32 weights of the same values differ by ${er.max}`);
  assert.ok(e32.max <= 1e-4 * e.scale, `${name}: the f32 run drifted (${e32.max})`);
}

test('UNet forward with f16 weights: half the parameter bytes, golden output within the f16 tolerance', async () => {
  const g = await readGolden('tiny-sd-current/unet_forward.safetensors', 'unet_forward');
  const ts = Array.from(g.timestep!.data);
  const run = async (o: LoadModelOptions, prep?: (m: Awaited<ReturnType<typeof loadUNet>>) => void): Promise<[Float32Array, number]> => {
    const m = await loadUNet(dir('unet'), o);
    prep?.(m);
    const bytes = paramBytes(m);
    const sample = ft.fromTyped(g.sample!.data as Float32Array, g.sample!.shape);
    const ctx = ft.fromTyped(g.encoder_hidden_states!.data as Float32Array, g.encoder_hidden_states!.shape);
    const out = await values(ft.tidy(() => ft.noGrad(() => m.forward(sample, ts, ctx))));
    m.dispose();
    sample.dispose();
    ctx.dispose();
    return [out, bytes];
  };
  const [f16, b16] = await run({ dtype: 'float16' });
  const [f32, b32] = await run({});
  const [rounded] = await run({}, roundedF32);
  assert.is(b16 * 2, b32, 'f16 parameters take half the bytes');
  check('unet out', f16, g.out!.data as Float32Array, f32, rounded);
  // the bound rejects a model whose weights are 1% off (so it is not vacuous)
  const [noisy] = await run({}, (m) => {
    let i = 0;
    for (const p of m.parameters()) ft.noGrad(() => ft.copy_(p, p.mul(i++ % 2 ? 1.01 : 0.99)));
  });
  const en = errors(noisy, g.out!.data as Float32Array);
  assert.ok(en.max > 10 * MAX_TOL * en.scale || en.rms > 10 * RMS_TOL * en.scale, `1% weight noise must fail the bound by 10x (max ${en.max}, rms ${en.rms})`);
});

test('text encoder with f16 weights: golden last_hidden_state / pooled within the f16 tolerance', async () => {
  const g = await readGolden('tiny-sd-current/text_encoder_forward.safetensors', 'text_encoder_forward');
  const [b, l] = g.input_ids!.shape as [number, number];
  const ids = Array.from({ length: b }, (_, i) => Array.from(g.input_ids!.data.subarray(i * l, (i + 1) * l)));
  const run = async (o: LoadModelOptions, prep?: (m: Awaited<ReturnType<typeof loadTextEncoder>>) => void): Promise<Float32Array[]> => {
    const m = await loadTextEncoder(dir('text_encoder'), o);
    prep?.(m);
    if (o.dtype === 'float16') assert.ok(m.parameters().every((p) => p.dtype === 'float16'), 'every parameter is f16');
    const out = ft.noGrad(() => m.forward(ids));
    const r = [await values(out.lastHiddenState), await values(out.pooledOutput)];
    m.dispose();
    return r;
  };
  const f16 = await run({ dtype: 'float16' }), f32 = await run({}), rounded = await run({}, roundedF32);
  check('last_hidden_state', f16[0]!, g.last_hidden_state!.data as Float32Array, f32[0]!, rounded[0]!);
  check('pooler_output', f16[1]!, g.pooler_output!.data as Float32Array, f32[1]!, rounded[1]!);
});

test('VAE encode / decode with f16 weights: golden latents and images within the f16 tolerance', async () => {
  const g = await readGolden('tiny-sd-current/vae_encode_decode.safetensors', 'vae_encode_decode');
  const run = async (o: LoadModelOptions, prep?: (m: Awaited<ReturnType<typeof loadVAE>>) => void): Promise<Float32Array[]> => {
    const m = await loadVAE(dir('vae'), o);
    prep?.(m);
    const img = ft.fromTyped(g.image!.data as Float32Array, g.image!.shape);
    const z = ft.fromTyped(g.z!.data as Float32Array, g.z!.shape);
    const dist = ft.noGrad(() => m.encode(img));
    const r = [await dist.mean.dataF32(), await dist.logvar.dataF32(), await values(ft.tidy(() => ft.noGrad(() => m.decode(z))))];
    dist.dispose();
    img.dispose();
    z.dispose();
    m.dispose();
    return r;
  };
  const f16 = await run({ dtype: 'float16' }), f32 = await run({}), rounded = await run({}, roundedF32);
  check('latent_mean', f16[0]!, g.latent_mean!.data as Float32Array, f32[0]!, rounded[0]!);
  check('latent_logvar', f16[1]!, g.latent_logvar!.data as Float32Array, f32[1]!, rounded[1]!);
  check('decode_of_z', f16[2]!, g.decode_of_z!.data as Float32Array, f32[2]!, rounded[2]!);
});

test('F16 files load into f16 parameters bit for bit; BF16 files are converted per tensor; no buffers leak', async () => {
  const src = await loadUNet(dir('unet'));
  const be = backends().gpu;
  for (const [dtype, sub] of [['F16', 'u16'], ['BF16', 'ubf16']] as const) {
    const d = join(tmp, sub);
    (await import('node:fs')).mkdirSync(d, { recursive: true });
    copyFileSync(join(dir('unet'), 'config.json'), join(d, 'config.json'));
    await saveSafetensors(src, join(d, 'diffusion_pytorch_model.safetensors'), { dtype });
    be.flush();
    const live0 = be.memory().liveBuffers;
    const m = await loadUNet(d, { dtype: 'float16' });
    const want = await loadUNet(d);
    const wantParams = [...want.namedParameters()];
    for (const [i, [k, p]] of [...m.namedParameters()].entries()) {
      const q = wantParams[i]![1];
      assert.is(p.dtype, 'float16', k);
      const bits = (await p.data()) as Uint16Array;
      // F16: the stored bits; BF16: the f32 upcast rounded to f16 (want holds the upcast)
      const ref = ft.f32ToF16(await q.dataF32());
      for (let i = 0; i < bits.length; i++) if (bits[i] !== ref[i]) assert.unreachable(`${dtype} ${k}[${i}]: 0x${bits[i]!.toString(16)} != 0x${ref[i]!.toString(16)}`);
    }
    m.dispose();
    want.dispose();
    await be.sync();
    // at most what was live before (the finalizer may also collect earlier tests' leftovers meanwhile)
    assert.ok(be.memory().liveBuffers <= live0, `${dtype}: loading and disposing leaves no buffer behind (${live0} -> ${be.memory().liveBuffers})`);
  }
  src.dispose();
});

test.run();
