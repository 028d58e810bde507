export * from './common.js';
export { AlphaScheduler } from './base.js';
export { DDIMScheduler } from './ddim.js';
export { DDPMScheduler } from './ddpm.js';
export { PNDMScheduler } from './pndm.js';
export { EulerDiscreteScheduler } from './euler.js';
export { DPMSolverMultistepScheduler } from './dpm-solver.js';
import type { SchedulerConfig, Scheduler } from './common.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { PNDMScheduler } from './pndm.js';
import { EulerDiscreteScheduler } from './euler.js';
import { DPMSolverMultistepScheduler } from './dpm-solver.js';

const BY_CLASS: Record<string, new (c: Partial<SchedulerConfig>) => Scheduler> = {
  DDIMScheduler,
  DDPMScheduler,
  PNDMScheduler,
  EulerDiscreteScheduler,
  DPMSolverMultistepScheduler,
};

/** Builds a scheduler from a scheduler_config.json object (its `_class_name`, or an explicit class name). */
export function schedulerFromConfig(config: Partial<SchedulerConfig> & { _class_name?: string }, className = config._class_name): Scheduler {
  const ctor = className ? BY_CLASS[className] : undefined;
  if (!ctor) throw new Error(`scheduler '${String(className)}' is not supported (supported: ${Object.keys(BY_CLASS).join(', ')})`);
  const { _class_name, ...rest } = config;
  void _class_name;
  return new ctor(rest);
}

export const SCHEDULERS = Object.keys(BY_CLASS);
