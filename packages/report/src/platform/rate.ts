/**
 * A progress bar's rate over the last `windowMs` of updates, not since the bar was made: a stage that
 * spends minutes compiling or loading before its first step (lavapipe compiles pipelines slowly) would
 * otherwise show 0.01 it/s and an ETA of days long after the steps run at their real pace, and a rate
 * that changes mid-run (another job starts on the cores) shows within a window.
 */
export class RateMeter {
  /** (time ms, value) samples, oldest first; at most one per `minGapMs`, plus the latest. */
  private samples: { t: number; v: number }[];
  private latest: { t: number; v: number };
  constructor(initial: number, now: number, private readonly windowMs = 30_000, private readonly minGapMs = 200) {
    this.latest = { t: now, v: initial };
    this.samples = [this.latest];
  }
  record(value: number, now: number): void {
    this.latest = { t: now, v: value };
    const last = this.samples[this.samples.length - 1]!;
    if (now - last.t >= this.minGapMs) this.samples.push(this.latest);
    // samples older than the window go, but two always stay (the rate needs a span)
    while (this.samples.length > 2 && this.samples[0]!.t < now - this.windowMs) this.samples.shift();
  }
  /** Units per second over the window (0 before any progress). */
  rate(): number {
    const first = this.samples[0]!;
    const dt = (this.latest.t - first.t) / 1000;
    return dt > 0 ? Math.max(0, this.latest.v - first.v) / dt : 0;
  }
}
