/**
 * A worker of the study's job queue: takes jobs from Redis, computes each one's stage in the shared
 * store, and keeps going until stopped (Ctrl-C / SIGTERM: the running jobs finish first).
 *
 *   npm run study-worker -- --redis redis://host:6379 --store /shared/runs/study-quick [--concurrency 1] [--backend webgpu]
 *
 * One worker per GPU. The store must be mounted at the same path on every machine (stage results
 * hold absolute paths), and every worker must use the study's backend (a job says which).
 */
import { parseArgs } from 'node:util';
import * as ft from '@foliar/tensor';
import { FAULT_DEFAULTS, redactRedisUrl, startWorker } from './queue.js';

const { values: args } = parseArgs({
  options: {
    redis: { type: 'string' },
    store: { type: 'string' },
    concurrency: { type: 'string', default: '1' },
    backend: { type: 'string' },
    'lock-ms': { type: 'string' },
    'stalled-ms': { type: 'string' },
    'max-stalled': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help || !args.redis || !args.store) {
  console.log('usage: npm run study-worker -- --redis redis://host:port --store <shared run folder> [--concurrency n] [--backend webgpu|cpu] [--lock-ms 60000] [--stalled-ms 30000] [--max-stalled 3]');
  process.exit(args.help ? 0 : 2);
}
const int = (name: string, v: string | undefined, dflt: number, min: number): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
};
const concurrency = int('concurrency', args.concurrency, 1, 1);
const backend = await ft.init({ backend: (args.backend as 'webgpu' | 'cpu' | undefined) ?? 'auto' });
const w = startWorker({
  redis: args.redis,
  store: args.store,
  concurrency,
  backend: backend.name,
  lockMs: int('lock-ms', args['lock-ms'], FAULT_DEFAULTS.lockMs, 1_000),
  stalledMs: int('stalled-ms', args['stalled-ms'], FAULT_DEFAULTS.stalledMs, 500),
  maxStalled: int('max-stalled', args['max-stalled'], FAULT_DEFAULTS.maxStalled, 0),
});
console.error(`study worker: ${redactRedisUrl(args.redis)}, store ${args.store}, concurrency ${concurrency}, on ${backend.describe()} (pid ${process.pid})`);

let stopping = false;
const stop = () => {
  if (stopping) process.exit(130);
  stopping = true;
  console.error('study worker: stopping after the running jobs (signal again to quit at once)');
  void w.close().then(() => {
    ft.shutdown();
    process.exit(0);
  });
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
