// Values of stack probes for people: the manifest's unit of the `value` field says what they are.
import { formatBytes, formatCount } from '../cli/table.js';

/** "samples" when the unit says nothing (a count). */
export function unitLabel(unit: string): string {
  return unit === '' || unit === 'count' ? 'samples' : unit;
}

/** True when the value counts events (so it is also the number of samples). */
export const countsSamples = (unit: string) => ['', 'count', 'samples', 'sample', 'records'].includes(unit);

export function formatNs(ns: number): string {
  const a = Math.abs(ns);
  if (a < 1e3) return `${Math.round(ns)} ns`;
  if (a < 1e6) return `${(ns / 1e3).toFixed(a < 1e4 ? 2 : 1)} µs`;
  if (a < 1e9) return `${(ns / 1e6).toFixed(a < 1e7 ? 2 : 1)} ms`;
  return `${(ns / 1e9).toFixed(a < 1e10 ? 2 : 1)} s`;
}

/** "1,234 samples", "12.5 ms", "3.0 MiB". */
export function formatValue(v: number, unit: string): string {
  switch (unit) {
    case 'ns': return formatNs(v);
    case 'us': return formatNs(v * 1e3);
    case 'ms': return formatNs(v * 1e6);
    case 'bytes': case 'B': return v < 0 ? `-${formatBytes(-v)}` : formatBytes(v);
    default: return `${formatCount(Math.round(v))} ${unitLabel(unit)}`;
  }
}

/** "12.34%" of a fraction. */
export const pct = (fraction: number, digits = 2) => `${(fraction * 100).toFixed(digits)}%`;
