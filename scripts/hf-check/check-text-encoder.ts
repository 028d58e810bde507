// Loads the transformers-written SD1.5-shaped text encoder (write-text-encoder.py) and compares its
// outputs with transformers'. On a 128 MiB-binding adapter the 144.8 MiB token embedding runs in row
// shards. BACKEND=cpu runs it on the CPU reference backend.
import { readFileSync } from 'node:fs';
import * as ft from '@foliar/tensor';
import { loadTextEncoder } from '@foliar/diffusion';
const dir = process.argv[2] ?? '/tmp/hf-te';
await ft.init({ backend: (process.env.BACKEND as 'webgpu' | 'cpu') ?? 'webgpu' });
const t0 = performance.now();
const te = await loadTextEncoder(`${dir}/text_encoder`);
console.log(`loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${ft.getBackend().name}, binding limit ${ft.getBackend().maxBindingBytes}`);
const raw = readFileSync(`${dir}/ids.i32`);
const ids = new Int32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
const rows = [Array.from(ids.slice(0, 77)), Array.from(ids.slice(77))];
const o = te.forward(rows);
const want = (f: string) => { const r = readFileSync(`${dir}/${f}`); return new Float32Array(r.buffer.slice(r.byteOffset, r.byteOffset + r.byteLength)); };
for (const [name, got, ref] of [['last_hidden_state', await o.lastHiddenState.dataF32(), want('last_hidden_state.f32')], ['pooler_output', await o.pooledOutput.dataF32(), want('pooler_output.f32')]] as const) {
  let err = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) { err = Math.max(err, Math.abs(got[i]! - ref[i]!)); scale = Math.max(scale, Math.abs(ref[i]!)); }
  console.log(`${name}: ${got.length} values, max |diff| ${err.toExponential(2)} (max |ref| ${scale.toFixed(2)})`);
}
ft.shutdown();
