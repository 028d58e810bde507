/**
 * A seeded counter-based generator: (seed, counter) fully determine the stream, so its state is two
 * numbers that checkpoints can save and restore for exact resumption.
 */
export class Generator {
  /** Blocks of 4 numbers consumed so far. */
  counter = 0;
  constructor(public seed = 0) {}
  manualSeed(seed: number): this {
    this.seed = seed;
    this.counter = 0;
    return this;
  }
  /** Reserves `n` numbers; returns the counter base to use. */
  take(n: number): number {
    const base = this.counter;
    this.counter += Math.ceil(n / 4);
    return base;
  }
  get seedLo(): number {
    return this.seed >>> 0;
  }
  get seedHi(): number {
    return Math.floor(this.seed / 0x100000000) >>> 0;
  }
  getState(): { seed: number; counter: number } {
    return { seed: this.seed, counter: this.counter };
  }
  setState(s: { seed: number; counter: number }): void {
    this.seed = s.seed;
    this.counter = s.counter;
  }
  /** A generator for a named sub-stream, independent of this one. */
  fork(stream: number): Generator {
    return new Generator((this.seed * 1000003 + stream * 7919 + 1) % 0x20000000000000);
  }
}

export const defaultGenerator = new Generator(0);

/** Seeds the default generator (like torch.manual_seed). */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}
