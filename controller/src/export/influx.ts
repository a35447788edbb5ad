// InfluxDB line protocol (the seed's "写入influxdb"): one point per record.
//   measurement = probe
//   tags        = device, and the manifest's low-cardinality fields: comm (type comm) and the
//                 enumerations (format family, tcp_state)
//   fields      = numeric fields as integers, addresses and hex identities as strings, seq
//   timestamp   = the record's wall-clock time, ns
// The ktime_ns field is left out: the timestamp carries the same instant on the wall clock.
//
// InfluxDB keeps one point per series and timestamp (a second write overwrites the first);
// records of one series at the same ns (an interval probe closes all its rows at one time) are
// nudged 1 ns apart, the remedy InfluxDB's documentation gives for duplicate points.
import type { Manifest, ManifestField } from '@bpfleet/proto';
import type { StoredEvent } from '../store/store.js';

// Line protocol has no escape for newlines (nor other control characters) in keys or values.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/g;
const clean = (s: string) => s.replace(CONTROL, '\uFFFD');

/** Measurement: comma and space escaped (and backslash, so a trailing one cannot escape the separator). */
export const escapeMeasurement = (s: string) => clean(s).replace(/[\\, ]/g, '\\$&');
/** Tag keys, tag values and field keys: comma, equals sign and space escaped (and backslash). */
export const escapeKey = (s: string) => clean(s).replace(/[\\,= ]/g, '\\$&');
/** String field values: double quote and backslash escaped, in double quotes. */
export const quoteString = (s: string) => `"${clean(s).replace(/["\\]/g, '\\$&')}"`;

export type InfluxRole = 'tag' | 'int' | 'string' | 'skip';

export function influxRole(f: ManifestField): InfluxRole {
  if (f.format === 'ktime_ns') return 'skip';
  if (f.type === 'comm' || f.format === 'family' || f.format === 'tcp_state') return 'tag';
  if (f.type === 'addr' || f.format === 'hex') return 'string';
  return 'int';
}

export class InfluxEncoder {
  private readonly lastTs = new Map<string, bigint>();
  private readonly plans = new WeakMap<Manifest, { tags: string[]; ints: string[]; strings: string[] }>();

  private plan(m: Manifest) {
    let p = this.plans.get(m);
    if (!p) {
      p = { tags: [], ints: [], strings: [] };
      for (const f of m.record.fields) {
        const role = influxRole(f);
        if (role === 'tag') p.tags.push(f.name);
        else if (role === 'int') p.ints.push(f.name);
        else if (role === 'string') p.strings.push(f.name);
      }
      this.plans.set(m, p);
    }
    return p;
  }

  line(ev: StoredEvent, m: Manifest): string {
    const p = this.plan(m);
    const tags: [string, string][] = [['device', ev.deviceId]];
    for (const name of p.tags) {
      const v = ev.fields[name];
      if (v !== undefined && v !== null && String(v) !== '') tags.push([name, String(v)]); // empty tag values are invalid
    }
    tags.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); // the order InfluxDB stores them in
    const series = escapeMeasurement(ev.probe) + tags.map(([k, v]) => `,${escapeKey(k)}=${escapeKey(v)}`).join('');

    const fields: string[] = [];
    for (const name of p.ints) {
      const v = ev.fields[name];
      if (typeof v === 'number' || typeof v === 'bigint') fields.push(`${escapeKey(name)}=${Number.isInteger(v) || typeof v === 'bigint' ? `${v}i` : v}`);
    }
    for (const name of p.strings) {
      const v = ev.fields[name];
      if (v !== undefined && v !== null) fields.push(`${escapeKey(name)}=${quoteString(String(v))}`);
    }
    fields.push(`seq=${ev.seq}i`);
    if (ev.interval !== undefined) fields.push(`interval=${ev.interval}i`);

    const last = this.lastTs.get(series);
    const ts = last !== undefined && ev.timeUnixNs <= last ? last + 1n : ev.timeUnixNs;
    this.lastTs.set(series, ts);
    return `${series} ${fields.join(',')} ${ts}\n`;
  }
}
