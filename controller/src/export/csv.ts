// CSV (RFC 4180): one header line, then one line per record, CRLF line ends. The columns are
// where the record came from, then the manifest's fields in manifest order.
import type { Manifest } from '@bpfleet/proto';
import type { StoredEvent } from '../store/store.js';
import { formatRfc3339Nano } from './event-json.js';

export const CSV_FIXED_COLUMNS = ['device', 'probe', 'stream', 'seq', 'time'] as const;

/** RFC 4180 §2.6-2.7: quote a field holding a comma, quote, CR or LF; double inner quotes. */
export function csvField(value: unknown): string {
  const s = value === undefined || value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export class CsvEncoder {
  readonly columns: string[];
  private readonly fieldNames: string[];
  private readonly withInterval: boolean;

  /** Manifests of every stream exported (versions of one probe); their fields are united in order. */
  constructor(manifests: Manifest[]) {
    const names: string[] = [];
    for (const m of manifests) for (const f of m.record.fields) if (!names.includes(f.name)) names.push(f.name);
    this.fieldNames = names;
    this.withInterval = manifests.some((m) => m.kind === 'interval');
    this.columns = [...CSV_FIXED_COLUMNS, ...(this.withInterval ? ['interval'] : []), ...names];
  }

  header(): string {
    return this.columns.map(csvField).join(',') + '\r\n';
  }

  line(ev: StoredEvent): string {
    const cells: unknown[] = [ev.deviceId, ev.probe, ev.streamId, ev.seq, formatRfc3339Nano(ev.timeUnixNs)];
    if (this.withInterval) cells.push(ev.interval);
    for (const name of this.fieldNames) cells.push(ev.fields[name]);
    return cells.map(csvField).join(',') + '\r\n';
  }
}
