import type { Backend, Storage, View } from '../../backend.js';
import { Tensor } from '../../tensor.js';
import { contiguousStrides } from '../../shape.js';
import { keep } from '../../scope.js';

/**
 * An optimizer's parameters and per-parameter state in a few flat storages ("arenas"), so that its
 * multi-tensor kernels (adam_step, sgd_step) bind one buffer for every parameter, exp_avg and
 * exp_avg_sq instead of three per parameter: a backend that allows 16 storage buffers per dispatch
 * then updates ~15 parameters per dispatch (one binding each for their gradients) instead of 4.
 *
 * Layout of one arena: `1 + slots.length` regions of `region` elements; a parameter at offset o of the
 * first region has its state slot s at o + (s + 1) · region. Offsets are multiples of 64 elements
 * (256 bytes: vec4 and mat4 loads of the kernels that read parameters stay aligned).
 *
 * Parameters are moved, not copied aside: each packed parameter Tensor keeps its identity (modules,
 * optimizers and user code still hold the same object) and becomes a view of the arena
 * (Tensor._relocate), after its data has been copied there. That is safe only for a parameter that
 * is the one handle on its storage: a view of it, a tied alias or an autograd node holding its
 * storage would keep seeing the old data. So a parameter is packed only when it is a live,
 * contiguous float32 leaf whose storage has no other reference and fits an arena; any other keeps
 * its own storage and gets its state from the caller (the kernels take both kinds in one call).
 * An arena is freed when the optimizer and every parameter in it have released it.
 *
 * What this changes for users: parameters of one optimizer share GPU buffers. Kernels that read
 * several of them bind one buffer several times read-only (allowed); an in-place op that writes one
 * parameter while reading another of the same arena in one dispatch (p1.copy_(p2)) is not allowed by
 * WebGPU's usage rules, so such code must copy through a temporary.
 */
export class ParamArena {
  /** The guaranteed WebGPU minimum of maxStorageBufferBindingSize (128 MiB) in f32 elements. */
  static maxElements = (128 * 1024 * 1024) / 4;
  static readonly align = 64;

  private readonly places = new Map<Tensor, { storage: Storage; offset: number; region: number }>();
  private readonly storages: Storage[] = [];

  constructor(
    params: readonly Tensor[],
    readonly slots: readonly string[],
  ) {
    const regions = 1 + slots.length;
    // an arena is bound whole: it must fit the backend's binding limit too (lowered in tests)
    const capOf = (be: Backend): number =>
      Math.floor(Math.min(ParamArena.maxElements, be.maxBindingBytes / 4) / regions / ParamArena.align) * ParamArena.align;
    const byBackend = new Map<Backend, Tensor[]>();
    for (const p of params) {
      if (!ParamArena.packable(p, capOf(p.backend))) continue;
      const list = byBackend.get(p.backend);
      if (list) list.push(p);
      else byBackend.set(p.backend, [p]);
    }
    const up = (n: number): number => Math.ceil(n / ParamArena.align) * ParamArena.align;
    for (const [be, list] of byBackend) {
      const cap = capOf(be);
      let i = 0;
      while (i < list.length) {
        // as many parameters (in order) as fit one arena
        let region = 0;
        const chunk: Tensor[] = [];
        while (i < list.length && region + up(list[i]!.size) <= cap) {
          region += up(list[i]!.size);
          chunk.push(list[i++]!);
        }
        this.build(be, chunk, region, regions);
      }
    }
  }

  private static packable(p: Tensor, cap: number): boolean {
    if (p.isDisposed || p.dtype !== 'float32' || !p.isContiguous || !p.isLeaf || p.size === 0) return false;
    if (Math.ceil(p.size / ParamArena.align) * ParamArena.align > cap) return false;
    return p.storage.refs === 1;
  }

  private build(be: Backend, chunk: Tensor[], region: number, regions: number): void {
    const total = region * regions;
    const storage = be.alloc('float32', total);
    this.storages.push(storage);
    // zero everything (the state slots start at zero; padding is never read but stays finite)
    be.run('elementwise', [], { op: 'fill', params: [0], shape: [total], out: { storage, shape: [total], strides: [1], offset: 0, dtype: 'float32' } });
    let at = 0;
    for (const p of chunk) {
      const out: View = { storage, shape: [...p.shape], strides: contiguousStrides(p.shape), offset: at, dtype: 'float32' };
      be.run('elementwise', [p], { op: 'copy', params: [], shape: [...p.shape], out });
      p._relocate(storage, at);
      this.places.set(p, { storage, offset: at, region });
      at += Math.ceil(p.size / ParamArena.align) * ParamArena.align;
    }
  }

  /** Whether p lives in this arena. */
  has(p: Tensor): boolean {
    return this.places.has(p);
  }

  /** Number of parameters packed. */
  get size(): number {
    return this.places.size;
  }

  /** A new handle (not tracked by tidy) on state slot `name` of p, shaped like p; null when p is not packed or the slot unknown. */
  state(p: Tensor, name: string): Tensor | null {
    const at = this.places.get(p);
    const s = this.slots.indexOf(name);
    if (!at || s < 0) return null;
    return keep(new Tensor(at.storage.retain(), p.shape, contiguousStrides(p.shape), at.offset + (s + 1) * at.region, 'float32'));
  }

  /** Releases the arena's own references (parameters and state handles keep theirs). */
  dispose(): void {
    for (const s of this.storages) s.release();
    this.storages.length = 0;
    this.places.clear();
  }
}

/** Packs `params` (those that can be: see ParamArena) with `slots` state slots each. */
export function packParameters(params: readonly Tensor[], slots: readonly string[]): ParamArena {
  return new ParamArena(params, slots);
}
