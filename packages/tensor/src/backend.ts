import type { DType, AnyTypedArray } from './dtype.js';
import type { Kernels, KernelName } from './backends/kernel-attrs.js';

export type BackendName = 'webgpu' | 'cpu';

/**
 * Memory owned by a backend. Reference-counted: tensors and views sharing it, and autograd
 * nodes that saved it, each hold one reference; the backend reclaims it at zero.
 */
export abstract class Storage {
  refs = 1;
  abstract readonly backend: Backend;
  constructor(
    readonly dtype: DType,
    /** Number of elements. */
    readonly size: number,
  ) {}
  retain(): this {
    if (this.refs <= 0) throw new Error('use of a released storage (a tensor was used after dispose())');
    this.refs++;
    return this;
  }
  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) this.backend.free(this);
  }
  get released(): boolean {
    return this.refs <= 0;
  }
}

/** A strided window on a storage: what every kernel reads. Strides and offset are in elements. */
export interface View {
  readonly storage: Storage;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
}

export interface MemoryStats {
  backend: BackendName;
  /** Buffers (or arrays) currently holding tensor data. */
  liveBuffers: number;
  liveBytes: number;
  peakBytes: number;
  /** Buffers kept for reuse by the pool. */
  pooledBuffers: number;
  pooledBytes: number;
}

/**
 * The implementation of kernel K on backend B: reads its input views, returns the storages it
 * produced (or writes in place and returns nothing). Attributes are plain data, typed by Kernels.
 */
export type KernelFn<B extends Backend, K extends KernelName> = (
  backend: B,
  inputs: readonly View[],
  attrs: Kernels[K]['attrs'],
) => Kernels[K]['out'];

/** A backend's kernels: one implementation per entry of Kernels (a missing one does not compile). */
export type KernelTable<B extends Backend> = { readonly [K in KernelName]: KernelFn<B, K> };

export interface Backend {
  readonly name: BackendName;
  /** A storage of `size` elements with undefined contents. */
  alloc(dtype: DType, size: number): Storage;
  /** A storage holding a copy of `data`. */
  upload(data: AnyTypedArray): Storage;
  /** Reads `count` elements from `offset` (elements). Resolves once the device has finished writing them. */
  read(storage: Storage, offset: number, count: number): Promise<AnyTypedArray>;
  /** Called by Storage.release; do not call directly. */
  free(storage: Storage): void;
  /** Runs one of the kernels of the contract (backends/kernel-attrs.ts, Kernels) on this backend. */
  run<K extends KernelName>(kernel: K, inputs: readonly View[], attrs: Kernels[K]['attrs']): Kernels[K]['out'];
  /** Submits queued work (no-op on CPU). */
  flush(): void;
  /** Waits for all submitted work. */
  sync(): Promise<void>;
  memory(): MemoryStats;
  /** Human-readable description (adapter, driver). */
  describe(): string;
  /**
   * The most bytes one kernel binding may hold (WebGPU: maxStorageBufferBindingSize or a lower test
   * limit; CPU: Infinity). Models split work that would exceed it (tiled VAE decode, for one).
   */
  readonly maxBindingBytes: number;
}
