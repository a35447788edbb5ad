// Smoke tests (bpf/README.md, "Smoke tests"): the manifest's smoke entry says which loader args
// isolate the trigger and which field values prove the probe saw it. The agent (which record
// passes on the device) and the controller (which stored record proves it arrived) both judge
// records through this one implementation.
import type { ManifestSmoke, ManifestSmokeExpect } from './manifest.js';

/** What a trigger fills into the placeholders {port}, {pid} and {bytes}. */
export type SmokeVars = Record<string, string | number>;

/** Replaces every {name} of vars; throws naming a placeholder vars do not define. */
export function fillSmokePlaceholders(text: string, vars: SmokeVars): string {
  return text.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`smoke placeholder {${name}} is not provided by the trigger (it provides ${Object.keys(vars).map((k) => `{${k}}`).join(', ') || 'nothing'})`);
    return String(v);
  });
}

/** The loader args of a smoke run, placeholders filled. */
export function smokeArgs(smoke: ManifestSmoke, vars: SmokeVars): string[] {
  return smoke.args.map((a) => fillSmokePlaceholders(a, vars));
}

function conditionHolds(c: ManifestSmokeExpect, actual: unknown, vars: SmokeVars): boolean {
  const want = fillSmokePlaceholders(c.value, vars);
  if (actual === undefined) return false;
  const num = typeof actual === 'number' || typeof actual === 'bigint';
  switch (c.op) {
    case 'eq':
      return num ? Number(actual) === Number(want) && want.trim() !== '' : String(actual) === want;
    case 'ge':
      return num && want.trim() !== '' && Number(actual) >= Number(want);
    default:
      return false;
  }
}

/**
 * The conditions a decoded record (decodeRecord) fails, empty when it passes. Throws when the
 * smoke entry names a field the record does not have or an unknown op: a broken manifest, not
 * a record that does not match.
 */
export function smokeMismatches(smoke: ManifestSmoke, record: Record<string, unknown>, vars: SmokeVars): ManifestSmokeExpect[] {
  for (const c of smoke.expect) {
    if (!(c.field in record)) throw new Error(`smoke expectation names field "${c.field}", which the record does not have`);
    if (c.op !== 'eq' && c.op !== 'ge') throw new Error(`smoke expectation on "${c.field}" has unknown op "${String(c.op)}" (eq, ge)`);
  }
  return smoke.expect.filter((c) => !conditionHolds(c, record[c.field], vars));
}

/** "lport eq 41234, newstate eq ESTABLISHED": the conditions with placeholders filled, for people. */
export function describeSmokeExpect(smoke: ManifestSmoke, vars: SmokeVars): string {
  return smoke.expect.map((c) => `${c.field} ${c.op === 'eq' ? '=' : '>='} ${fillSmokePlaceholders(c.value, vars)}`).join(', ');
}
