import type { BufferWindow } from '../../runtime/webgpu-runtime.js';
import type { WebGPUBackend } from './webgpu-backend.js';

/**
 * Binding part of a tensor larger than one storage binding (maxStorageBufferBindingSize). A window
 * must start at a multiple of minStorageBufferOffsetAlignment, so the range's first element lands
 * `offset` elements into it; kernels add that offset as they add a view's offset.
 */
export interface BoundRange {
  binding: GPUBuffer | BufferWindow;
  /** Elements from the start of the binding to the range's first element. */
  offset: number;
}

/**
 * Elements [start, start + count) of `buffer` (`bpe` bytes each): the whole buffer when it fits one
 * binding, else the smallest aligned window holding the range. A window over the limit is left for
 * the runtime to refuse by name (the caller sized its chunks wrong).
 */
export function bindRange(be: WebGPUBackend, buffer: GPUBuffer, start: number, count: number, bpe: number): BoundRange {
  if (buffer.size <= be.rt.maxBindingBytes) return { binding: buffer, offset: start };
  const align = be.rt.bindingAlignment;
  const startByte = start * bpe;
  const offset = Math.floor(startByte / align) * align;
  const size = Math.min(buffer.size - offset, Math.ceil((startByte - offset + count * bpe) / 4) * 4);
  return { binding: { buffer, offset, size }, offset: (startByte - offset) / bpe };
}

/** Whether any of these buffers is larger than one binding (then the op runs in chunks). */
export function needsChunks(be: WebGPUBackend, buffers: readonly GPUBuffer[]): boolean {
  const limit = be.rt.maxBindingBytes;
  return buffers.some((b) => b.size > limit);
}

/**
 * Units per chunk so that `unitBytes` bytes per unit, plus the alignment slack of a window's start,
 * fit one binding; at least 1 (a single unit over the limit is refused by the runtime by name).
 */
export function unitsPerChunk(be: WebGPUBackend, unitBytes: number): number {
  const room = be.rt.maxBindingBytes - be.rt.bindingAlignment;
  return Math.max(1, Math.floor(room / Math.max(unitBytes, 1)));
}
