import { Storage, type Backend, type KernelTable, type MemoryStats, type View } from '../../backend.js';
import type { Kernels, KernelName } from '../kernel-attrs.js';
import { bytesPerElement, type AnyTypedArray, type DType, allocTyped } from '../../dtype.js';
import type { WebGPURuntime } from '../../runtime/webgpu-runtime.js';
import { runAtF16Boundary } from '../../ops/cast/boundary.js';
import { WEBGPU_F16_INPUTS } from '../../ops/cast/f16-inputs.js';

export class GpuStorage extends Storage {
  constructor(
    readonly backend: WebGPUBackend,
    readonly buffer: GPUBuffer,
    dtype: DType,
    size: number,
  ) {
    super(dtype, size);
  }
}

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu' as const;
  get maxBindingBytes(): number {
    return this.rt.maxBindingBytes;
  }
  /** @param kernels the WebGPU kernel table (kernels/index.ts; context.ts passes it). */
  constructor(readonly rt: WebGPURuntime, readonly kernels: KernelTable<WebGPUBackend>) {}

  alloc(dtype: DType, size: number): GpuStorage {
    // whole 4-byte words: f16 is stored as packed u32 pairs, and an odd count's last word is written whole
    const bytes = Math.max(4, Math.ceil((size * bytesPerElement(dtype)) / 4) * 4);
    return new GpuStorage(this, this.rt.createBuffer(bytes), dtype, size);
  }
  upload(data: AnyTypedArray): GpuStorage {
    const dtype: DType =
      data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : data instanceof Uint32Array ? 'uint32' : 'float16';
    const s = this.alloc(dtype, data.length);
    if (data.byteLength > 0) {
      // writeBuffer needs a multiple of 4 bytes.
      if (data.byteLength % 4 === 0) this.rt.writeBuffer(s.buffer, 0, data);
      else {
        const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
        padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        this.rt.writeBuffer(s.buffer, 0, padded);
      }
    }
    return s;
  }
  async read(storage: Storage, offset: number, count: number): Promise<AnyTypedArray> {
    const s = storage as GpuStorage;
    const bpe = bytesPerElement(s.dtype);
    if (count === 0) return allocTyped(s.dtype, 0);
    const ab = await this.rt.read(s.buffer, offset * bpe, count * bpe);
    switch (s.dtype) {
      case 'float32': return new Float32Array(ab);
      case 'int32': return new Int32Array(ab);
      case 'uint32': return new Uint32Array(ab);
      case 'float16': return new Uint16Array(ab);
    }
  }
  free(storage: Storage): void {
    this.rt.releaseBuffer((storage as GpuStorage).buffer);
  }
  run<K extends KernelName>(kernel: K, inputs: readonly View[], attrs: Kernels[K]['attrs']): Kernels[K]['out'] {
    const fn: KernelTable<WebGPUBackend>[K] = this.kernels[kernel];
    // float16 operands: read in place where the kernel declares it, else cast to f32 here (ops/cast/boundary.ts)
    return runAtF16Boundary(this, kernel, inputs, attrs, WEBGPU_F16_INPUTS, (ins, at) => fn(this, ins, at));
  }
  flush(): void {
    this.rt.flush();
  }
  sync(): Promise<void> {
    return this.rt.sync();
  }
  memory(): MemoryStats {
    const p = this.rt.pool;
    return {
      backend: 'webgpu',
      liveBuffers: p.liveBuffers,
      liveBytes: p.liveBytes,
      peakBytes: p.peakBytes,
      pooledBuffers: p.pooledBuffers,
      pooledBytes: p.pooledBytes,
    };
  }
  describe(): string {
    const i = this.rt.info;
    const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unknown adapter';
    const feats = [...this.rt.features].join(', ') || 'none';
    return `WebGPU: ${name}${i.isSoftware ? ' (software)' : ''}; features: ${feats}`;
  }
}

export function bufferOf(v: View): GPUBuffer {
  return (v.storage as GpuStorage).buffer;
}

/** Packs u32 words and f32 params into one uniform block (16-byte aligned). */
// one shared word for the f32 -> bits conversion: typed arrays cost ~1 µs each to allocate, per dispatch
const F32_BITS = new Float32Array(1);
const U32_BITS = new Uint32Array(F32_BITS.buffer);

export class UniformWriter {
  private words: number[] = [];
  u32(...v: number[]): this {
    for (const x of v) this.words.push(x >>> 0);
    return this;
  }
  f32(...v: number[]): this {
    for (const x of v) {
      F32_BITS[0] = x;
      this.words.push(U32_BITS[0]!);
    }
    return this;
  }
  get length(): number {
    return this.words.length;
  }
  build(): Uint32Array {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const out = new Uint32Array(n);
    out.set(this.words);
    return out;
  }
}

/** Workgroup counts for `n` invocations of `wgSize`, split over x/y past the 65535 per-dimension limit. */
export function grid(n: number, wgSize: number): [number, number] {
  const groups = Math.ceil(n / wgSize);
  if (groups <= 65535) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}
