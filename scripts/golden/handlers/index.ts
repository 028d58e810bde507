import type { Handler } from '../context.js';
import { opsHandlers } from './ops.js';

/** Handlers by the manifest's `op` field. Cases whose op has no handler are reported as SKIP. */
export const handlers: Record<string, Handler> = {
  ...opsHandlers,
};
