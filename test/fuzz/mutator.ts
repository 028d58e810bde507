/**
 * The fuzz tests' shared pieces: a seeded mutator (bytes, text, JSON values) and the case runner that
 * sorts every outcome into accepted / clear error / crash / hang / silent wrong result.
 *
 * A clear error is an Error (not a TypeError, RangeError, SyntaxError… from the engine: those are what
 * an out-of-bounds typed-array read or an unchecked property access throw), with a message that names
 * the file or source the API was given. Anything else thrown is a crash. An accepted input is checked
 * by the target's own oracle; a failed check is a silent wrong result.
 *
 * FOLIAR_FUZZ_SCALE=<x> multiplies every target's case count (default 1, the CI budget);
 * FOLIAR_FUZZ_SEED=<n> changes the seed (default 1).
 */
import { prng } from '../prng.js';

export const FUZZ_SEED = Number(process.env.FOLIAR_FUZZ_SEED ?? 1) >>> 0;

/** A case count scaled by FOLIAR_FUZZ_SCALE. */
export function cases(ciDefault: number): number {
  const s = Number(process.env.FOLIAR_FUZZ_SCALE ?? 1);
  return Math.max(1, Math.round(ciDefault * (Number.isFinite(s) && s > 0 ? s : 1)));
}

// ------------------------------------------------------------------ mutator

/** Numbers at the edges of what parsers and typed arrays handle. */
export const EDGE_NUMBERS: readonly number[] = [
  0, -0, 1, -1, 2, 3, 7, 8, 0.5, -0.5, 1.5, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2,
  -(2 ** 53), 1e21, 1e308, -1e308, 5e-324, 1e-7, Number.EPSILON, 0.1, 100_000_001,
];
/** JSON number literals JSON.stringify never writes (they parse to ±Infinity, -0, huge integers…). */
export const EDGE_NUMBER_LITERALS: readonly string[] = ['1e999', '-1e999', '1e-999', '-0', '0.0', '1.0', '1E2', '9007199254740993', '18446744073709551616', '-9223372036854775809', '1e+308', '4.9e-324'];
/** Strings that tend to matter: empty, separators, escapes, BOM, NUL, a lone surrogate, prototypes. */
export const EDGE_STRINGS: readonly string[] = [
  '', ' ', 'x', '0', '-1', '1e-5', 'NaN', 'Infinity', 'null', 'true', '__proto__', 'constructor', 'toString', '\u0000', '\ufeff', '\ud800', '\udfff',
  '\u{1f600}', 'é', 'e\u0301', '\u202e', '"', '\\', ',', '\n', '\r\n', '\r', '\t', '../x', '/etc/passwd', 'a'.repeat(300), '<|endoftext|>', '<|startoftext|>',
];

export class Mutator {
  readonly r: () => number;
  constructor(seed: number) {
    this.r = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }

  /** 1 to `max` byte-level edits: bit flips, byte sets, inserts, deletes, duplication, truncation, splicing. */
  bytes(src: Uint8Array, others: readonly Uint8Array[] = [], max = 4): Uint8Array {
    let b: Uint8Array = src.slice();
    const edits = 1 + this.int(max);
    for (let k = 0; k < edits; k++) {
      const n = b.length;
      const at = n ? this.int(n) : 0;
      switch (this.int(8)) {
        case 0: // bit flip
          if (n) b[at] ^= 1 << this.int(8);
          break;
        case 1: // an interesting byte
          if (n) b[at] = this.pick([0, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x7d, 0x2c, 0x5c, 0x5b, 0x5d, 0x30, 0x39, 0x2d, 0x20, 0xc3, 0xed]);
          break;
        case 2: { // insert random bytes
          const ins = Uint8Array.from({ length: 1 + this.int(8) }, () => this.int(256));
          b = concat(b.subarray(0, at), ins, b.subarray(at));
          break;
        }
        case 3: { // delete a range
          const len = 1 + this.int(Math.max(1, Math.min(16, n - at)));
          b = concat(b.subarray(0, at), b.subarray(Math.min(n, at + len)));
          break;
        }
        case 4: { // duplicate a range
          const len = 1 + this.int(Math.max(1, Math.min(32, n - at)));
          b = concat(b.subarray(0, at + len), b.subarray(at, Math.min(n, at + len)), b.subarray(Math.min(n, at + len)));
          break;
        }
        case 5: // truncate
          b = b.subarray(0, this.int(n + 1)).slice();
          break;
        case 6: { // splice with another input
          const o = others.length ? this.pick(others) : src;
          b = concat(b.subarray(0, at), o.subarray(this.int(o.length + 1)));
          break;
        }
        default: { // overwrite a little-endian integer of 1, 2, 4 or 8 bytes with an edge value
          const w = this.pick([1, 2, 4, 8]);
          if (n >= w) {
            const p = this.int(n - w + 1);
            const v = BigInt.asUintN(64, BigInt(Math.trunc(this.pick(EDGE_NUMBERS))));
            for (let i = 0; i < w; i++) b[p + i] = Number((v >> BigInt(8 * i)) & 0xffn);
          }
        }
      }
    }
    return b;
  }

