import type { Handler } from '../context.js';
import { opsHandlers } from './ops.js';
import { resnetHandlers } from './resnet.js';
import { diffusionHandlers } from './diffusion.js';
import { dreamboothHandlers } from './dreambooth.js';
import { schedulerHandlers } from './schedulers.js';

/** Handlers by the manifest's `op` field. Cases whose op has no handler are reported as SKIP. */
export const handlers: Record<string, Handler> = {
  ...opsHandlers,
  ...resnetHandlers,
  ...diffusionHandlers,
  ...schedulerHandlers,
  ...dreamboothHandlers,
};
