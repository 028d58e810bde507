import { acquireDevice, type AcquiredDevice, type DeviceOptions } from '../device/acquire.js';
import { awaitGpu } from '../device/polling.js';
import { logPipeline } from './pipeline-log.js';
import { DeviceLostError, GpuOutOfMemoryError, GpuValidationError } from '../device/errors.js';
import { BufferPool } from './buffer-pool.js';
import { registerRuntime, unregisterRuntime, type RuntimeProfiler } from './profiler.js';

/** Bind groups kept for reuse (each holds a few handles; a training step binds ~1,000). */
const BIND_GROUP_CACHE = 8192;

/** One compute dispatch: WGSL is generated only on a pipeline-cache miss. */
export interface DispatchSpec {
  /** Op name, used in labels and error messages. */
  name: string;
  /** Pipeline cache key: the same key must always produce the same WGSL. */
  key: string;
  wgsl: () => string;
  /**
   * Storage buffers bound at @group(0) @binding(0..n-1), in order: a whole buffer, or a window of one
   * (`offset` a multiple of minStorageBufferOffsetAlignment) for ops that split a tensor larger than one
   * binding (see `maxBindingBytes`).
   */
  buffers: (GPUBuffer | BufferWindow)[];
  /** Uniform data bound at @binding(n) (after the storage buffers), if any. */
  uniforms?: ArrayBuffer | ArrayBufferView;
  workgroups: [number, number?, number?];
}

/** A byte range of a buffer bound as one storage binding. */
export interface BufferWindow {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/** Thrown when an op would bind more bytes than one storage binding holds and has no split path. */
export class BindingTooLargeError extends GpuOutOfMemoryError {
  override name = 'BindingTooLargeError';
}

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  /** Asked once: getBindGroupLayout makes a new wrapper object on every call. */
  layout: GPUBindGroupLayout;
}

/** Whether a uniform block equals the bytes last written (null: never written). */
function sameBytes(last: Uint8Array | null, v: Uint8Array): boolean {
  if (!last || last.length !== v.length) return false;
  for (let i = 0; i < v.length; i++) if (last[i] !== v[i]) return false;
  return true;
}

/**
 * Owns the device: a single open command encoder shared by consecutive ops (submitted every
 * `maxDispatchesPerSubmit` dispatches and before every readback), the buffer pool, uniform buffers
 * and the pipeline cache.
 */
export class WebGPURuntime {
  readonly device: GPUDevice;
  readonly features: Set<string>;
  readonly limits: GPUSupportedLimits;
  private readonly deviceBindingBytes: number;
  private readonly maxBufferBytes: number;
  private readonly offsetAlignment: number;
  readonly info: AcquiredDevice['info'];
  /** requestAdapter() calls it took to get the adapter (device/acquire.ts retries null answers). */
  readonly adapterAttempts: number;
  readonly pool: BufferPool;
  /** Cached bind groups by (pipeline, buffers); `last`: the uniform bytes last written to `ubuf`. */
  private bindGroups = new Map<string, { group: GPUBindGroup; ubuf: GPUBuffer | null; submit: number; last: Uint8Array | null }[]>();
  /** Serial of the command buffer being recorded (bumped at each submit). */
  private submitSerial = 0;
  /** Uniform buffers of evicted bind groups, destroyed once the commands that may use them are submitted. */
  private retiredUniforms: GPUBuffer[] = [];
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private pipelines = new Map<string, CachedPipeline>();
  private lastOp = '';
  private error: Error | null = null;
  private lost: string | null = null;
  maxDispatchesPerSubmit = 32;
  /** Counters, for tests and benchmarks. */
  stats = { dispatches: 0, submits: 0, pipelinesCompiled: 0, readbacks: 0, bindGroupsReused: 0 };
  /** A lower binding limit than the adapter's, set by tests and `--small` runs to exercise the split paths. */
  private bindingOverride: number | null = null;
  /** Set while profiling (runtime/profiler.ts): dispatches then go through it. */
  profiler: RuntimeProfiler | null = null;
  /** Device-side index checks (boundsCheck): the flag buffer [serial, value, count] and the pending messages. */
  private bounds: GPUBuffer | null = null;
  private boundsSerial = 0;
  private boundsMessages = new Map<number, (value: number) => string>();
  private boundsReported = 0;

  static async create(opts: DeviceOptions = {}): Promise<WebGPURuntime> {
    return new WebGPURuntime(await acquireDevice(opts));
  }