  /** 1 to `max` character-level edits of a text (inserts of edge strings, deletes, duplication, truncation, splicing, swaps). */
  text(src: string, others: readonly string[] = [], max = 3): string {
    let s = src;
    const edits = 1 + this.int(max);
    for (let k = 0; k < edits; k++) {
      const n = s.length;
      const at = this.int(n + 1);
      switch (this.int(7)) {
        case 0:
          s = s.slice(0, at) + this.pick(EDGE_STRINGS) + s.slice(at);
          break;
        case 1:
          s = s.slice(0, at) + s.slice(at + 1 + this.int(8));
          break;
        case 2: {
          const len = 1 + this.int(20);
          s = s.slice(0, at + len) + s.slice(at, at + len) + s.slice(at + len);
          break;
        }
        case 3:
          s = s.slice(0, at);
          break;
        case 4: {
          const o = others.length ? this.pick(others) : src;
          s = s.slice(0, at) + o.slice(this.int(o.length + 1));
          break;
        }
        case 5: // a random code point (any plane, surrogates and controls included)
          s = s.slice(0, at) + randomChar(this) + s.slice(at);
          break;
        default: // replace one character by a structural one
          s = s.slice(0, at) + this.pick(['"', ',', '\n', '\r', ':', '{', '}', '[', ']', ' ', '#', '\\']) + s.slice(at + 1);
      }
    }
    return s;
  }

  /** An edge value of any JSON type. */
  edgeValue(depth = 0): unknown {
    switch (this.int(depth > 1 ? 4 : 6)) {
      case 0: return this.pick(EDGE_NUMBERS);
      case 1: return this.pick(EDGE_STRINGS);
      case 2: return this.pick([null, true, false]);
      case 3: return this.pick([[], {}, [1], ['x'], [0, -1], { a: 1 }]);
      case 4: return Array.from({ length: this.int(5) }, () => this.edgeValue(depth + 1));
      default: return Object.fromEntries(Array.from({ length: this.int(3) }, () => [this.pick(['a', '__proto__', 'constructor', 'dtype', 'shape']), this.edgeValue(depth + 1)]));
    }
  }

  /**
   * A structural mutation of a JSON value (a deep copy): a value replaced by an edge value, a key
   * deleted or added, an array element removed, duplicated or retyped; `keys` are candidate key names.
   */
  json(v: unknown, keys: readonly string[] = []): unknown {
    const root = structuredClone(v) as unknown;
    const edits = 1 + this.int(3);
    let out = root;
    for (let k = 0; k < edits; k++) out = this.jsonOnce(out, keys);
    return out;
  }

