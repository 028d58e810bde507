// Progress bars on a terminal (Node; package.json `imports` "#progress"); browsers get ./progress-browser.ts.
import cliProgress from 'cli-progress';
import { RateMeter } from './rate.js';

export interface ProgressOptions {
  total: number;
  label: string;
  /** Unit of the rate shown (it/s, img/s…). */
  unit?: string;
  /** Force plain line output (default: when stderr is not a TTY). */
  plain?: boolean;
  /**
   * Work already done when the bar starts (a resumed run): shown in the count, left out of the rate and
   * ETA, which only this run's work measures.
   */
  initial?: number;
}

/**
 * A progress bar with rate and ETA (cli-progress) on a terminal, periodic plain lines elsewhere (CI
 * logs), with extra fields such as loss.
 */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private readonly meter: RateMeter;
  private lastLine = 0;
  private value: number;
  private readonly initial: number;
  private fields: Record<string, string> = {};
  constructor(private readonly o: ProgressOptions) {
    this.initial = this.value = o.initial ?? 0;
    this.meter = new RateMeter(this.value, performance.now());
    const plain = o.plain ?? !process.stderr.isTTY;
    if (!plain) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${o.label} |{bar}| {value}/{total} | {rate} ${o.unit ?? 'it/s'} | ETA {eta_formatted} {extra}`,
          stream: process.stderr,
          hideCursor: true,
          barsize: 24,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(o.total, this.initial, { rate: '0.00', extra: '' });
    }
  }
  /** The recent rate (RateMeter: the last 30 s of updates, not since the bar was made). */
  private rate(): number {
    return this.meter.rate();
  }
  update(value: number, fields: Record<string, string | number> = {}): void {
    this.value = value;
    this.meter.record(value, performance.now());
    for (const [k, v] of Object.entries(fields)) this.fields[k] = typeof v === 'number' ? (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(3) : v.toFixed(4)) : v;
    const extra = Object.entries(this.fields).map(([k, v]) => `${k} ${v}`).join(' ');
    if (this.bar) this.bar.update(value, { rate: this.rate().toFixed(2), extra });
    else {
      const now = performance.now();
      if (now - this.lastLine > 5000 || value >= this.o.total) {
        this.lastLine = now;
        const r = this.rate();
        const eta = r > 0 ? (this.o.total - value) / r : 0;
        process.stderr.write(`${this.o.label} ${value}/${this.o.total} ${r.toFixed(2)} ${this.o.unit ?? 'it/s'} ETA ${eta.toFixed(0)}s ${extra}\n`);
      }
    }
  }
  increment(fields: Record<string, string | number> = {}): void {
    this.update(this.value + 1, fields);
  }
  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
