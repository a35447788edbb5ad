// Reading events: `events` (a page, or --follow) and `export` (everything, streamed to a file).
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { EventJson } from '../export/event-json.js';
import { parseSince } from '../admin/time-spec.js';
import type { DeviceRow } from '../store/store.js';
import { CliError } from './admin-client.js';
import { str, type Command, type RunContext } from './command.js';
import { renderTable } from './table.js';

function checkSince(ctx: RunContext): string | undefined {
  const since = str(ctx.values, 'since');
  if (since !== undefined) {
    try { parseSince(since, ctx.io.now()); } catch (err) { throw new CliError((err as Error).message, 2); }
  }
  return since;
}

/** "2024-05-01 12:00:01.123456" for people: the RFC 3339 time (UTC) cut to microseconds. */
const shortTime = (t: string) => t.replace('T', ' ').replace(/(\.\d{6})\d*Z$/, '$1');

const showValue = (v: unknown) => (typeof v === 'string' && /[\s"]/.test(v) ? JSON.stringify(v) : String(v));
const skipField = (name: string) => name === 'ts_ns'; // the TIME column shows it on the wall clock

function fieldsText(ev: EventJson): string {
  return Object.entries(ev.fields).filter(([k]) => !skipField(k)).map(([k, v]) => `${k}=${showValue(v)}`).join(' ');
}

async function deviceNames(ctx: RunContext): Promise<Map<string, string>> {
  const { devices } = await ctx.client().get<{ devices: DeviceRow[] }>('/api/v1/devices');
  return new Map(devices.map((d) => [d.id, d.name]));
}

export const eventsCommand: Command = {
  name: 'events',
  summary: 'show stored events, or follow them as they arrive',
  help: `Usage: bpfleet events [--device D] [--probe P] [--since 10m|RFC3339] [--limit N] [--follow] [--json]

Records in time order (device wall clock), the earliest first from --since (default: all).
  --device D     a device name or id
  --probe P      a probe name (tcpstates, ...)
  --since T      a duration back from now (90s, 10m, 2h) or a time (2024-05-01T12:00:00Z)
  --limit N      at most N records (default 1000, at most 100000)
  --follow, -f   keep printing records as they are stored (without --since: only new ones);
                 with --json, one JSON object per line
--json prints a JSON array of {time, timeUnixNs, deviceId, probe, streamId, seq, fields}.`,
  options: { device: { type: 'string' }, probe: { type: 'string' }, since: { type: 'string' }, limit: { type: 'string' },
    follow: { type: 'boolean', short: 'f' } },
  async run(ctx) {
    const since = checkSince(ctx);
    const limit = str(ctx.values, 'limit');
    if (limit !== undefined && !/^[1-9]\d*$/.test(limit)) throw new CliError(`--limit must be a positive integer, got "${limit}"`, 2);
    const follow = ctx.values['follow'] === true;
    if (follow && limit !== undefined) throw new CliError('--limit does not combine with --follow', 2);
    const query = { device: str(ctx.values, 'device'), probe: str(ctx.values, 'probe'), since, limit };
    const json = ctx.values['json'] === true;

    if (follow) {
      const names = json ? new Map<string, string>() : await deviceNames(ctx);
      const aborter = new AbortController();
      const stop = () => aborter.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        for await (const ev of ctx.client().lines<EventJson>('GET', '/api/v1/events', { ...query, follow: '1' }, undefined, aborter.signal)) {
          ctx.out(json ? JSON.stringify(ev) + '\n'
            : `${shortTime(ev.time)}  ${names.get(ev.deviceId) ?? ev.deviceId}  ${ev.probe}  ${fieldsText(ev)}\n`);
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      return 0;
    }

    const page = await ctx.client().get<{ events: EventJson[]; more: boolean }>('/api/v1/events', query);
    if (json) { ctx.json(page.events); return 0; }
    if (!page.events.length) { ctx.out('no events\n'); return 0; }
    const names = await deviceNames(ctx);
    const probes = new Set(page.events.map((e) => e.probe));
    const base = [
      { header: 'TIME', value: (e: EventJson) => shortTime(e.time) },
      { header: 'DEVICE', value: (e: EventJson) => names.get(e.deviceId) ?? e.deviceId },
    ];
    if (probes.size === 1) {
      // One probe: a column per manifest field.
      const fields = Object.keys(page.events[0]!.fields).filter((f) => !skipField(f));
      // Field values as the loader prints them (a pid or port is no count: no digit grouping).
      ctx.out(renderTable(page.events, [...base, ...fields.map((f) => ({
        header: f.toUpperCase(), right: typeof page.events[0]!.fields[f] === 'number',
        value: (e: EventJson) => (e.fields[f] === undefined ? undefined : String(e.fields[f])),
      }))]));
    } else {
      ctx.out(renderTable(page.events, [...base, { header: 'PROBE', value: (e) => e.probe }, { header: 'FIELDS', value: fieldsText }]));
    }
    if (page.more) ctx.err(`(more records: raise --limit or narrow with --since)\n`);
    return 0;
  },
};

export const exportCommand: Command = {
  name: 'export',
  summary: 'export events as JSON lines, CSV or InfluxDB line protocol',
  help: `Usage: bpfleet export --format jsonl|csv|influx [--device D] [--probe P] [--since T] [-o FILE]

Streams every matching record (no limit) to FILE or stdout.
  jsonl    one JSON object per record
  csv      RFC 4180, columns device, probe, stream, seq, time, then the probe's fields (needs
           one probe: add --probe when several match)
  influx   InfluxDB line protocol: measurement = probe, tags = device, comm, family, states;
           fields = numeric fields (addresses as strings); timestamp = wall-clock ns
  -o FILE  write to FILE (written as FILE.partial, renamed when complete)`,
  options: { format: { type: 'string' }, device: { type: 'string' }, probe: { type: 'string' }, since: { type: 'string' },
    output: { type: 'string', short: 'o' } },
  async run(ctx) {
    const format = str(ctx.values, 'format');
    if (!format) throw new CliError('--format is required: jsonl, csv or influx', 2);
    if (!['jsonl', 'csv', 'influx'].includes(format)) throw new CliError(`--format must be jsonl, csv or influx, got "${format}"`, 2);
    const since = checkSince(ctx);
    const body = await ctx.client().stream('GET', '/api/v1/export',
      { format, device: str(ctx.values, 'device'), probe: str(ctx.values, 'probe'), since });
    const file = str(ctx.values, 'output');
    const source = Readable.fromWeb(body as Parameters<typeof Readable.fromWeb>[0]);
    try {
      if (file && file !== '-') {
        const partial = `${file}.partial`;
        try {
          await pipeline(source, createWriteStream(partial));
        } catch (err) {
          rmSync(partial, { force: true });
          throw err;
        }
        renameSync(partial, file);
      } else {
        await pipeline(source, ctx.io.stdout, { end: false });
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`export cut short: ${(err as Error).message}`);
    }
    return 0;
  },
};
