import type { Row, RunInfo } from '../lib/report.js';
import { convSuite } from './conv.js';
import { normSuite } from './norm.js';
import { elementwiseSuite } from './elementwise.js';
import { attentionSuite } from './attention.js';
import { optimSuite } from './optim.js';
import { modelsSuite } from './models.js';
import { resnetSuite } from './resnet.js';
import { dreamboothSuite } from './dreambooth.js';
import { profileSuite } from './profile.js';
import { unetSuite } from './unet.js';
import { sd15Suite } from './sd15.js';
import { loadsSuite } from './loads.js';

export type Suite = (info: RunInfo, opts: { quick: boolean; peers: boolean }) => Promise<Row[]>;

/** Kernel-family suites beyond the peaks and matmul (conv, norms, attention, optimizers, models). */
export const extraSuites: Record<string, Suite> = {
  conv: convSuite,
  norm: normSuite,
  elementwise: elementwiseSuite,
  attention: attentionSuite,
  optim: optimSuite,
  models: modelsSuite,
  resnet: resnetSuite,
  dreambooth: dreamboothSuite,
  profile: profileSuite,
  unet: unetSuite,
  sd15: sd15Suite,
  loads: loadsSuite,
};
