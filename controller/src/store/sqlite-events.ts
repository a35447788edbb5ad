// Reading events back: decoded records in time order, streams with their cursors, gaps,
// rejections.
import type Database from 'better-sqlite3';
import { decodeRecord } from '@bpfleet/proto';
import { StoreConflictError } from './errors.js';
import type { SqliteManifests } from './sqlite-manifests.js';
import type {
  EventCursor, EventQuery, EventsAfter, EventsAfterQuery, GapRow, RejectionRow, StoredEvent, StreamCursorState, StreamRow,
} from './store.js';

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 1_000_000;

interface BatchRow {
  rid: bigint;
  stream_id: string;
  device_id: string;
  probe: string;
  schema_id: string;
  record_size: bigint;
  first_seq: bigint;
  min_wall_ns: bigint;
  clock_offset_ns: bigint;
  records: Buffer;
  interval_index: Buffer | null;
}

interface Candidate {
  row: BatchRow;
  index: number;
  time: bigint;
}

const byTime = (a: Candidate, b: Candidate): number =>
  a.time < b.time ? -1 : a.time > b.time ? 1
    : a.row.stream_id < b.row.stream_id ? -1 : a.row.stream_id > b.row.stream_id ? 1 : a.index - b.index;

const STREAM_COLUMNS = `s.stream_id, s.device_id, s.probe, s.run_id, s.schema_id, s.record_size, s.next_seq,
  s.stored_records, s.stored_batches, s.duplicate_records, s.open_gap_records, s.lost_gap_records,
  s.filled_gap_records, s.last_batch_at_ms,
  (SELECT min(g.from_seq) FROM gaps g WHERE g.stream = s.id AND g.state = 'open') AS first_open_gap`;

interface StreamDbRow {
  stream_id: string; device_id: string; probe: string; run_id: string; schema_id: string | null;
  record_size: number | null; next_seq: number; stored_records: number; stored_batches: number;
  duplicate_records: number; open_gap_records: number; lost_gap_records: number; filled_gap_records: number;
  last_batch_at_ms: number | null; first_open_gap: number | null;
}

function toStreamRow(r: StreamDbRow): StreamRow {
  return {
    streamId: r.stream_id, deviceId: r.device_id, probe: r.probe, runId: r.run_id, schemaId: r.schema_id,
    recordSize: r.record_size, nextSeq: BigInt(r.next_seq), ackedThrough: BigInt((r.first_open_gap ?? r.next_seq) - 1),
    storedRecords: r.stored_records, storedBatches: r.stored_batches, duplicateRecords: r.duplicate_records,
    openGapRecords: r.open_gap_records, lostGapRecords: r.lost_gap_records, filledGapRecords: r.filled_gap_records,
    lastBatchAtMs: r.last_batch_at_ms,
  };
}

interface AfterRow {
  rid: bigint; stream_id: string; device_id: string; probe: string; schema_id: string; first_seq: bigint;
  clock_offset_ns: bigint; records: Buffer; interval_index: Buffer | null;
}

/**
 * The batches in (cursor, head], oldest first; parameters: cursor, head, then `args`. CROSS JOIN
 * keeps batches the outer loop, walked by rowid: a filter on streams must not make SQLite visit
 * every matching stream and all its batches instead. Exported for the query-plan test.
 */
export function eventsAfterSql(q: EventsAfterQuery): { sql: string; args: string[] } {
  const where = ['b.rowid > ?', 'b.rowid <= ?'];
  const args: string[] = [];
  if (q.deviceId !== undefined) { where.push('s.device_id = ?'); args.push(q.deviceId); }
  if (q.probe !== undefined) { where.push('s.probe = ?'); args.push(q.probe); }
  return {
    sql: `SELECT b.rowid AS rid, s.stream_id, s.device_id, s.probe, s.schema_id, b.first_seq, b.clock_offset_ns,
        b.records, b.interval_index
      FROM batches b CROSS JOIN streams s ON s.id = b.stream
      WHERE ${where.join(' AND ')} ORDER BY b.rowid`,
    args,
  };
}

