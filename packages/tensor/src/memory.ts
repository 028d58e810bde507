import { Tensor } from './tensor.js';
import { getBackend } from './context.js';
import type { Backend, MemoryStats } from './backend.js';

export interface MemoryReport extends MemoryStats {
  liveTensors: number;
}

/** Live tensors, live buffers, bytes in use and the peak, for the given (default: current) backend. */
export function memory(backend: Backend = getBackend()): MemoryReport {
  return { ...backend.memory(), liveTensors: Tensor.liveCount() };
}

export function liveTensors(): number {
  return Tensor.liveCount();
}

export function resetPeakMemory(backend: Backend = getBackend()): void {
  const b = backend as Backend & { resetPeak?: () => void; rt?: { pool: { peakBytes: number; liveBytes: number } } };
  if (b.resetPeak) b.resetPeak();
  else if (b.rt) b.rt.pool.peakBytes = b.rt.pool.liveBytes;
}
