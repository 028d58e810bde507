/**
 * uvu's `test` and `suite`, plus runtime skips that are counted as skips, not passes.
 *
 * uvu only knows skips declared up front (`test.skip`). A test that finds at run time that it cannot
 * run here (no WebGPU adapter, no ../shared, no browser, no python3) calls `skip(reason, kind)`: the
 * test stops there, prints `SKIP "<test>": <reason>`, and is counted as skipped. `skipPart(reason,
 * kind)` records the same without stopping (the rest of the test still runs and can still fail; a
 * test that passes with a skipped part is counted as skipped, not passed). uvu itself still prints
 * such a test as passed; at exit this module prints `  Runtime skips: N`, which scripts/test.mjs
 * moves from passed to skipped. Test files that call either must take `test`/`suite` from here.
 *
 * Each kind of skip becomes a failure where its requirement is set:
 *   webgpu   FOLIAR_REQUIRE_WEBGPU=1  (CI: lavapipe is installed, nothing may fall back to the CPU)
 *   shared   FOLIAR_REQUIRE_SHARED    (CI: ../shared is laid beside the clone)
 *   browser  FOLIAR_REQUIRE_BROWSER=1 or CI (setup.sh installs Chromium)
 *   adapter  never required (a feature this WebGPU adapter lacks, such as subgroups)
 *   tool     never required (an optional tool such as python3 with safetensors)
 */
import { test as uvuTest, suite as uvuSuite, type Test, type Callback } from 'uvu';

type Context = Record<string, any>; // uvu's default context type (not exported by uvu)

export type SkipKind = 'webgpu' | 'adapter' | 'shared' | 'browser' | 'tool';

/** Thrown by `skip()`; caught by the test wrappers below (uvu alone would report it as a failure). */
export class SkipTest extends Error {
  override name = 'SkipTest';
  constructor(readonly reason: string) {
    super(`SKIP: ${reason} (call skip() only inside a test registered with test/suite from test/harness.ts)`);
  }
}

/** The environment variable whose presence turns a skip of this kind into a failure, if set. */
export function requiredBy(kind: SkipKind): string | null {
  const env = process.env;
  if (kind === 'webgpu' && env['FOLIAR_REQUIRE_WEBGPU'] && env['FOLIAR_REQUIRE_WEBGPU'] !== '0') return 'FOLIAR_REQUIRE_WEBGPU';
  if (kind === 'shared' && env['FOLIAR_REQUIRE_SHARED']) return 'FOLIAR_REQUIRE_SHARED';
  if (kind === 'browser' && env['FOLIAR_REQUIRE_BROWSER'] === '1') return 'FOLIAR_REQUIRE_BROWSER=1';
  if (kind === 'browser' && env['CI']) return 'CI';
  return null;
}

function refuse(reason: string, kind: SkipKind): void {
  const env = requiredBy(kind);
  if (env) throw new Error(`${reason}, and ${env} is set: this test must run here, not skip`);
}

interface Running {
  name: string;
  skipped: string | null;
}

let running: Running | null = null;
let count = 0;

/** Stops the current test and counts it as skipped (a failure where the kind is required). */
export function skip(reason: string, kind: SkipKind): never {
  refuse(reason, kind);
  throw new SkipTest(reason);
}

/**
 * Records that part of the current test could not run here; the test goes on and, if it passes,
 * counts as skipped (a failure where the kind is required).
 */
export function skipPart(reason: string, kind: SkipKind): void {
  refuse(reason, kind);
  if (!running) throw new SkipTest(`${reason} (outside a test)`);
  running.skipped ??= reason;
}

/** Runtime skips so far in this process. */
export function runtimeSkips(): number {
  return count;
}

function guard<T>(name: string, fn: Callback<T>): Callback<T> {
  return async (ctx) => {
    const me: Running = { name, skipped: null };
    running = me;
    try {
      await fn(ctx);
    } catch (e) {
      if (!(e instanceof SkipTest)) throw e;
      me.skipped ??= e.reason;
    } finally {
      if (running === me) running = null;
    }
    if (me.skipped !== null) {
      count++;
      console.log(`  SKIP "${name}": ${me.skipped}`);
    }
  };
}

/**
 * uvu takes a suite's tests when `.run()` is called and silently drops any registered later: such a
 * test never runs and can never fail. Registering one throws instead, naming it.
 */
function wrap<T>(base: Test<T>): Test<T> {
  let ran = false;
  const open = (name: string) => {
    if (ran) throw new Error(`test "${name}" is registered after its suite's .run(): uvu would never run it (move .run() to the end of the file)`);
  };
  const t = ((name: string, fn: Callback<T>) => {
    open(name);
    return base(name, guard(name, fn));
  }) as Test<T>;
  t.only = (name, fn) => {
    open(name);
    return base.only(name, guard(name, fn));
  };
  t.skip = (name, fn) => {
    open(name ?? '(skipped)');
    return base.skip(name, fn);
  };
  t.before = base.before;
  t.after = base.after;
  t.run = () => {
    ran = true;
    base.run();
  };
  return t;
}

export const test: Test<Context> = wrap(uvuTest);

export function suite<T = Context>(title?: string, context?: T): Test<T> {
  return wrap(uvuSuite<T>(title, context));
}

process.on('exit', () => {
  // read by scripts/test.mjs: these tests are in uvu's "Passed" and move to skipped
  if (count) console.log(`  Runtime skips: ${count}`);
});
