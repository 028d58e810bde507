// Prints what the WebGPU adapter of this machine offers (Dawn's Node binding): info, features,
// the limits foliar plans around, subgroup sizes. Independent of foliar, so it runs even when
// foliar's own device setup fails. Usage: node scripts/gpu/probe.mjs [out.json]
import { create, globals } from 'webgpu';
import { writeFileSync } from 'node:fs';

Object.assign(globalThis, globals);
const gpu = create([]);
const out = { adapters: [] };
for (const powerPreference of ['high-performance', 'low-power']) {
  const adapter = await gpu.requestAdapter({ powerPreference });
  if (!adapter) { out.adapters.push({ powerPreference, adapter: null }); continue; }
  const info = adapter.info ?? {};
  const limits = {};
  for (const k in adapter.limits) limits[k] = adapter.limits[k];
  out.adapters.push({
    powerPreference,
    info: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize, isFallbackAdapter: info.isFallbackAdapter },
    features: [...adapter.features].sort(),
    limits,
  });
}
const text = JSON.stringify(out, null, 2);
console.log(text);
if (process.argv[2]) writeFileSync(process.argv[2], text);
process.exit(0);
