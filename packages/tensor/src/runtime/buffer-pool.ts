/**
 * GPU buffers by size class. A released buffer first waits in `pending` until the command buffer
 * that may still use it has been submitted (queue.writeBuffer into it would otherwise overtake the
 * commands recorded before); after the submit it becomes reusable.
 *
 * A class hands out its oldest free buffer (the lowest creation serial), not the last one released:
 * then which buffer a tensor gets depends only on which buffers are free, not on the order they were
 * released in, so a training loop gets the same buffers at the same places every step and the
 * runtime's cached bind groups (webgpu-runtime.ts) are hit.
 */
export class BufferPool {
  /** Free buffers per size class, sorted by creation serial, highest first (pop() takes the oldest). */
  private free = new Map<number, GPUBuffer[]>();
  private serials = new WeakMap<GPUBuffer, number>();
  private nextSerial = 1;
  private pending: { buffer: GPUBuffer; size: number }[] = [];
  liveBuffers = 0;
  liveBytes = 0;
  peakBytes = 0;
  pooledBuffers = 0;
  pooledBytes = 0;
  /** Cap on memory kept idle in the pool; beyond it released buffers are destroyed. */
  maxPooledBytes = 1 << 30;

  constructor(
    private device: GPUDevice,
    private usage: number,
  ) {}

  static sizeClass(bytes: number): number {
    const b = Math.max(bytes, 16);
    if (b <= 4096) return Math.ceil(b / 256) * 256;
    // Geometric classes with 8 steps per power of two: at most 12.5% waste.
    const p = 2 ** Math.floor(Math.log2(b));
    const step = p / 8;
    return Math.ceil(b / step) * step;
  }

  /** A buffer of at least `bytes`; its size class is capped at `cap` when `bytes` fits under it. */
  acquire(bytes: number, label?: string, cap = Infinity): GPUBuffer {
    const cls = BufferPool.sizeClass(bytes);
    const size = cls > cap && bytes <= cap ? Math.floor(cap / 4) * 4 : cls;
    const list = this.free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.pooledBuffers--;
      this.pooledBytes -= size;
    } else {
      buf = this.device.createBuffer({ size, usage: this.usage, label: label ?? 'foliar-tensor' });
      this.serials.set(buf, this.nextSerial++);
    }
    this.liveBuffers++;
    this.liveBytes += size;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    return buf;
  }

  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.liveBuffers--;
    this.liveBytes -= size;
    this.pending.push({ buffer, size });
  }

  /** The command buffer referencing pending buffers was submitted: they are safe to reuse. */
  onSubmit(): void {
    if (this.pending.length === 0) return;
    const touched = new Set<GPUBuffer[]>();
    for (const { buffer, size } of this.pending) {
      if (this.pooledBytes + size > this.maxPooledBytes) {
        buffer.destroy();
        continue;
      }
      let list = this.free.get(size);
      if (!list) this.free.set(size, (list = []));
      list.push(buffer);
      touched.add(list);
      this.pooledBuffers++;
      this.pooledBytes += size;
    }
    this.pending = [];
    const serial = (b: GPUBuffer) => this.serials.get(b)!;
    for (const list of touched) list.sort((a, b) => serial(b) - serial(a));
  }

  /** Destroys every idle buffer (e.g. before a large allocation, or to hand memory back). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooledBuffers = 0;
    this.pooledBytes = 0;
  }
}
