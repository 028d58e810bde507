/**
 * Progress in a browser (package.json `imports` "#progress", condition `browser`): the same class as
 * ./progress-node.ts, with no terminal: a plain line on the console every 5 s and at the end, and the
 * latest state readable (`state`) for a page to draw its own bar.
 */
import type { ProgressOptions } from './progress-node.js';
import { RateMeter } from './rate.js';

export type { ProgressOptions } from './progress-node.js';

export class Progress {
  private readonly meter: RateMeter;
  private lastLine = 0;
  private value: number;
  private fields: Record<string, string> = {};
  constructor(private readonly o: ProgressOptions) {
    this.value = o.initial ?? 0;
    this.meter = new RateMeter(this.value, performance.now());
  }
  /** The recent rate (RateMeter: the last 30 s of updates, not since the bar was made). */
  private rate(): number {
    return this.meter.rate();
  }
  /** Where the work is: value, total, rate and the extra fields, for a page's own bar. */
  get state(): { value: number; total: number; rate: number; fields: Record<string, string> } {
    return { value: this.value, total: this.o.total, rate: this.rate(), fields: { ...this.fields } };
  }
  update(value: number, fields: Record<string, string | number> = {}): void {
    this.value = value;
    this.meter.record(value, performance.now());
    for (const [k, v] of Object.entries(fields)) this.fields[k] = typeof v === 'number' ? (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(3) : v.toFixed(4)) : v;
    const now = performance.now();
    if (now - this.lastLine > 5000 || value >= this.o.total) {
      this.lastLine = now;
      const r = this.rate();
      const eta = r > 0 ? (this.o.total - value) / r : 0;
      const extra = Object.entries(this.fields).map(([k, v]) => `${k} ${v}`).join(' ');
      console.info(`${this.o.label} ${value}/${this.o.total} ${r.toFixed(2)} ${this.o.unit ?? 'it/s'} ETA ${eta.toFixed(0)}s ${extra}`);
    }
  }
  increment(fields: Record<string, string | number> = {}): void {
    this.update(this.value + 1, fields);
  }
  stop(): void {}
}
