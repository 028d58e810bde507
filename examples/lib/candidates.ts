/**
 * `--candidates '<JSON list>'` of the tuning scripts: a non-empty list of objects, each key one of the
 * settings the script may tune and each value passing that setting's check. Errors name the flag, the
 * candidate's index and the key.
 */
export type SettingChecks = Readonly<Record<string, (v: unknown) => boolean>>;

export function parseCandidateList<T extends object>(json: string, checks: SettingChecks): Partial<T>[] {
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch (e) {
    throw new Error(`--candidates: not JSON (${(e as Error).message}): ${json}`);
  }
  if (!Array.isArray(list) || list.length === 0) throw new Error(`--candidates: expected a non-empty JSON list of objects, got ${json}`);
  return list.map((c: unknown, i) => {
    if (!c || typeof c !== 'object' || Array.isArray(c)) throw new Error(`--candidates[${i}]: expected an object, got ${JSON.stringify(c)}`);
    for (const [k, v] of Object.entries(c)) {
      const check = checks[k];
      if (!check) throw new Error(`--candidates[${i}]: unknown setting "${k}" (settings: ${Object.keys(checks).join(', ')})`);
      if (!check(v)) throw new Error(`--candidates[${i}].${k}: invalid value ${JSON.stringify(v)}`);
    }
    return c as Partial<T>;
  });
}
