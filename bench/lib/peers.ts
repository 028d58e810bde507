/**
 * The peer libraries, run in this process on the same adapter: tfjs-backend-webgpu (needs a global
 * navigator.gpu in Node, per GUIDE §1) and tfjs-backend-wasm (single thread in Node).
 */
import { create, globals } from 'webgpu';

export type Tf = typeof import('@tensorflow/tfjs-core');

let tfMod: Tf | null = null;
const ready = new Set<string>();

/** Installs the WebGPU globals before any tfjs import (idempotent). */
export function installNavigatorGpu(): void {
  const g = globalThis as Record<string, unknown>;
  Object.assign(g, globals);
  if (!(g.navigator as { gpu?: unknown } | undefined)?.gpu) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]), userAgent: 'node' }, configurable: true, writable: true });
  }
}

export async function tfjs(backend: 'webgpu' | 'wasm'): Promise<Tf | null> {
  try {
    installNavigatorGpu();
    tfMod ??= (await import('@tensorflow/tfjs-core')) as Tf;
    if (!ready.has(backend)) {
      if (backend === 'webgpu') await import('@tensorflow/tfjs-backend-webgpu');
      else await import('@tensorflow/tfjs-backend-wasm');
      ready.add(backend);
    }
    const ok = await tfMod.setBackend(backend);
    if (!ok) return null;
    await tfMod.ready();
    return tfMod;
  } catch (e) {
    console.error(`peer tfjs-${backend} unavailable: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

/** Forces tfjs to finish: read one element back (the same thing the foliar side does). */
export async function tfSync(tf: Tf, t: import('@tensorflow/tfjs-core').Tensor): Promise<void> {
  const one = tf.slice(t, new Array<number>(t.rank).fill(0), new Array<number>(t.rank).fill(1));
  await one.data();
  one.dispose();
}
