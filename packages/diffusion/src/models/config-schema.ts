/**
 * A small schema checker for diffusers/transformers config.json files. A config is data from disk:
 * a string where a number belongs (`norm_eps: "1e-5"`), a negative beta or a missing field must be
 * one clear error naming the file and the field, before any module is built.
 */

export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
  constructor(
    /** The file (or 'unet config', … for configs built in code). */
    readonly source: string,
    /** The offending field, null for the object as a whole. */
    readonly field: string | null,
    message: string,
  ) {
    super(`${source}: ${message}`);
  }
}

/** One field's rule: `ok` decides, `want` completes "<field> must be …". */
export interface FieldRule {
  want: string;
  ok: (v: unknown) => boolean;
}

export type ConfigSchema = Readonly<Record<string, FieldRule>>;

/** A value for messages: JSON where it has one, else String (NaN, Infinity, undefined). */
export function describeValue(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = undefined;
  }
  if (s === undefined) return String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export const rule = {
  posInt: { want: 'a positive integer', ok: (v: unknown) => isInt(v) && v > 0 } as FieldRule,
  nonNegInt: { want: 'a non-negative integer', ok: (v: unknown) => isInt(v) && v >= 0 } as FieldRule,
  oddPosInt: { want: 'an odd positive integer', ok: (v: unknown) => isInt(v) && v > 0 && v % 2 === 1 } as FieldRule,
  /** A positive integer up to `max` (a size that arrays are allocated from). */
  posIntAtMost(max: number): FieldRule {
    return { want: `a positive integer ≤ ${max.toLocaleString('en-US')}`, ok: (v) => isInt(v) && v > 0 && v <= max };
  },
  finite: { want: 'a finite number', ok: isNum } as FieldRule,
  finitePos: { want: 'a finite number > 0', ok: (v: unknown) => isNum(v) && v > 0 } as FieldRule,
  unitOpen: { want: 'a number in (0, 1)', ok: (v: unknown) => isNum(v) && v > 0 && v < 1 } as FieldRule,
  bool: { want: 'true or false', ok: (v: unknown) => typeof v === 'boolean' } as FieldRule,
  string: { want: 'a string', ok: (v: unknown) => typeof v === 'string' } as FieldRule,
  oneOf(values: readonly (string | number | boolean | null)[]): FieldRule {
    return { want: `one of ${values.map((x) => describeValue(x)).join(', ')}`, ok: (v) => values.includes(v as string) };
  },
  /** `want` names the elements in the plural, e.g. 'positive integers'. */
  arrayOf(r: FieldRule, want: string, minLength = 1): FieldRule {
    return {
      want: `${minLength > 0 ? 'a non-empty' : 'an'} array of ${want}`,
      ok: (v) => Array.isArray(v) && v.length >= minLength && v.every((x) => r.ok(x)),
    };
  },
  nullable(r: FieldRule): FieldRule {
    return { want: `${r.want} or null`, ok: (v) => v === null || r.ok(v) };
  },
  either(a: FieldRule, b: FieldRule): FieldRule {
    return { want: `${a.want} or ${b.want}`, ok: (v) => a.ok(v) || b.ok(v) };
  },
} as const;

/** Refuses anything but a plain JSON object, and reports every missing required field at once. */
export function checkConfigObject(raw: unknown, source: string, required: readonly string[] = []): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ModelConfigError(source, null, `expected a JSON object of config fields, got ${describeValue(raw)}`);
  }
  const c = raw as Record<string, unknown>;
  const missing = required.filter((k) => c[k] === undefined || c[k] === null);
  if (missing.length) {
    throw new ModelConfigError(source, missing[0]!, `missing required field${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (no safe default: the model's shape depends on ${missing.length > 1 ? 'them' : 'it'})`);
  }
  return c;
}

/** Checks every field of `schema` that `c` sets (undefined = not set, the default applies). */
export function checkFields(c: Record<string, unknown>, schema: ConfigSchema, source: string): void {
  for (const [k, r] of Object.entries(schema)) {
    const v = c[k];
    if (v === undefined || r.ok(v)) continue;
    let detail = '';
    if (Array.isArray(v) && v.length && r.want.includes('array of')) {
      // name the first bad element (a one-element array of it fails the same rule)
      const elem = v.findIndex((x) => !r.ok([x]));
      if (elem >= 0) detail = ` (element ${elem} is ${describeValue(v[elem])})`;
    }
    throw new ModelConfigError(source, k, `${k} must be ${r.want}, got ${describeValue(v)}${detail}`);
  }
}

/** Fields foliar does not implement: accepted only at their diffusers default (anything else changes the model). */
export function checkUnsupported(c: Record<string, unknown>, defaults: Readonly<Record<string, unknown>>, source: string): void {
  for (const [k, d] of Object.entries(defaults)) {
    const v = c[k];
    if (v === undefined || v === d || (d === null && v === null)) continue;
    throw new ModelConfigError(source, k, `${k} = ${describeValue(v)} is not supported (only ${describeValue(d)})`);
  }
}

/**
 * `defaults` overridden by the fields `r` sets (an `undefined` from code keeps the default). Every
 * field is defined as data: a `"__proto__"` key in a config.json stays an (ignored) key, where an
 * assignment would have replaced the result's prototype with the file's object.
 */
export function withDefaults<T extends object>(defaults: T, r: Record<string, unknown>): T & Record<string, unknown> {
  const out = Object.assign({}, defaults) as Record<string, unknown>;
  for (const [k, v] of Object.entries(r)) {
    if (v !== undefined) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out as T & Record<string, unknown>;
}

/** The error for block type lists whose lengths differ from block_out_channels'. */
export function blockCountError(source: string, down: number, up: number, n: number): ModelConfigError {
  return new ModelConfigError(source, down !== n ? 'down_block_types' : 'up_block_types', `down_block_types has ${down} entries and up_block_types ${up} for ${n} block_out_channels (each needs one per entry)`);
}

/** The error of a cross-field rule (lengths, divisibility, ordering). */
export function configError(source: string, field: string, message: string): ModelConfigError {
  return new ModelConfigError(source, field, message);
}
