/**
 * How foliar's command-line tools report an error: one line on stderr, `<prog>: <message>`, exit
 * code 1; the stack only on request (--verbose or FOLIAR_DEBUG=1). Commander's own exits (help,
 * version) keep their code and print nothing more. Commander errors are recognised by their `code`
 * ('commander.*'), so this module needs no dependency on commander.
 */
interface CommanderLike {
  code: string;
  exitCode: number;
}

function commanderError(e: unknown): CommanderLike | null {
  const c = e as Partial<CommanderLike> | null;
  return c && typeof c === 'object' && typeof c.code === 'string' && c.code.startsWith('commander.') && typeof c.exitCode === 'number' ? (c as CommanderLike) : null;
}

/** Stack traces only on request. */
export const debugWanted = (): boolean => process.argv.includes('--verbose') || process.env.FOLIAR_DEBUG === '1';

export function reportCliError(prog: string, e: unknown): void {
  const ce = commanderError(e);
  if (ce && ['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(ce.code)) {
    process.exitCode = ce.exitCode;
    return;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  let msg = err.message.replace(/^error: /, '');
  // commander's parse errors (unknown option, bad value): where to look next
  if (ce && ce.code !== 'commander.invalidArgument') msg += ' (see --help)';
  console.error(`${prog}: ${msg}`);
  if (debugWanted()) {
    for (let c: unknown = err; c instanceof Error; c = c.cause) console.error(c.stack);
  }
  process.exitCode = 1;
}
