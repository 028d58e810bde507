import { Bench } from 'tinybench';

export interface Measurement {
  name: string;
  /** Median time per iteration, ms. */
  medianMs: number;
  samples: number;
  /** Relative margin of error of the mean, %. */
  rme: number;
}

export interface MeasureOptions {
  /** Minimum iterations (default 8). */
  iterations?: number;
  /** Minimum time in ms (default 1500). */
  time?: number;
  warmup?: boolean;
}

/**
 * Times an async function with tinybench and reports the median (machines here are noisy: medians,
 * never single timings). `fn` must wait for the device to finish its work.
 */
export async function measure(name: string, fn: () => Promise<void>, o: MeasureOptions = {}): Promise<Measurement> {
  const bench = new Bench({ iterations: o.iterations ?? 8, time: o.time ?? 1500, warmup: o.warmup ?? true, retainSamples: false });
  bench.add(name, fn);
  await bench.run();
  const t = bench.tasks[0]!;
  const r = t.result as unknown as { state?: string; error?: Error; latency?: { p50: number; rme: number; samplesCount?: number } };
  if (r.error) throw r.error;
  if (!r.latency) throw new Error(`benchmark '${name}' produced no statistics (state ${r.state})`);
  return { name, medianMs: r.latency.p50, samples: t.runs, rme: r.latency.rme };
}

/**
 * One explicit warm-up call (pipeline compile, buffer-pool fill), then the median of the timed calls
 * (`measure` without its own warm-up).
 */
export async function timeCall(name: string, fn: () => Promise<void>, o: { iterations: number; time: number }): Promise<number> {
  await fn();
  return (await measure(name, fn, { warmup: false, iterations: o.iterations, time: o.time })).medianMs;
}
