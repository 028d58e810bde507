import type { Tensor } from '@foliar/tensor';
import { Module } from '../module.js';

/** A module with a single-tensor forward. */
export interface Layer extends Module {
  forward(x: Tensor): Tensor;
}

/** Runs its children in order; keys are their indices (`0.weight`), like nn.Sequential. */
export class Sequential extends Module {
  readonly layers: Layer[];
  constructor(...layers: Layer[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.module(String(i), l));
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const l of this.layers) y = l.forward(y);
    return y;
  }
  get length(): number {
    return this.layers.length;
  }
  at(i: number): Layer {
    return this.layers[i < 0 ? i + this.layers.length : i]!;
  }
}

/** An indexable list of submodules (keys `0.`, `1.`, …). */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  private readonly items: M[] = [];
  constructor(items: M[] = []) {
    super();
    for (const m of items) this.push(m);
  }
  push(m: M): this {
    this.module(String(this.items.length), m);
    this.items.push(m);
    return this;
  }
  at(i: number): M {
    return this.items[i < 0 ? i + this.items.length : i]!;
  }
  get length(): number {
    return this.items.length;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
  map<T>(fn: (m: M, i: number) => T): T[] {
    return this.items.map(fn);
  }
}

/** Submodules by name (keys `name.`). */
export class ModuleDict<M extends Module = Module> extends Module {
  private readonly items = new Map<string, M>();
  constructor(items: Record<string, M> = {}) {
    super();
    for (const [k, m] of Object.entries(items)) this.set(k, m);
  }
  set(name: string, m: M): this {
    this.module(name, m);
    this.items.set(name, m);
    return this;
  }
  get(name: string): M {
    const m = this.items.get(name);
    if (!m) throw new Error(`ModuleDict has no '${name}' (has: ${[...this.items.keys()].join(', ')})`);
    return m;
  }
  has(name: string): boolean {
    return this.items.has(name);
  }
  keys(): string[] {
    return [...this.items.keys()];
  }
}
