import { writeFileAtomic } from '@foliar/tensor';
import { cpus } from 'node:os';
import { join } from 'node:path';

export interface Row {
  suite: string;
  name: string;
  medianMs: number;
  /** Work per iteration for rate columns. */
  flops?: number;
  bytes?: number;
  /** GFLOP/s or GB/s. */
  rate?: number;
  unit?: 'GFLOP/s' | 'GB/s' | 'img/s' | 'steps/s';
  /** Share of the adapter's measured peak, %. */
  peakPct?: number;
  /** Peer timings in the same run: name -> median ms. */
  peers?: Record<string, number | null>;
  note?: string;
}

export interface RunInfo {
  adapter: string;
  dawn: string;
  cpu: string;
  node: string;
  date: string;
  peaks: { fmaGflops?: number; copyGBs?: number };
}

export function cpuName(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'} x${c.length}`;
}

const fmt = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(d));

/** Ratio foliar/peer as speed (peer time / foliar time): > 1 means foliar is faster. */
export function speedup(row: Row, peer: string): number | undefined {
  const p = row.peers?.[peer];
  return p ? p / row.medianMs : undefined;
}

export function markdown(info: RunInfo, rows: Row[]): string {
  const peers = [...new Set(rows.flatMap((r) => Object.keys(r.peers ?? {})))];
  const head = ['suite', 'case', 'median ms', 'rate', '% of peak', ...peers.map((p) => `× ${p}`), 'note'];
  const lines = [
    `# foliar benchmarks`,
    '',
    `- adapter: ${info.adapter}`,
    `- Dawn (webgpu npm): ${info.dawn}; Node ${info.node}; CPU: ${info.cpu}`,
    `- measured peaks: WGSL FMA ${fmt(info.peaks.fmaGflops)} GFLOP/s, copy ${fmt(info.peaks.copyGBs)} GB/s`,
    `- ${info.date}; medians of tinybench runs; "× peer" = peer median / foliar median (> 1: foliar faster), same process, same adapter`,
    '',
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) =>
      `| ${[r.suite, r.name, fmt(r.medianMs, 3), r.rate !== undefined ? `${fmt(r.rate)} ${r.unit ?? ''}` : '–', r.peakPct !== undefined ? `${fmt(r.peakPct, 1)}%` : '–', ...peers.map((p) => (r.peers?.[p] === null ? 'n/a' : fmt(speedup(r, p)))), r.note ?? ''].join(' | ')} |`,
    ),
  ];
  return lines.join('\n') + '\n';
}

/**
 * Writes `<date>-<adapter>.json` and the markdown table (atomically). `latestName` is latest.md for a
 * full run; a filtered run names its own file so that it never replaces the full table.
 */
export async function writeResults(dir: string, info: RunInfo, rows: Row[], latestName = 'latest.md'): Promise<string> {
  const stamp = info.date.replace(/[:.]/g, '-');
  const slug = info.adapter.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40);
  const json = join(dir, `${stamp}-${slug}.json`);
  await writeFileAtomic(json, JSON.stringify({ info, rows }, null, 2) + '\n');
  await writeFileAtomic(join(dir, latestName), markdown(info, rows));
  return json;
}
