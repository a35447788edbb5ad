// Reading events back from PostgreSQL: decoded records in time order, streams with their
// cursors, gaps, rejections. Same results as the SQLite reader (the contract test checks).
import type { Pool } from 'pg';
import { decodeRecord } from '@bpfleet/proto';
import { StoreConflictError } from '../errors.js';
import type {
  EventCursor, EventQuery, EventsAfter, EventsAfterQuery, GapRow, RejectionRow, StoredEvent, StreamCursorState, StreamRow,
} from '../store.js';
import type { PgManifests } from './pg-manifests.js';

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 1_000_000;
/** Batches fetched per round trip while merging by time. */
const PAGE = 200;

interface BatchRow {
  stream: string; stream_id: string; device_id: string; probe: string; schema_id: string; first_seq: string;
  min_wall_ns: string; clock_offset_ns: string; records: Buffer; interval_index: Buffer | null;
}

interface Candidate { row: BatchRow; index: number; time: bigint }

const byTime = (a: Candidate, b: Candidate): number =>
  a.time < b.time ? -1 : a.time > b.time ? 1
    : a.row.stream_id < b.row.stream_id ? -1 : a.row.stream_id > b.row.stream_id ? 1 : a.index - b.index;

const STREAM_COLUMNS = `s.stream_id, s.device_id, s.probe, s.run_id, s.schema_id, s.record_size, s.next_seq,
  s.stored_records, s.stored_batches, s.duplicate_records, s.open_gap_records, s.lost_gap_records,
  s.filled_gap_records, s.last_batch_at_ms,
  (SELECT min(g.from_seq) FROM gaps g WHERE g.stream = s.id AND g.state = 'open') AS first_open_gap`;

type StreamDbRow = Record<'stream_id' | 'device_id' | 'probe' | 'run_id', string> & { schema_id: string | null; record_size: number | null }
  & Record<'next_seq' | 'stored_records' | 'stored_batches' | 'duplicate_records' | 'open_gap_records' | 'lost_gap_records'
    | 'filled_gap_records', string> & { last_batch_at_ms: string | null; first_open_gap: string | null };

function toStreamRow(r: StreamDbRow): StreamRow {
  const next = BigInt(r.next_seq);
  return {
    streamId: r.stream_id, deviceId: r.device_id, probe: r.probe, runId: r.run_id, schemaId: r.schema_id,
    recordSize: r.record_size, nextSeq: next, ackedThrough: (r.first_open_gap === null ? next : BigInt(r.first_open_gap)) - 1n,
    storedRecords: Number(r.stored_records), storedBatches: Number(r.stored_batches), duplicateRecords: Number(r.duplicate_records),
    openGapRecords: Number(r.open_gap_records), lostGapRecords: Number(r.lost_gap_records),
    filledGapRecords: Number(r.filled_gap_records), lastBatchAtMs: r.last_batch_at_ms === null ? null : Number(r.last_batch_at_ms),
  };
}

interface AfterRow {
  tx: string; stream: string; first_seq: string; stream_id: string; device_id: string; probe: string; schema_id: string;
  clock_offset_ns: string; records: Buffer; interval_index: Buffer | null;
}

/** A pg_snapshot as text, "xmin:xmax:xip,...", parsed only as far as the index range needs. */
const SNAPSHOT = /^(\d{1,20}):(\d{1,20}):(?:\d{1,20}(?:,\d{1,20})*)?$/;
const KEY = /^(\d{1,20})\.(\d{1,19})\.(\d{1,19})$/;

/**
 * An eventsAfter cursor: the batches of transactions visible in snapshot `from` are delivered;
 * while a read from `from` to `to` is cut short by its limit, also those of `to` up to `after`
 * (tx, stream, first_seq).
 */
interface PgCursor { from: string; to?: string | undefined; after?: [string, string, string] | undefined }

function parseCursor(text: string): PgCursor {
  const [from, to, after, ...rest] = text.split('/');
  const key = after === undefined ? undefined : KEY.exec(after);
  if (!SNAPSHOT.test(from!) || (to !== undefined && !SNAPSHOT.test(to)) || (to === undefined) !== (after === undefined)
    || (after !== undefined && !key) || rest.length > 0) {
    throw new RangeError(`events cursor "${text}" is not one of this PostgreSQL store's (a pg_snapshot, or two and a batch key)`);
  }
  return { from: from!, ...(to === undefined ? {} : { to, after: [key![1]!, key![2]!, key![3]!] as [string, string, string] }) };
}

export class PgEvents {
  constructor(private readonly pool: Pool, private readonly manifests: PgManifests) {}

