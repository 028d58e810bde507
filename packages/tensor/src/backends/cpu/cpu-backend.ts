import { Storage, type Backend, type KernelTable, type MemoryStats, type View } from '../../backend.js';
import type { Kernels, KernelName } from '../kernel-attrs.js';
import { allocTyped, type AnyTypedArray, type DType } from '../../dtype.js';
import { runAtF16Boundary } from '../../ops/cast/boundary.js';

export class CpuStorage extends Storage {
  constructor(
    readonly backend: CpuBackend,
    readonly data: AnyTypedArray,
    dtype: DType,
  ) {
    super(dtype, data.length);
  }
}

/**
 * The reference backend: plain typed-array loops in f32, written to be obviously correct. It is the
 * oracle the WebGPU kernels are tested against, and the fallback when no adapter exists.
 */
export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly maxBindingBytes = Infinity;
  /** @param kernels the CPU kernel table (kernels/index.ts; context.ts passes it). */
  constructor(readonly kernels: KernelTable<CpuBackend>) {}
  private live = 0;
  private liveBytes = 0;
  private peak = 0;

  alloc(dtype: DType, size: number): CpuStorage {
    const s = new CpuStorage(this, allocTyped(dtype, size), dtype);
    this.track(s, 1);
    return s;
  }
  upload(data: AnyTypedArray): CpuStorage {
    const dtype: DType =
      data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : data instanceof Uint32Array ? 'uint32' : 'float16';
    const s = new CpuStorage(this, data.slice(), dtype);
    this.track(s, 1);
    return s;
  }
  private track(s: CpuStorage, sign: 1 | -1): void {
    this.live += sign;
    this.liveBytes += sign * s.data.byteLength;
    if (this.liveBytes > this.peak) this.peak = this.liveBytes;
  }
  async read(storage: Storage, offset: number, count: number): Promise<AnyTypedArray> {
    return (storage as CpuStorage).data.slice(offset, offset + count);
  }
  free(storage: Storage): void {
    this.track(storage as CpuStorage, -1);
  }
  run<K extends KernelName>(kernel: K, inputs: readonly View[], attrs: Kernels[K]['attrs']): Kernels[K]['out'] {
    const fn: KernelTable<CpuBackend>[K] = this.kernels[kernel];
    // float16 operands: the reference loops read f32, so every f16 input is cast at this boundary (ops/cast/boundary.ts)
    return runAtF16Boundary(this, kernel, inputs, attrs, {}, (ins, at) => fn(this, ins, at));
  }
  flush(): void {}
  async sync(): Promise<void> {}
  memory(): MemoryStats {
    return { backend: 'cpu', liveBuffers: this.live, liveBytes: this.liveBytes, peakBytes: this.peak, pooledBuffers: 0, pooledBytes: 0 };
  }
  resetPeak(): void {
    this.peak = this.liveBytes;
  }
  describe(): string {
    return 'CPU reference backend (f32 typed-array loops; float16 storage is cast to f32 per kernel)';
  }
}

export function dataOf(v: View): AnyTypedArray {
  return (v.storage as CpuStorage).data;
}

/** Calls fn(outIndex, offsets...) for every element of `shape`, walking each view's strides. */
export function forEachIndex(shape: readonly number[], strideSets: readonly (readonly number[])[], bases: readonly number[], fn: (i: number, offs: number[]) => void): void {
  const rank = shape.length;
  let n = 1;
  for (const d of shape) n *= d;
  if (n === 0) return;
  const idx = new Array<number>(rank).fill(0);
  const offs = [...bases];
  for (let i = 0; i < n; i++) {
    fn(i, offs);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      for (let k = 0; k < offs.length; k++) offs[k]! += strideSets[k]![d]!;
      if (idx[d]! < shape[d]!) break;
      for (let k = 0; k < offs.length; k++) offs[k]! -= strideSets[k]![d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}
