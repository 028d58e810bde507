import { tfjs, type Tf } from './peers.js';
import type { Row, RunInfo } from './report.js';

/** A suite of memory-bound cases: GB/s of each case's minimal traffic, against the copy peak and tfjs. */
export interface MemoryBoundSuite<C> {
  suite: string;
  cases: C[];
  nameOf(c: C): string;
  /** The minimal traffic of one call, bytes. */
  bytesOf(c: C): number;
  /** foliar's median ms for one call. */
  foliar(c: C): Promise<number>;
  /** A tfjs backend's median ms for the same call. */
  peer(tf: Tf, peer: string, c: C): Promise<number>;
}

/** Runs every case on foliar, then on tfjs-webgpu and tfjs-wasm where asked (null where a peer is missing). */
export async function memoryBoundRows<C>(info: RunInfo, s: MemoryBoundSuite<C>, peers: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  for (const c of s.cases) {
    const ms = await s.foliar(c);
    const bytes = s.bytesOf(c);
    const rate = bytes / ms / 1e6;
    rows.push({
      suite: s.suite, name: s.nameOf(c), medianMs: ms, bytes, rate, unit: 'GB/s',
      peakPct: info.peaks.copyGBs ? (100 * rate) / info.peaks.copyGBs : undefined, peers: {},
    });
  }
  if (peers) {
    for (const peer of ['webgpu', 'wasm'] as const) {
      const tf = await tfjs(peer);
      for (const [i, c] of s.cases.entries()) rows[i]!.peers![`tfjs-${peer}`] = tf ? await s.peer(tf, `tfjs-${peer}`, c) : null;
    }
  }
  return rows;
}
