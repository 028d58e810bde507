/**
 * dawn.node resolves GPU promises (mapAsync, onSubmittedWorkDone) by re-queuing a poll with the
 * global `setImmediate` until the work is done. That busy-spins one core; on a 2-core machine running
 * lavapipe it takes a third of the CPU away from the driver's worker threads. While foliar awaits GPU
 * work it can route those ticks through `setTimeout(fn, 1)` instead ("timeout" mode). Measured in
 * bench/polling.ts; "immediate" restores Dawn's own behaviour.
 */
export type PollingMode = 'timeout' | 'immediate';

let mode: PollingMode = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
  ?.FOLIAR_POLLING === 'immediate'
  ? 'immediate'
  : 'timeout';
let depth = 0;
let saved: typeof setImmediate | undefined;

export function setPollingMode(m: PollingMode): void {
  mode = m;
}
export function getPollingMode(): PollingMode {
  return mode;
}

type Immediate = typeof setImmediate;

function patchedImmediate(cb: (...args: unknown[]) => void, ...args: unknown[]): ReturnType<typeof setTimeout> {
  return setTimeout(cb, 1, ...args);
}

/** Awaits a promise that dawn.node resolves by polling, with the chosen polling mode. */
export async function awaitGpu<T>(p: Promise<T>): Promise<T> {
  const g = globalThis as { setImmediate?: Immediate };
  if (mode === 'immediate' || typeof g.setImmediate !== 'function') return p;
  if (depth++ === 0) {
    saved = g.setImmediate;
    // cast: Node's setImmediate type carries overloads and __promisify__ that a stand-in cannot declare
    g.setImmediate = patchedImmediate as unknown as Immediate;
  }
  try {
    return await p;
  } finally {
    if (--depth === 0 && saved) {
      g.setImmediate = saved;
      saved = undefined;
    }
  }
}
