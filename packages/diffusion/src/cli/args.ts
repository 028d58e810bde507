// What every foliar-diffuse command shares: number parsers that refuse values a command cannot use
// (before any model loads), the backend choice, and errors reported as one line.
import { InvalidArgumentError } from 'commander';
import { reportCliError } from '@foliar/nn';

export const int = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`'${v}' is not an integer`);
  return n;
};
/** Counts and sizes: 0 or less would loop forever, divide by zero or silently mean "the default". */
export const posInt = (v: string): number => {
  const n = int(v);
  if (n < 1) throw new InvalidArgumentError(`'${v}' is not a positive integer`);
  return n;
};
/** Intervals where 0 means "off". */
export const nonNegInt = (v: string): number => {
  const n = int(v);
  if (n < 0) throw new InvalidArgumentError(`'${v}' is negative`);
  return n;
};
export const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`'${v}' is not a number`);
  return n;
};

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';

/** --backend, else FOLIAR_BACKEND, else auto (passing 'auto' explicitly would hide the variable from ft.init). */
export function backendChoice(flag: string | undefined): BackendChoice {
  const env = process.env.FOLIAR_BACKEND;
  const want = flag ?? (env || undefined) ?? 'auto';
  if (want !== 'auto' && want !== 'webgpu' && want !== 'cpu') {
    throw new Error(`${flag !== undefined ? '--backend' : 'FOLIAR_BACKEND'} must be webgpu, cpu or auto, got '${want}'`);
  }
  return want;
}


/** One line on stderr and exit code 1 (see @foliar/nn's reportCliError). */
export function reportError(prog: string, e: unknown): void {
  reportCliError(prog, e);
}

/** Errors that escape the command's promise (a stray rejection) are reported the same way. */
export function catchStrayErrors(prog: string): void {
  const fail = (e: unknown) => {
    reportError(prog, e);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}