export class SqliteEvents {
  /** eventsAfter statements by SQL (four shapes): a follower runs one per stored batch it is woken for. */
  private readonly afterStatements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database, private readonly manifests: SqliteManifests) {}

  events(q: EventQuery = {}): StoredEvent[] {
    const limit = q.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new RangeError(`events: limit must be an integer in 1..${MAX_LIMIT}, got ${limit}`);
    }
    const where: string[] = [];
    const args: (string | bigint)[] = [];
    if (q.deviceId !== undefined) { where.push('s.device_id = ?'); args.push(q.deviceId); }
    if (q.probe !== undefined) { where.push('s.probe = ?'); args.push(q.probe); }
    if (q.streamId !== undefined) { where.push('s.stream_id = ?'); args.push(q.streamId); }
    const since = q.sinceUnixNs;
    const batchWhere = [...where];
    const batchArgs = [...args];
    if (since !== undefined) {
      // A batch holding a record at >= since has max_wall >= since, and min_wall no earlier than
      // since minus the widest batch span seen: that lower bound lets the time index do the work.
      const span = this.db.prepare(`SELECT max(s.max_span_ns) AS m FROM streams s ${where.length ? 'WHERE ' + where.join(' AND ') : ''}`)
        .safeIntegers(true).get(...args) as { m: bigint | null };
      batchWhere.push('b.max_wall_ns >= ?', 'b.min_wall_ns >= ?');
      batchArgs.push(since, since - (span.m ?? 0n));
    }
    // Blobs are fetched per batch as needed, so a sort never carries them.
    const blobs = this.db.prepare('SELECT records, interval_index FROM batches WHERE rowid = ?');
    const rows = this.db.prepare(
      `SELECT b.rowid AS rid, s.stream_id, s.device_id, s.probe, s.schema_id, s.record_size, b.first_seq,
         b.min_wall_ns, b.clock_offset_ns
       FROM batches b JOIN streams s ON s.id = b.stream
       ${batchWhere.length ? 'WHERE ' + batchWhere.join(' AND ') : ''}
       ORDER BY b.min_wall_ns, b.stream, b.first_seq`).safeIntegers(true).iterate(...batchArgs) as IterableIterator<BatchRow>;

    let out: Candidate[] = [];
    let threshold: bigint | undefined; // time of the limit-th record so far
    for (const row of rows) {
      // Batches come by min_wall: once one starts after the limit-th record, none can do better.
      if (threshold !== undefined && row.min_wall_ns > threshold) break;
      Object.assign(row, blobs.get(row.rid));
      const schema = this.manifests.schema(row.schema_id);
      if (!schema) throw new StoreConflictError(`stream ${row.stream_id}: manifest ${row.schema_id} missing from the database`);
      const size = Number(row.record_size);
      for (let i = 0, at = 0; at < row.records.length; i++, at += size) {
        const time = row.records.readBigUInt64LE(at + schema.tsOffset) + row.clock_offset_ns;
        if (since !== undefined && time < since) continue;
        if (threshold !== undefined && time > threshold) continue;
        out.push({ row, index: i, time });
      }
      if (out.length >= 2 * limit) { out.sort(byTime); out = out.slice(0, limit); threshold = out[limit - 1]!.time; }
      else if (out.length >= limit && threshold === undefined) { out.sort(byTime); threshold = out[limit - 1]!.time; }
    }
    out.sort(byTime);
    return out.slice(0, limit).map(({ row, index, time }) => {
      const schema = this.manifests.schema(row.schema_id)!;
      const size = schema.recordSize;
      const ev: StoredEvent = {
        streamId: row.stream_id, deviceId: row.device_id, probe: row.probe, seq: Number(row.first_seq) + index,
        timeUnixNs: time, fields: decodeRecord(schema.manifest, row.records.subarray(index * size, (index + 1) * size)),
      };
      if (row.interval_index) ev.interval = row.interval_index.readUInt32LE(index * 4);
      return ev;
    });
  }

  // The cursor is the rowid of batches. SQLite has one writer at a time and gives a new row
  // max(rowid) + 1, so rowids grow in commit order. They are reused only when the rows holding the
  // highest rowids are deleted; nothing deletes batches (a retention that did would have to keep
  // the newest row, or switch the table to AUTOINCREMENT).
  eventsHead(): EventCursor {
    const r = this.db.prepare('SELECT max(rowid) AS h FROM batches').safeIntegers(true).get() as { h: bigint | null };
    return String(r.h ?? 0n);
  }

  eventsAfter(cursor: EventCursor, q: EventsAfterQuery = {}): EventsAfter {
    if (!/^(0|[1-9]\d{0,18})$/.test(cursor)) {
      throw new RangeError(`events cursor "${cursor}" is not one of this SQLite store's (a batch rowid)`);
    }
    const limit = q.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new RangeError(`eventsAfter: limit must be an integer in 1..${MAX_LIMIT}, got ${limit}`);
    }
    // One read transaction: the head and the rows come from the same snapshot (another process
    // may write the file).
    return this.db.transaction(() => {
      const head = BigInt(this.eventsHead());
      const { sql, args } = eventsAfterSql(q);
      let stmt = this.afterStatements.get(sql);
      if (!stmt) this.afterStatements.set(sql, stmt = this.db.prepare(sql).safeIntegers(true));
      const rows = stmt.iterate(BigInt(cursor), head, ...args) as IterableIterator<AfterRow>;
      const events: StoredEvent[] = [];
      let at = head;
      let more = false;
      for (const row of rows) {
        if (events.length >= limit) { more = true; break; }
        const schema = this.manifests.schema(row.schema_id);
        if (!schema) throw new StoreConflictError(`stream ${row.stream_id}: manifest ${row.schema_id} missing from the database`);
        for (let i = 0, off = 0; off < row.records.length; i++, off += schema.recordSize) {
          const ev: StoredEvent = {
            streamId: row.stream_id, deviceId: row.device_id, probe: row.probe, seq: Number(row.first_seq) + i,
            timeUnixNs: row.records.readBigUInt64LE(off + schema.tsOffset) + row.clock_offset_ns,
            fields: decodeRecord(schema.manifest, row.records.subarray(off, off + schema.recordSize)),
          };
          if (row.interval_index) ev.interval = row.interval_index.readUInt32LE(i * 4);
          events.push(ev);
        }
        at = row.rid;
      }
      return { events, cursor: String(more ? at : head), more };
    })();
  }

  streams(filter: { deviceId?: string } = {}): StreamRow[] {
    const rows = filter.deviceId === undefined
      ? this.db.prepare(`SELECT ${STREAM_COLUMNS} FROM streams s ORDER BY s.stream_id`).all()
      : this.db.prepare(`SELECT ${STREAM_COLUMNS} FROM streams s WHERE s.device_id = ? ORDER BY s.stream_id`).all(filter.deviceId);
    return (rows as StreamDbRow[]).map(toStreamRow);
  }

  cursor(streamId: string): StreamCursorState | undefined {
    const r = this.db.prepare(`SELECT ${STREAM_COLUMNS} FROM streams s WHERE s.stream_id = ?`).get(streamId) as StreamDbRow | undefined;
    if (!r) return undefined;
    const s = toStreamRow(r);
    return { streamId, ackedThrough: s.ackedThrough, nextSeq: s.nextSeq, gapRecords: s.openGapRecords + s.lostGapRecords };
  }

  gaps(streamId: string): GapRow[] {
    const rows = this.db.prepare(
      `SELECT g.from_seq, g.to_seq, g.state, g.detected_at_ms FROM gaps g JOIN streams s ON s.id = g.stream
       WHERE s.stream_id = ? ORDER BY g.from_seq`).all(streamId) as
      { from_seq: number; to_seq: number; state: 'open' | 'lost'; detected_at_ms: number }[];
    return rows.map((r) => ({ fromSeq: r.from_seq, toSeq: r.to_seq, state: r.state, detectedAtMs: r.detected_at_ms }));
  }

  rejections(): RejectionRow[] {
    const rows = this.db.prepare(
      'SELECT device_id, stream_id, code, batches, records, last_error, last_at_ms FROM rejections ORDER BY last_at_ms DESC').all() as
      { device_id: string; stream_id: string; code: RejectionRow['code']; batches: number; records: number; last_error: string; last_at_ms: number }[];
    return rows.map((r) => ({ deviceId: r.device_id, streamId: r.stream_id, code: r.code, batches: r.batches,
      records: r.records, lastError: r.last_error, lastAtMs: r.last_at_ms }));
  }
}
