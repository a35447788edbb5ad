// The one JSON shape of a stored event, shared by the admin API, `bpfleet events --json` and the
// JSON-lines export. Times travel as strings: ns since the epoch do not fit a JSON number.
import type { StoredEvent } from '../store/store.js';

export interface EventJson {
  /** RFC 3339 UTC with nanoseconds (device wall clock). */
  time: string;
  /** The same instant, ns since the Unix epoch, as a decimal string. */
  timeUnixNs: string;
  deviceId: string;
  probe: string;
  streamId: string;
  seq: number;
  interval?: number;
  fields: Record<string, unknown>;
}

/** "2023-11-14T22:13:20.000005000Z": RFC 3339 with all nine fraction digits, UTC. */
export function formatRfc3339Nano(ns: bigint): string {
  const sec = ns >= 0n ? ns / 1_000_000_000n : (ns - 999_999_999n) / 1_000_000_000n;
  const frac = ns - sec * 1_000_000_000n;
  const iso = new Date(Number(sec) * 1000).toISOString(); // ...:SS.000Z
  return `${iso.slice(0, -5)}.${frac.toString().padStart(9, '0')}Z`;
}

export function eventToJson(ev: StoredEvent): EventJson {
  const out: EventJson = {
    time: formatRfc3339Nano(ev.timeUnixNs), timeUnixNs: ev.timeUnixNs.toString(),
    deviceId: ev.deviceId, probe: ev.probe, streamId: ev.streamId, seq: ev.seq, fields: ev.fields,
  };
  if (ev.interval !== undefined) out.interval = ev.interval;
  return out;
}

/** JSON.stringify that writes bigints as decimal strings instead of throwing. */
export function stringifyJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}
