import { AlphaScheduler } from './base.js';
import { spacedTimesteps } from './common.js';

/** σ-parameterised schedulers (Euler, DPM-Solver): σ_t = √((1−ᾱ)/ᾱ), interpolated at the inference timesteps. */
export abstract class SigmaScheduler extends AlphaScheduler {
  sigmas: number[] = [];
  protected stepIndex = 0;

  protected trainSigmas(): number[] {
    return Array.from(this.alphasCumprod, (a) => Math.sqrt((1 - a) / a));
  }

  protected interp(t: number, table: number[]): number {
    const i = Math.floor(t), frac = t - i;
    if (i >= table.length - 1) return table[table.length - 1]!;
    return table[i]! * (1 - frac) + table[i + 1]! * frac;
  }

  protected computeSigmas(n: number, spacing = this.config.timestep_spacing): number[] {
    const ts = spacedTimesteps({ ...this.config, timestep_spacing: spacing }, n);
    this.timesteps = ts;
    const table = this.trainSigmas();
    return ts.map((t) => this.interp(t, table));
  }

  protected indexOf(t: number): number {
    // diffusers starts from the first match (second for repeated timesteps: not produced here)
    const k = this.timesteps.indexOf(t);
    return k < 0 ? this.stepIndex : k;
  }
}
