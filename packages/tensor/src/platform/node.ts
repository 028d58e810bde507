/**
 * The Node side of @foliar/tensor's platform port (package.json `imports` "#platform"; the browser
 * gets ./browser.ts). Everything here may use Node built-ins and the `webgpu` (Dawn) binding;
 * nothing outside this folder imports them for the browser-safe modules.
 */
import { availableParallelism } from 'node:os';
import { SafetensorsFile, writeSafetensors as writeSafetensorsFile } from '../io/safetensors.js';
import type { SafetensorsReader, TensorsToWrite } from '../io/safetensors-buffer.js';

export const PLATFORM = 'node' as const;

/**
 * Dawn's `GPU` object for Node (`webgpu` package), or null where the binding cannot load. Its
 * GPUBufferUsage & co. become globals, since code written for browsers needs them.
 */
export async function nodeGpu(flags: string[]): Promise<GPU | null> {
  // cast: the `webgpu` package (dawn.node) ships no TypeScript types for its module
  const mod = (await import('webgpu')) as unknown as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  // Cached, and so kept reachable: dawn.node destroys its native instance when this object is
  // garbage-collected, while mapAsync/onSubmittedWorkDone polls still use it (random crashes in
  // InstanceBase::ProcessEvents). Kept off globalThis.navigator: a global `gpu` keeps the process alive.
  const key = flags.join('\n');
  let gpu = nodeGpus.get(key);
  if (!gpu) nodeGpus.set(key, (gpu = mod.create(flags)));
  return gpu;
}

const nodeGpus = new Map<string, GPU>();

/**
 * How many threads a software adapter computes on: lavapipe's LP_NUM_THREADS where set, else the
 * cores Node may use (kernels that size their parallelism for a CPU read it).
 */
export function softwareThreads(): number {
  const lp = Number(process.env.LP_NUM_THREADS);
  return Number.isInteger(lp) && lp > 0 ? lp : (cores ??= availableParallelism());
}
// availableParallelism() asks the OS each call (a measurable cost when kernels ask per dispatch)
let cores: number | undefined;

/** Opens a safetensors file for tensor-by-tensor reads: a path on disk (Node). */
export async function openSafetensors(path: string): Promise<SafetensorsReader> {
  return SafetensorsFile.open(path);
}


/** Writes tensors to a safetensors file on disk, atomically (io/safetensors.ts writeSafetensors). */
export async function writeSafetensorsTo(path: string, tensors: TensorsToWrite, metadata?: Record<string, string>): Promise<void> {
  return writeSafetensorsFile(path, tensors, metadata);
}
