import type { Row, RunInfo } from '../lib/report.js';

export type Suite = (info: RunInfo, opts: { quick: boolean; peers: boolean }) => Promise<Row[]>;

/** Kernel-family suites beyond the peaks and matmul (conv, norms, attention, optimizers, models). */
export const extraSuites: Record<string, Suite> = {};
