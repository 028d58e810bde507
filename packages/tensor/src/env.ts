/** An environment variable where there is a process (Node, Deno, Bun); undefined in a browser. */
export function env(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
}
