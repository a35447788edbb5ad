// Streaming exports: one pass over the store, a chunk of text at a time, never the whole set.
import type { Manifest } from '@bpfleet/proto';
import type { Store } from '../store/store.js';
import { CsvEncoder } from './csv.js';
import { eventToJson, stringifyJson } from './event-json.js';
import { iterateEvents, type EventFilter } from './event-pages.js';
import { InfluxEncoder } from './influx.js';
import { ManifestResolver } from './manifest-resolver.js';

export const EXPORT_FORMATS = ['jsonl', 'csv', 'influx'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export const CONTENT_TYPES: Record<ExportFormat, string> = {
  jsonl: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
  influx: 'text/plain; charset=utf-8',
};

/** The request cannot be exported as asked (a user error: HTTP 400). */
export class ExportError extends Error {
  override name = 'ExportError';
}

export interface PreparedExport {
  format: ExportFormat;
  contentType: string;
  /** Text chunks of about `chunkBytes` each. */
  chunks(signal?: AbortSignal): AsyncGenerator<string>;
}

export type ExportStore = Pick<Store, 'events' | 'streams' | 'manifest'>;

/** Checks the request and readies the encoder; throws ExportError before anything is written. */
export async function prepareExport(store: ExportStore, format: string, filter: EventFilter = {},
  opts: { pageSize?: number; chunkBytes?: number; max?: number } = {}): Promise<PreparedExport> {
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) {
    throw new ExportError(`unknown export format "${format}": use one of ${EXPORT_FORMATS.join(', ')}`);
  }
  const fmt = format as ExportFormat;
  const resolver = new ManifestResolver(store);
  const streams = await resolver.streams(filter);
  const chunkBytes = opts.chunkBytes ?? 64 * 1024;

  let header = '';
  let encode: (ev: Parameters<CsvEncoder['line']>[0]) => Promise<string>;
  if (fmt === 'csv') {
    const probes = [...new Set(streams.map((s) => s.probe))].sort();
    if (probes.length > 1) {
      throw new ExportError(`csv export needs one probe (its columns come from the probe manifest); ` +
        `the selection holds ${probes.join(', ')}: add probe=<name>`);
    }
    const manifests: Manifest[] = [];
    for (const s of streams) { const m = await resolver.forStream(s.streamId); if (m && !manifests.includes(m)) manifests.push(m); }
    const csv = new CsvEncoder(manifests);
    header = csv.header();
    encode = async (ev) => csv.line(ev);
  } else if (fmt === 'influx') {
    const influx = new InfluxEncoder();
    encode = async (ev) => {
      const m = await resolver.forStream(ev.streamId);
      if (!m) throw new Error(`stream ${ev.streamId}: no manifest in the store`);
      return influx.line(ev, m);
    };
  } else {
    encode = async (ev) => stringifyJson(eventToJson(ev)) + '\n';
  }

  return {
    format: fmt,
    contentType: CONTENT_TYPES[fmt],
    async *chunks(signal?: AbortSignal) {
      let buf = header;
      const pages = { ...(opts.pageSize ? { pageSize: opts.pageSize } : {}), ...(opts.max ? { max: opts.max } : {}), ...(signal ? { signal } : {}) };
      for await (const ev of iterateEvents(store, filter, pages)) {
        // A CSV of one probe: a stream of another probe stored meanwhile is not part of it.
        if (fmt === 'csv' && streams.length > 0 && ev.probe !== streams[0]!.probe) continue;
        buf += await encode(ev);
        if (buf.length >= chunkBytes) { yield buf; buf = ''; }
      }
      if (buf) yield buf;
    },
  };
}