  async events(q: EventQuery = {}): Promise<StoredEvent[]> {
    const limit = q.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new RangeError(`events: limit must be an integer in 1..${MAX_LIMIT}, got ${limit}`);
    }
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown) => { args.push(v); return `$${args.length}`; };
    if (q.deviceId !== undefined) where.push(`s.device_id = ${arg(q.deviceId)}`);
    if (q.probe !== undefined) where.push(`s.probe = ${arg(q.probe)}`);
    if (q.streamId !== undefined) where.push(`s.stream_id = ${arg(q.streamId)}`);
    const since = q.sinceUnixNs;
    const batchWhere = [...where];
    if (since !== undefined) {
      // A batch holding a record at >= since has max_wall >= since, and min_wall no earlier than
      // since minus the widest batch span seen: that lower bound lets the time index do the work.
      const span = await this.pool.query<{ m: string | null }>(
        `SELECT max(s.max_span_ns)::text AS m FROM streams s ${where.length ? 'WHERE ' + where.join(' AND ') : ''}`, args);
      const m = BigInt(span.rows[0]?.m ?? '0');
      batchWhere.push(`b.max_wall_ns >= ${arg(since.toString())}`, `b.min_wall_ns >= ${arg((since - m).toString())}`);
    }
    const base = args.length;
    const sql = (after: boolean) => `SELECT b.stream::text AS stream, s.stream_id, s.device_id, s.probe, s.schema_id,
        b.first_seq::text AS first_seq, b.min_wall_ns::text AS min_wall_ns, b.clock_offset_ns::text AS clock_offset_ns,
        b.records, b.interval_index
      FROM batches b JOIN streams s ON s.id = b.stream
      WHERE ${[...batchWhere, ...(after ? [`(b.min_wall_ns, b.stream, b.first_seq) > ($${base + 1}, $${base + 2}, $${base + 3})`] : []),
        'TRUE'].join(' AND ')}
      ORDER BY b.min_wall_ns, b.stream, b.first_seq LIMIT ${PAGE}`;

    let out: Candidate[] = [];
    let threshold: bigint | undefined; // time of the limit-th record so far
    let last: BatchRow | undefined;
    for (;;) {
      const page = (await this.pool.query<BatchRow>(sql(last !== undefined),
        last ? [...args, last.min_wall_ns, last.stream, last.first_seq] : args)).rows;
      let done = page.length < PAGE;
      for (const row of page) {
        // Batches come by min_wall: once one starts after the limit-th record, none can do better.
        if (threshold !== undefined && BigInt(row.min_wall_ns) > threshold) { done = true; break; }
        const schema = await this.manifests.schema(this.pool, row.schema_id);
        if (!schema) throw new StoreConflictError(`stream ${row.stream_id}: manifest ${row.schema_id} missing from the database`);
        const size = schema.recordSize;
        const offset = BigInt(row.clock_offset_ns);
        for (let i = 0, at = 0; at < row.records.length; i++, at += size) {
          const time = row.records.readBigUInt64LE(at + schema.tsOffset) + offset;
          if (since !== undefined && time < since) continue;
          if (threshold !== undefined && time > threshold) continue;
          out.push({ row, index: i, time });
        }
        if (out.length >= 2 * limit) { out.sort(byTime); out = out.slice(0, limit); threshold = out[limit - 1]!.time; }
        else if (out.length >= limit && threshold === undefined) { out.sort(byTime); threshold = out[limit - 1]!.time; }
      }
      last = page[page.length - 1];
      if (done || !last) break;
    }
    out.sort(byTime);
    const result: StoredEvent[] = [];
    for (const { row, index, time } of out.slice(0, limit)) {
      const schema = (await this.manifests.schema(this.pool, row.schema_id))!;
      const size = schema.recordSize;
      const ev: StoredEvent = {
        streamId: row.stream_id, deviceId: row.device_id, probe: row.probe, seq: Number(row.first_seq) + index,
        timeUnixNs: time, fields: decodeRecord(schema.manifest, row.records.subarray(index * size, (index + 1) * size)),
      };
      if (row.interval_index) ev.interval = row.interval_index.readUInt32LE(index * 4);
      result.push(ev);
    }
    return result;
  }

  // Sequence or insert order is not commit order in PostgreSQL: a cursor is a snapshot instead.
  // The batches new since snapshot `from` are those whose transaction (the tx column) is not
  // visible in it but is in a later snapshot `to`; every one of them has from.xmin <= tx <
  // to.xmax, the range batches_by_tx walks. That range also holds batches already delivered
  // when a transaction older than them was still running at `from`: a long-running writer makes
  // each read rescan what committed since it began, but never loses or repeats a batch.
  async eventsHead(): Promise<EventCursor> {
    return (await this.pool.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0]!.s;
  }

  async eventsAfter(cursor: EventCursor, q: EventsAfterQuery = {}): Promise<EventsAfter> {
    const limit = q.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new RangeError(`eventsAfter: limit must be an integer in 1..${MAX_LIMIT}, got ${limit}`);
    }
    let { from, to, after } = parseCursor(cursor);
    const events: StoredEvent[] = [];
    for (;;) {
      // A window left by a cut-short answer is finished first, then one to now is read.
      const continuing = to !== undefined;
      to ??= await this.eventsHead();
      const args: unknown[] = [from.split(':')[0], to.split(':')[1], from, to];
      const arg = (v: unknown) => { args.push(v); return `$${args.length}`; };
      const where = ['b.tx >= $1::xid8', 'b.tx < $2::xid8', 'NOT pg_visible_in_snapshot(b.tx, $3::pg_snapshot)',
        'pg_visible_in_snapshot(b.tx, $4::pg_snapshot)'];
      if (q.deviceId !== undefined) where.push(`s.device_id = ${arg(q.deviceId)}`);
      if (q.probe !== undefined) where.push(`s.probe = ${arg(q.probe)}`);
      const base = args.length;
      const sql = (paging: boolean) => `SELECT b.tx::text AS tx, b.stream::text AS stream, b.first_seq::text AS first_seq,
          s.stream_id, s.device_id, s.probe, s.schema_id, b.clock_offset_ns::text AS clock_offset_ns, b.records, b.interval_index
        FROM batches b JOIN streams s ON s.id = b.stream
        WHERE ${[...where, ...(paging ? [`(b.tx, b.stream, b.first_seq) > ($${base + 1}::xid8, $${base + 2}::bigint, $${base + 3}::bigint)`] : [])]
          .join(' AND ')}
        ORDER BY b.tx, b.stream, b.first_seq LIMIT ${PAGE}`;
      for (;;) {
        const page = (await this.pool.query<AfterRow>(sql(after !== undefined), after ? [...args, ...after] : args)).rows;
        for (const [i, row] of page.entries()) {
          if (events.length >= limit) return { events, cursor: `${from}/${to}/${after!.join('.')}`, more: true };
          await this.decodeBatch(row, events);
          after = [row.tx, row.stream, row.first_seq];
          if (i === page.length - 1 && page.length === PAGE && events.length >= limit) {
            return { events, cursor: `${from}/${to}/${after.join('.')}`, more: true };
          }
        }
        if (page.length < PAGE) break;
      }
      if (!continuing || events.length >= limit) return { events, cursor: to, more: continuing };
      from = to;
      to = undefined;
      after = undefined;
    }
  }

  /** Appends the records of one batch row. */
  private async decodeBatch(row: AfterRow, out: StoredEvent[]): Promise<void> {
    const schema = await this.manifests.schema(this.pool, row.schema_id);
    if (!schema) throw new StoreConflictError(`stream ${row.stream_id}: manifest ${row.schema_id} missing from the database`);
    const offset = BigInt(row.clock_offset_ns);
    for (let k = 0, at = 0; at < row.records.length; k++, at += schema.recordSize) {
      const ev: StoredEvent = {
        streamId: row.stream_id, deviceId: row.device_id, probe: row.probe, seq: Number(row.first_seq) + k,
        timeUnixNs: row.records.readBigUInt64LE(at + schema.tsOffset) + offset,
        fields: decodeRecord(schema.manifest, row.records.subarray(at, at + schema.recordSize)),
      };
      if (row.interval_index) ev.interval = row.interval_index.readUInt32LE(k * 4);
      out.push(ev);
    }
  }

  async streams(filter: { deviceId?: string } = {}): Promise<StreamRow[]> {
    const r = filter.deviceId === undefined
      ? await this.pool.query<StreamDbRow>(`SELECT ${STREAM_COLUMNS} FROM streams s ORDER BY s.stream_id`)
      : await this.pool.query<StreamDbRow>(`SELECT ${STREAM_COLUMNS} FROM streams s WHERE s.device_id = $1 ORDER BY s.stream_id`,
        [filter.deviceId]);
    return r.rows.map(toStreamRow);
  }

  async cursor(streamId: string): Promise<StreamCursorState | undefined> {
    const r = (await this.pool.query<StreamDbRow>(`SELECT ${STREAM_COLUMNS} FROM streams s WHERE s.stream_id = $1`, [streamId])).rows[0];
    if (!r) return undefined;
    const s = toStreamRow(r);
    return { streamId, ackedThrough: s.ackedThrough, nextSeq: s.nextSeq, gapRecords: s.openGapRecords + s.lostGapRecords };
  }

  async gaps(streamId: string): Promise<GapRow[]> {
    const r = await this.pool.query<{ from_seq: string; to_seq: string; state: 'open' | 'lost'; detected_at_ms: string }>(
      `SELECT g.from_seq, g.to_seq, g.state, g.detected_at_ms FROM gaps g JOIN streams s ON s.id = g.stream
       WHERE s.stream_id = $1 ORDER BY g.from_seq`, [streamId]);
    return r.rows.map((g) => ({ fromSeq: Number(g.from_seq), toSeq: Number(g.to_seq), state: g.state, detectedAtMs: Number(g.detected_at_ms) }));
  }

  async rejections(): Promise<RejectionRow[]> {
    const r = await this.pool.query<{ device_id: string; stream_id: string; code: RejectionRow['code']; batches: string; records: string;
      last_error: string; last_at_ms: string }>(
      'SELECT device_id, stream_id, code, batches, records, last_error, last_at_ms FROM rejections ORDER BY last_at_ms DESC');
    return r.rows.map((x) => ({ deviceId: x.device_id, streamId: x.stream_id, code: x.code, batches: Number(x.batches),
      records: Number(x.records), lastError: x.last_error, lastAtMs: Number(x.last_at_ms) }));
  }
}
