/**
 * Where a training step's dispatches come from: every dispatch of one step (after a warm-up) is
 * attributed to its kernel name and the first call-site frames outside the runtime, so the
 * avoidable copies and adds can be found (issue 12). Prints the top sites per kernel. The step is
 * the tiny UNet's (batch 8, 16² latents, MSE + AdamW) or, with `--model resnet18`, ResNet18's
 * (batch 32, 64², cross-entropy + SGD momentum), as in the `profile` bench suite.
 *
 * node --conditions=foliar-source --import tsx bench/tools/dispatch-sites.ts [kernel,...] [--frames N] [--model unet|resnet18]
 */
import * as ft from '@foliar/tensor';
import { WebGPURuntime, type DispatchSpec } from '@foliar/tensor/internal';
import { unetCase, resnetCase } from '../lib/step-cases.js';

const args = process.argv.slice(2);
const fi = args.indexOf('--frames');
const frames = fi >= 0 ? Number(args[fi + 1]) : 4;
const mi = args.indexOf('--model');
const model = mi >= 0 ? args[mi + 1] : 'unet';
if (model !== 'unet' && model !== 'resnet18') throw new Error(`--model: unet or resnet18, not ${model}`);
const only = args.filter((a, i) => !a.startsWith('--') && (fi < 0 || i !== fi + 1) && (mi < 0 || i !== mi + 1));
const want = only.length ? new Set(only.join(',').split(',')) : null;

await ft.init({ backend: 'webgpu' });

const { step } = model === 'unet' ? await unetCase() : await resnetCase();
await step();

// the autograd node whose backward is running (its name and forward scope), for backward dispatches
let current = 'forward';
const nodeProto = ft.Node.prototype as unknown as { apply(...args: unknown[]): unknown };
const origApply = nodeProto.apply;
nodeProto.apply = function (this: ft.Node, ...args: unknown[]) {
  const prev = current;
  current = `bw:${this.name}@${this.scope}`;
  try {
    return origApply.apply(this, args);
  } finally {
    current = prev;
  }
};
const sites = new Map<string, number>();
const byName = new Map<string, number>();
const proto = WebGPURuntime.prototype as unknown as { dispatch(spec: DispatchSpec): void };
const orig = proto.dispatch;
Error.stackTraceLimit = 40;
proto.dispatch = function (this: WebGPURuntime, spec: DispatchSpec) {
  byName.set(spec.name, (byName.get(spec.name) ?? 0) + 1);
  if (!want || want.has(spec.name)) {
    const st = (new Error().stack ?? '').split('\n').slice(2);
    const keep = st
      .map((l) => l.trim().replace(/^at /, '').replace(/\S*\/packages\//, '').replace(/\)$/, '').replace(/:\d+$/, ''))
      .filter((l) => !/runtime\/|webgpu-backend|backends\/webgpu\/kernels|ops\/elementwise\/webgpu|node:internal|^new Promise|scope\.ts|grad-mode|node\.ts|\bew \(|tensor-methods/.test(l));
    const key = `${spec.name} [${current.startsWith('bw:') ? current.replace(/@.*\/([^/]+)$/, '@$1') : 'fwd'}] <- ${keep.slice(0, frames).join(' <- ')}`;
    sites.set(key, (sites.get(key) ?? 0) + 1);
  }
  return orig.call(this, spec);
};
await step();
proto.dispatch = orig;
const total = [...byName.values()].reduce((a, b) => a + b, 0);
console.log(`${total} dispatches: ${[...byName].sort((a, b) => b[1] - a[1]).map(([n, c]) => `${n} ${c}`).join(', ')}`);
for (const [k, n] of [...sites].sort((a, b) => b[1] - a[1])) console.log(`${String(n).padStart(4)}  ${k}`);
ft.shutdown();
