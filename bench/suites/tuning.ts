import * as ft from '@foliar/tensor';
import type { Row } from '../lib/report.js';

interface TuneResult {
  variant: string;
  ms: Record<string, number>;
}
type TuneApi = { tuneMatmul?: (be: ft.WebGPUBackend, o?: { force?: boolean }) => Promise<TuneResult | null> };

/**
 * Runs foliar's matmul variant micro-benchmark (the one a process runs at first use, result cached
 * in ~/.cache/foliar/tuning.json) afresh, and reports what it measured and chose. The API is looked up
 * dynamically: it may not be exported from the package index yet.
 */
export async function tuneNow(be: ft.WebGPUBackend): Promise<Row | null> {
  const api = ft as unknown as TuneApi;
  if (!api.tuneMatmul || process.env.FOLIAR_NO_TUNE === '1') return null;
  const t0 = performance.now();
  const r = await api.tuneMatmul(be, { force: true });
  const ms = performance.now() - t0;
  if (!r) return null;
  const times = Object.entries(r.ms)
    .map(([v, t]) => `${v} ${Number.isFinite(t) ? t.toFixed(2) : 'n/a'} ms`)
    .join(', ');
  console.error(`matmul variant: ${r.variant} (${times})`);
  return { suite: 'tuning', name: "matmul variant micro-benchmark (256³, best of 3)", medianMs: ms, note: `chose '${r.variant}': ${times}; total incl. compiling` };
}
