import type { DType, AnyTypedArray } from './dtype.js';

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
 * A kernel implementation: reads its inputs, returns the storages it produced (or writes in place
 * and returns nothing). Attributes are plain data (shapes, flags, scalars).
 */
export type KernelFn<B extends Backend = Backend> = (
  backend: B,
  inputs: readonly View[],
  attrs: Record<string, unknown>,
) => Storage | Storage[] | void;

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
  /** Runs a registered kernel. */
  run(kernel: string, inputs: readonly View[], attrs?: Record<string, unknown>): Storage | Storage[] | void;
  /** Submits queued work (no-op on CPU). */
  flush(): void;
  /** Waits for all submitted work. */
  sync(): Promise<void>;
  memory(): MemoryStats;
  /** Human-readable description (adapter, driver). */
  describe(): string;
}

const registry = new Map<string, Map<BackendName, KernelFn<never>>>();

/** Registers the implementation of a kernel for one backend. Kernels are defined next to their op. */
export function registerKernel<B extends Backend>(backend: BackendName, kernel: string, fn: KernelFn<B>): void {
  let m = registry.get(kernel);
  if (!m) registry.set(kernel, (m = new Map()));
  m.set(backend, fn as KernelFn<never>);
}

export function getKernel<B extends Backend>(backend: BackendName, kernel: string): KernelFn<B> {
  const fn = registry.get(kernel)?.get(backend);
  if (!fn) throw new Error(`kernel '${kernel}' has no ${backend} implementation`);
  return fn as unknown as KernelFn<B>;
}

export function hasKernel(backend: BackendName, kernel: string): boolean {
  return registry.get(kernel)?.has(backend) ?? false;
}
