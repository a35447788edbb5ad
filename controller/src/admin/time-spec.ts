// Durations ("90s", "10m", "1h30m", "7d") and points in time ("10m" ago, RFC 3339, or Unix ns),
// shared by the CLI (to refuse a typo before any request) and the admin API.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds of "1h", "90s", "1h30m", "500ms", "7d"; throws on anything else. */
export function parseDuration(text: string): number {
  const t = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0, at = 0, m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) { total += Number(m[1]) * UNIT_MS[m[2]!]!; at = re.lastIndex; }
  if (t === '' || at !== t.length) throw new Error(`"${text}" is not a duration: use e.g. 90s, 10m, 1h30m, 7d`);
  return Math.round(total);
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Unix ns of `since`: a duration back from `nowMs` ("10m"), an RFC 3339 time (fractions to the
 * ns), or an integer of ns since the epoch. Throws saying which forms are accepted.
 */
export function parseSince(text: string, nowMs: number): bigint {
  const t = text.trim();
  if (/^\d{10,}$/.test(t)) return BigInt(t);
  const r = RFC3339.exec(t);
  if (r) {
    const ms = Date.parse(`${r[1]}T${r[2]}${r[4]!.toUpperCase()}`);
    if (Number.isNaN(ms)) throw new Error(`"${text}" is not a valid RFC 3339 time`);
    return BigInt(ms) * 1_000_000n + BigInt((r[3] ?? '').padEnd(9, '0') || '0');
  }
  try {
    return BigInt(nowMs - parseDuration(t)) * 1_000_000n;
  } catch {
    throw new Error(`since "${text}" is neither a duration (10m, 1h) nor an RFC 3339 time (2024-05-01T12:00:00Z) nor Unix ns`);
  }
}