  constructor(acq: AcquiredDevice) {
    this.device = acq.device;
    this.features = acq.features;
    this.limits = acq.limits;
    // read once: every property of the native limits object is a call into dawn.node, and these are read per dispatch
    this.deviceBindingBytes = Number(acq.limits.maxStorageBufferBindingSize);
    this.maxBufferBytes = Number(acq.limits.maxBufferSize);
    this.offsetAlignment = Number(acq.limits.minStorageBufferOffsetAlignment);
    this.info = acq.info;
    this.adapterAttempts = acq.adapterAttempts ?? 1;
    const U = GPUBufferUsage;
    this.pool = new BufferPool(this.device, U.STORAGE | U.COPY_SRC | U.COPY_DST);
    this.device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      const msg = `${e.message} (while running op '${this.lastOp}')`;
      if (!this.error) {
        this.error = e.constructor?.name === 'GPUOutOfMemoryError' ? new GpuOutOfMemoryError(msg) : new GpuValidationError(msg);
      }
    });
    void this.device.lost.then((info) => {
      if (info.reason === 'destroyed') this.lost = 'destroyed';
      else this.lost = `${info.reason}: ${info.message}`;
    });
    registerRuntime(this);
  }

  get subgroups(): boolean {
    return this.features.has('subgroups');
  }
  /** The adapter's subgroup size when fixed (min == max), else 0. */
  get subgroupSize(): number {
    return this.info.subgroupMinSize === this.info.subgroupMaxSize ? this.info.subgroupMinSize : 0;
  }

  /** Throws a pending asynchronous device error, naming the op that caused it. */
  checkError(): void {
    if (this.lost) throw new DeviceLostError(`the WebGPU device was lost (${this.lost}) after op '${this.lastOp}'`);
    if (this.error) {
      const e = this.error;
      this.error = null;
      throw e;
    }
  }

  /**
   * For a kernel that checks indices on the device: the runtime's flag buffer (bind it as
   * `array<atomic<u32>>`; WGSL in kernels/indexing.ts) and this dispatch's serial. The kernel records
   * the first bad index as [serial, value, count]; the flag travels with the next readback (or sync), which
   * then throws `message(value)` as a RangeError, so no result computed from it reaches the user.
   * No extra readback: pending checks add a 12-byte copy to the readbacks that happen anyway.
   */
  boundsCheck(message: (value: number) => string): { buffer: GPUBuffer; serial: number } {
    this.bounds ??= this.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label: 'foliar-bounds-flag',
    });
    // 0 means "no bad index"; wrapping after 2^32 - 2 checked dispatches is harmless in practice
    this.boundsSerial = this.boundsSerial >= 0xfffffffe ? 1 : this.boundsSerial + 1;
    this.boundsMessages.set(this.boundsSerial, message);
    return { buffer: this.bounds, serial: this.boundsSerial };
  }

  /** Reads the flag copied behind a readback: forgets the checks that passed, throws the first failure. */
  private checkBounds(flag: Uint32Array, upTo: number): void {
    const serial = flag[0]!;
    for (const k of this.boundsMessages.keys()) if (serial === 0 ? k <= upTo : k < serial) this.boundsMessages.delete(k);
    if (serial === 0) return;
    const message = this.boundsMessages.get(serial);
    if (serial !== this.boundsReported) {
      // re-arm for later bad indices (reads already in flight still see this one and throw it too)
      this.boundsReported = serial;
      this.writeBuffer(this.bounds!, 0, new Uint32Array(3));
    }
    const value = flag[1]! | 0, more = flag[2]! - 1;
    const also = more > 0 ? `; ${more} more out-of-range ${more === 1 ? 'index' : 'indices'} in the same work` : '';
    const what = message ? message(value) : `index ${value} out of range in a WebGPU kernel`;
    throw new RangeError(`${what} (found on the WebGPU device, reported at this readback${also})`);
  }

  /**
   * The most bytes one storage binding may hold: the adapter's maxStorageBufferBindingSize, or a lower
   * limit set with `setMaxBindingBytes`. A tensor may be larger (up to maxBufferSize); only ops with a
   * split path (row shards, query chunks, windowed elementwise) accept one, the others refuse it by name.
   */
  get maxBindingBytes(): number {
    const dev = this.deviceBindingBytes;
    return this.bindingOverride === null ? dev : Math.min(dev, this.bindingOverride);
  }
  /** Alignment of a window's offset (minStorageBufferOffsetAlignment). */
  get bindingAlignment(): number {
    return this.offsetAlignment;
  }
  /** Lowers the binding limit (bytes, a multiple of 256) to test split paths; null restores the adapter's. */
  setMaxBindingBytes(bytes: number | null): void {
    if (bytes !== null && (!Number.isInteger(bytes) || bytes < 4096 || bytes % 256 !== 0)) {
      throw new RangeError(`setMaxBindingBytes: expected a multiple of 256 of at least 4096 bytes, got ${bytes}`);
    }
    this.bindingOverride = bytes;
  }

  createBuffer(bytes: number, label?: string): GPUBuffer {
    this.checkError();
    const max = this.maxBufferBytes;
    if (bytes > max) {
      throw new GpuOutOfMemoryError(`a tensor of ${bytes} bytes exceeds this adapter's maxBufferSize (${max} bytes)${label ? ` (${label})` : ''}`);
    }
    // a tensor that fits one binding gets a buffer that fits it too (the pool's size classes round up)
    return this.pool.acquire(bytes, label, this.maxBindingBytes);
  }

  releaseBuffer(b: GPUBuffer): void {
    this.pool.release(b);
  }

  writeBuffer(buffer: GPUBuffer, offsetBytes: number, data: ArrayBufferView): void {
    this.device.queue.writeBuffer(buffer, offsetBytes, data.buffer, data.byteOffset, data.byteLength);
  }

  private pipelineFor(spec: DispatchSpec): CachedPipeline {
    let p = this.pipelines.get(spec.key);
    if (p) return p;
    const code = spec.wgsl();
    logPipeline(spec.key, code);
    const module = this.device.createShaderModule({ code, label: spec.name });
    const pipeline = this.device.createComputePipeline({
      layout: 'auto',
      compute: { module, entryPoint: 'main' },
      label: spec.name,
    });
    this.stats.pipelinesCompiled++;
    p = { pipeline, layout: pipeline.getBindGroupLayout(0) };
    this.pipelines.set(spec.key, p);
    return p;
  }

  dispatch(spec: DispatchSpec): void {
    // the only cost of the profiler while it is off
    if (this.profiler) return this.profiler.dispatch(spec);
    this.encode(spec);
    this.submitIfFull();
  }

  /** Records one dispatch in the open compute pass (opening one if needed); no submit. */
  encode(spec: DispatchSpec): void {
    this.checkError();
    this.lastOp = spec.name;
    const { pipeline, layout } = this.pipelineFor(spec);
    const bindGroup = this.bindGroupFor(spec, layout);
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = spec.workgroups;
    if (x > 0 && y > 0 && z > 0) this.pass.dispatchWorkgroups(x, y, z);
    this.stats.dispatches++;
  }

  /**
   * The bind group of a dispatch, with its uniforms written. Creating a bind group costs ~50 µs of host
   * time in Dawn (measured on lavapipe), as much as a small kernel, while a training loop binds the same
   * pooled buffers in the same order every step. So bind groups are kept per (pipeline, buffers), each
   * with a uniform buffer of its own that is rewritten when it is used again, but only once the command
   * buffer that last used it has been submitted (queue.writeBuffer would otherwise overtake that use):
   * a combination used twice before a submit gets a second entry. A destroyed storage buffer is never
   * handed out again, so its entries are never hit and age out with the oldest ones.
   */
  private bindGroupFor(spec: DispatchSpec, layout: GPUBindGroupLayout): GPUBindGroup {
    let key = spec.key;
    const limit = this.maxBindingBytes;
    for (const b of spec.buffers) {
      if ('buffer' in b) {
        if (b.size > limit) throw new BindingTooLargeError(`op '${spec.name}' binds a window of ${b.size} bytes, over the binding limit (${limit} bytes)`);
        key += ':' + this.bufferId(b.buffer) + '@' + b.offset + '+' + b.size;
      } else {
        if (b.size > limit) {
          throw new BindingTooLargeError(
            `op '${spec.name}' would bind a tensor's buffer of ${b.size} bytes, over this adapter's maxStorageBufferBindingSize ` +
              `(${limit} bytes${this.bindingOverride !== null ? ', lowered by setMaxBindingBytes' : ''}); '${spec.name}' has no split path for tensors this large`,
          );
        }
        key += ':' + this.bufferId(b);
      }
    }
    const u = spec.uniforms;
    const view = u ? (ArrayBuffer.isView(u) ? new Uint8Array(u.buffer, u.byteOffset, u.byteLength) : new Uint8Array(u)) : null;
    const bytes = view ? Math.max(16, Math.ceil(view.byteLength / 16) * 16) : 0;
    let entries = this.bindGroups.get(key);
    let e = entries?.find((x) => x.submit !== this.submitSerial && (x.ubuf?.size ?? 0) >= bytes);
    if (e) this.stats.bindGroupsReused++;
    else {
      const ubuf = view ? this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'foliar-uniforms' }) : null;
      const list: GPUBindGroupEntry[] = spec.buffers.map((b, i) => ({ binding: i, resource: 'buffer' in b ? b : { buffer: b } }));
      if (ubuf) list.push({ binding: spec.buffers.length, resource: { buffer: ubuf } });
      e = { group: this.device.createBindGroup({ layout, entries: list, label: spec.name }), ubuf, submit: -1, last: null };
      if (!entries) {
        if (this.bindGroups.size >= BIND_GROUP_CACHE) this.evictBindGroups();
        this.bindGroups.set(key, (entries = []));
      }
      entries.push(e);
    }
    e.submit = this.submitSerial;
    // a training loop binds the same uniforms at the same place every step: write only what changed
    if (view && !sameBytes(e.last, view)) {
      this.device.queue.writeBuffer(e.ubuf!, 0, view.buffer, view.byteOffset, view.byteLength);
      e.last = view.slice();
    }
    return e.group;
  }

  /** Drops the oldest quarter of the cached bind groups; their uniform buffers go after the next submit. */
  private evictBindGroups(): void {
    let n = BIND_GROUP_CACHE >> 2;
    for (const [k, list] of this.bindGroups) {
      for (const x of list) if (x.ubuf) this.retiredUniforms.push(x.ubuf);
      this.bindGroups.delete(k);
      if (--n === 0) break;
    }
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  /** Counts a recorded dispatch and submits every `maxDispatchesPerSubmit`. */
  submitIfFull(): void {
    if (++this.dispatches >= this.maxDispatchesPerSubmit) this.flush();
  }

  /** Ends the open compute pass and returns the open command encoder (the profiler resolves its queries in it). */
  openEncoder(): GPUCommandEncoder {
    this.endPass();
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  /** Opens a compute pass with `desc` (the profiler's timestamp writes) for the next encode(). */
  beginPass(desc: GPUComputePassDescriptor): void {
    this.pass = this.openEncoder().beginComputePass(desc);
  }

  endPass(): void {
    if (this.pass) this.pass.end();
    this.pass = null;
  }

  /** Records a buffer-to-buffer copy in the open encoder (ends the open compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.checkError();
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  flush(): void {
    if (this.encoder) {
      if (this.pass) this.pass.end();
      this.device.queue.submit([this.encoder.finish()]);
      this.stats.submits++;
    }
    this.encoder = null;
    this.pass = null;
    this.dispatches = 0;
    this.submitSerial++;
    for (const b of this.retiredUniforms) b.destroy();
    this.retiredUniforms = [];
    this.pool.onSubmit();
  }

  /** Copies `bytes` from `src` at `offset` to the host. Never blocks the event loop. */
  async read(src: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    const aligned = Math.ceil(bytes / 4) * 4;
    // pending index checks: their flag is copied behind the data (0 = none pending)
    const checksUpTo = this.boundsMessages.size > 0 ? this.boundsSerial : 0;
    const size = aligned + (checksUpTo ? 12 : 0);
    const staging = this.device.createBuffer({
      size: Math.max(size, 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: 'foliar-readback',
    });
    try {
      if (aligned > 0) this.copy(src, offset, staging, 0, aligned);
      if (checksUpTo) this.copy(this.bounds!, 0, staging, aligned, 12);
      this.flush();
      this.stats.readbacks++;
      await awaitGpu(staging.mapAsync(GPUMapMode.READ));
      this.checkError();
      const mapped = staging.getMappedRange(0, size);
      if (checksUpTo) this.checkBounds(new Uint32Array(mapped, aligned, 3), checksUpTo);
      return mapped.slice(0, bytes);
    } catch (e) {
      this.checkError();
      throw e;
    } finally {
      staging.destroy();
    }
  }

  async sync(): Promise<void> {
    this.flush();
    await awaitGpu(this.device.queue.onSubmittedWorkDone());
    this.checkError();
    if (this.boundsMessages.size > 0) await this.read(this.bounds!, 0, 0);
  }

  destroy(): void {
    this.flush();
    this.bounds?.destroy();
    this.bounds = null;
    for (const list of this.bindGroups.values()) for (const x of list) x.ubuf?.destroy();
    this.bindGroups.clear();
    this.boundsMessages.clear();
    unregisterRuntime(this);
    this.pool.trim();
    this.device.destroy();
  }
}