  private jsonOnce(root: unknown, keys: readonly string[]): unknown {
    // collect containers and pick one
    const nodes: (Record<string, unknown> | unknown[])[] = [];
    const walk = (x: unknown, d: number) => {
      if (x && typeof x === 'object' && d < 6) {
        nodes.push(x as Record<string, unknown>);
        for (const c of Object.values(x)) walk(c, d + 1);
      }
    };
    walk(root, 0);
    if (!nodes.length || this.chance(0.03)) return this.edgeValue();
    const node = this.pick(nodes);
    if (Array.isArray(node)) {
      const i = this.int(node.length + 1);
      switch (this.int(4)) {
        case 0: if (node.length) node.splice(this.int(node.length), 1); break;
        case 1: if (node.length) node.splice(i, 0, node[this.int(node.length)]); break;
        case 2: node[Math.min(i, Math.max(0, node.length - 1))] = this.edgeValue(); break;
        default: node.push(this.edgeValue());
      }
      return root;
    }
    const own = Object.keys(node);
    switch (this.int(4)) {
      case 0: if (own.length) delete node[this.pick(own)]; break;
      case 1: {
        const k = keys.length && this.chance(0.7) ? this.pick(keys) : this.pick(['__proto__', 'constructor', 'x', '', 'toString']);
        Object.defineProperty(node, k, { value: this.edgeValue(), enumerable: true, writable: true, configurable: true });
        break;
      }
      default:
        if (own.length) node[this.pick(own)] = this.edgeValue();
    }
    return root;
  }

  /** JSON text of `v`, sometimes with a number literal swapped for one JSON.stringify never writes. */
  jsonText(v: unknown): string {
    let s = JSON.stringify(v) ?? 'null';
    if (this.chance(0.3)) {
      const nums = [...s.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?/g)];
      if (nums.length) {
        const m = this.pick(nums);
        s = s.slice(0, m.index) + this.pick(EDGE_NUMBER_LITERALS) + s.slice(m.index + m[0].length);
      }
    }
    if (this.chance(0.1)) {
      // a duplicated key: JSON.parse keeps the last silently
      const keyAt = [...s.matchAll(/"([^"\\]{1,40})":/g)];
      if (keyAt.length) {
        const m = this.pick(keyAt);
        s = s.slice(0, m.index) + `${m[0]}${JSON.stringify(this.edgeValue())},` + s.slice(m.index);
      }
    }
    return s;
  }
}

