import type { Optimizer } from '../optim/optimizer.js';

/** The learning-rate multiplier at a given step (0-based). */
export type LrLambda = (step: number) => number;

export const constantSchedule = (): LrLambda => () => 1;

/** Linear warmup from 0 to 1 over `warmup` steps, then constant. */
export const linearWarmup = (warmup: number): LrLambda => (s) => (warmup > 0 && s < warmup ? (s + 1) / warmup : 1);

/** Linear warmup then cosine decay to `minRatio` at `total` steps (the usual diffusers/timm schedule). */
export const warmupCosine = (warmup: number, total: number, minRatio = 0): LrLambda => (s) => {
  if (warmup > 0 && s < warmup) return (s + 1) / warmup;
  const t = Math.min(1, (s - warmup) / Math.max(1, total - warmup));
  return minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * t));
};

/** Linear warmup then linear decay to 0 at `total`. */
export const warmupLinear = (warmup: number, total: number): LrLambda => (s) =>
  warmup > 0 && s < warmup ? (s + 1) / warmup : Math.max(0, (total - s) / Math.max(1, total - warmup));

/** Multiplies by `gamma` every `stepSize` steps (StepLR). */
export const stepDecay = (stepSize: number, gamma = 0.1): LrLambda => (s) => gamma ** Math.floor(s / stepSize);

/**
 * Drives an optimizer's learning rate from a multiplier function (LambdaLR). Call `step()` after each
 * optimizer step; `state()` / `load()` make resumption exact.
 */
export class LRScheduler {
  private baseLrs: number[];
  private stepCount = 0;
  constructor(
    private readonly optimizer: Optimizer<{ lr: number }>,
    private readonly lambda: LrLambda,
  ) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }
  private apply(): void {
    const f = this.lambda(this.stepCount);
    this.optimizer.paramGroups.forEach((g, i) => (g.lr = this.baseLrs[i]! * f));
  }
  step(): void {
    this.stepCount++;
    this.apply();
  }
  get lastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }
  get steps(): number {
    return this.stepCount;
  }
  state(): { step: number; baseLrs: number[] } {
    return { step: this.stepCount, baseLrs: [...this.baseLrs] };
  }
  load(s: { step: number; baseLrs: number[] }): void {
    this.stepCount = s.step;
    this.baseLrs = [...s.baseLrs];
    this.apply();
  }
}