/** A random code point of any kind: ASCII, Latin, CJK, emoji, combining marks, controls, lone surrogates. */
export function randomChar(m: Mutator): string {
  switch (m.int(8)) {
    case 0: return String.fromCharCode(32 + m.int(95));
    case 1: return String.fromCharCode(m.int(32));
    case 2: return String.fromCharCode(0xa0 + m.int(0x2000));
    case 3: return String.fromCharCode(0x4e00 + m.int(0x5000));
    case 4: return String.fromCodePoint(0x1f300 + m.int(0x600));
    case 5: return String.fromCharCode(0x300 + m.int(0x70));
    case 6: return String.fromCharCode(0xd800 + m.int(0x800)); // lone surrogate
    default: return String.fromCodePoint(m.int(0x110000));
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ------------------------------------------------------------------ outcomes

export interface FuzzStats {
  target: string;
  cases: number;
  accepted: number;
  clear: number;
  /** Non-Error throws, engine errors (TypeError, RangeError, …), empty messages. */
  crashes: string[];
  /** Errors that do not name the file/source the API was given. */
  unclear: string[];
  /** Async cases past their timeout; sync cases slower than the slow limit. */
  hangs: string[];
  /** Accepted inputs the oracle says were read wrongly. */
  wrong: string[];
  ms: number;
  /** Error messages seen, by their first 60 characters with digits folded (for the summary). */
  kinds: Map<string, number>;
}

export function newStats(target: string): FuzzStats {
  return { target, cases: 0, accepted: 0, clear: 0, crashes: [], unclear: [], hangs: [], wrong: [], ms: 0, kinds: new Map() };
}

const ENGINE_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

export interface CaseOptions<T> {
  /** The message must contain one of these (the file or source the API was given). */
  source?: string | readonly string[];
  /** The oracle for an accepted input: null when right, else what is wrong. */
  check?: (result: T) => string | null | Promise<string | null>;
  /** Async cases: the time limit (default 5 s). Sync cases: slower than this counts as a hang. */
  timeoutMs?: number;
}

const show = (x: unknown) => {
  const s = typeof x === 'string' ? JSON.stringify(x) : x instanceof Uint8Array ? `${x.length} bytes` : JSON.stringify(x) ?? String(x);
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
};

/** Runs one case and files its outcome in `stats`; `input` is only for the report. */
export async function runCase<T>(stats: FuzzStats, input: unknown, fn: () => T | Promise<T>, o: CaseOptions<Awaited<T>> = {}): Promise<'accepted' | 'clear' | 'bad'> {
  stats.cases++;
  const limit = o.timeoutMs ?? 5000;
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const p = fn();
    const result = p instanceof Promise
      ? await Promise.race([p, new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new HangError()), limit); })])
      : p;
    const ms = performance.now() - t0;
    if (ms > limit) {
      stats.hangs.push(`${show(input)}: took ${ms.toFixed(0)} ms`);
      return 'bad';
    }
    const wrong = o.check ? await o.check(result as Awaited<T>) : null;
    if (wrong) {
      stats.wrong.push(`${show(input)}: ${wrong}`);
      return 'bad';
    }
    stats.accepted++;
    return 'accepted';
  } catch (e) {
    if (e instanceof HangError) {
      stats.hangs.push(`${show(input)}: no answer after ${limit} ms`);
      return 'bad';
    }
    if (!(e instanceof Error)) {
      stats.crashes.push(`${show(input)}: threw a non-Error ${show(e)}`);
      return 'bad';
    }
    if (ENGINE_ERRORS.some((E) => e.constructor === E) || !e.message) {
      stats.crashes.push(`${show(input)}: ${e.name}: ${e.message || '(empty message)'}${e.stack ? ` at ${e.stack.split('\n').slice(1, 3).map((l) => l.trim()).join(' ')}` : ''}`);
      return 'bad';
    }
    const sources = o.source === undefined ? [] : typeof o.source === 'string' ? [o.source] : o.source;
    if (sources.length && !sources.some((s) => e.message.includes(s))) {
      stats.unclear.push(`${show(input)}: "${e.message.slice(0, 200)}" names none of ${sources.join(', ')}`);
      return 'bad';
    }
    stats.clear++;
    const kind = e.message.replace(/^.*?: /, '').replace(/\d+/g, 'N').slice(0, 60);
    stats.kinds.set(kind, (stats.kinds.get(kind) ?? 0) + 1);
    return 'clear';
  } finally {
    if (timer) clearTimeout(timer);
    stats.ms += performance.now() - t0;
  }
}

class HangError extends Error {}

/** One line of counts, and the first few failures of each kind. */
export function report(s: FuzzStats): string {
  const bad = s.crashes.length + s.unclear.length + s.hangs.length + s.wrong.length;
  const lines = [`  fuzz ${s.target}: ${s.cases} cases, ${s.clear} clear errors, ${s.accepted} accepted, ${s.crashes.length} crashes, ${s.unclear.length} unclear errors, ${s.hangs.length} hangs, ${s.wrong.length} silent wrong results (${(s.ms / 1000).toFixed(1)} s)`];
  if (process.env.FOLIAR_FUZZ_VERBOSE) for (const [k, n] of [...s.kinds].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`    ${n} x ${k}`);
  if (bad) {
    for (const [name, list] of [['crash', s.crashes], ['unclear', s.unclear], ['hang', s.hangs], ['wrong', s.wrong]] as const) {
      for (const x of list.slice(0, 5)) lines.push(`    ${name}: ${x}`);
      if (list.length > 5) lines.push(`    … ${list.length - 5} more ${name}`);
    }
  }
  return lines.join('\n');
}

/** Throws (with the report) unless every case was accepted correctly or refused clearly. */
export function assertClean(s: FuzzStats): void {
  const msg = report(s);
  console.log(msg);
  if (s.crashes.length + s.unclear.length + s.hangs.length + s.wrong.length) throw new Error(`fuzz ${s.target} found problems:\n${msg}`);
}
