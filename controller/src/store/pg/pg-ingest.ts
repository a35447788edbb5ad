// Exactly-once ingest into PostgreSQL, safe with several controllers writing the same stream.
//
// One transaction (READ COMMITTED) per group of batches:
//   1. check every batch (batch-check.ts: the same refusals as SQLite, nothing written for them);
//   2. lock the rows of all streams the group touches, in stream_id order (SELECT ... FOR UPDATE;
//      missing streams are inserted first). A second controller ingesting one of these streams
//      waits here until this transaction ends, and then reads the cursor this one committed
//      (READ COMMITTED re-reads a row it waited for, and every later statement sees the commit);
//   3. plan each batch against the locked cursor and gaps (seq-ranges.ts, shared with SQLite),
//      in order, so batches of one stream within the group see each other;
//   4. write the new pieces in one multi-row INSERT, the cursors in one UPDATE, gap changes and
//      rejections as they come.
// The primary key (stream, first_seq) is the backstop; the stream lock is what keeps a seq from
// being stored twice. Deadlocks (two groups creating streams in crossing orders) abort one
// transaction, which the caller retries whole.
import type { PoolClient } from 'pg';
import type { EventBatch } from '@bpfleet/proto';
import { checkBatch, FIRST_SEQ, tsRange, type CheckedBatch, type Schema, type StreamKey } from '../batch-check.js';
import { BatchRejectedError } from '../errors.js';
import { ackedThrough, planIngest, planLoss, type Gap } from '../seq-ranges.js';
import type { IngestItem, IngestOutcome, StreamCursorState } from '../store.js';
import type { PgManifests } from './pg-manifests.js';

interface StreamState {
  id: string;
  schemaId: string | null;
  nextSeq: number;
  open: number;
  lost: number;
  // changes of this transaction, written once at the end
  dirty: boolean;
  setSchema: { schemaId: string; recordSize: number } | null;
  dStored: number;
  dBatches: number;
  dDuplicate: number;
  dFilled: number;
  maxSpan: bigint;
}

interface StreamDbRow {
  id: string; stream_id: string; schema_id: string | null; next_seq: string; open_gap_records: string; lost_gap_records: string;
}

interface PieceRow {
  stream: string; firstSeq: number; count: number; minWall: bigint; maxWall: bigint; offset: bigint; records: Buffer;
  intervals: Buffer | null;
}

/** Rows per INSERT of stored pieces: 8 parameters each, far below PostgreSQL's 65,535. */
const PIECES_PER_INSERT = 1000;

const LOCK_SQL = `SELECT id, stream_id, schema_id, next_seq, open_gap_records, lost_gap_records FROM streams
  WHERE stream_id = ANY($1::text[]) ORDER BY stream_id FOR UPDATE`;

function u32le(values: readonly number[], from: number, to: number): Buffer {
  const out = Buffer.allocUnsafe((to - from) * 4);
  for (let i = from; i < to; i++) out.writeUInt32LE(values[i]!, (i - from) * 4);
  return out;
}

const toState = (r: StreamDbRow): StreamState => ({
  id: r.id, schemaId: r.schema_id, nextSeq: Number(r.next_seq), open: Number(r.open_gap_records), lost: Number(r.lost_gap_records),
  dirty: false, setSchema: null, dStored: 0, dBatches: 0, dDuplicate: 0, dFilled: 0, maxSpan: 0n,
});

type GapDbRow = { from_seq: string; to_seq: string; state: 'open' | 'lost'; detected_at_ms: string };
const toGap = (r: GapDbRow): Gap => ({ from: Number(r.from_seq), to: Number(r.to_seq), state: r.state, detectedAtMs: Number(r.detected_at_ms) });

/** Locks (creating where missing) the stream rows of `keys`, in stream_id order. */
async function lockStreams(c: PoolClient, keys: Map<string, StreamKey>, nowMs: number): Promise<Map<string, StreamState>> {
  const ids = [...keys.keys()].sort();
  const out = new Map<string, StreamState>();
  if (ids.length === 0) return out;
  for (const r of (await c.query<StreamDbRow>(LOCK_SQL, [ids])).rows) out.set(r.stream_id, toState(r));
  const missing = ids.filter((id) => !out.has(id));
  if (missing.length > 0) {
    const k = missing.map((id) => keys.get(id)!);
    // next_seq is set explicitly: streams start at seq 1.
    await c.query(`INSERT INTO streams (stream_id, device_id, probe, run_id, created_at_ms, next_seq)
      SELECT s, d, p, r, $5, ${FIRST_SEQ} FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(s, d, p, r)
      ON CONFLICT (stream_id) DO NOTHING`,
      [missing, k.map((x) => x.deviceId), k.map((x) => x.probe), k.map((x) => x.runId), nowMs]);
    for (const r of (await c.query<StreamDbRow>(LOCK_SQL, [missing])).rows) out.set(r.stream_id, toState(r));
  }
  return out;
}

async function firstOpenGap(c: PoolClient, stream: string): Promise<number | undefined> {
  const r = await c.query<{ f: string | null }>("SELECT min(from_seq) AS f FROM gaps WHERE stream = $1 AND state = 'open'", [stream]);
  const f = r.rows[0]?.f;
  return f === null || f === undefined ? undefined : Number(f);
}

async function applyGapChanges(c: PoolClient, stream: string, removed: readonly Gap[], added: readonly Gap[]): Promise<void> {
  if (removed.length > 0) {
    await c.query('DELETE FROM gaps WHERE stream = $1 AND from_seq = ANY($2::bigint[])', [stream, removed.map((g) => g.from)]);
  }
  if (added.length > 0) {
    await c.query(`INSERT INTO gaps (stream, from_seq, to_seq, state, detected_at_ms)
      SELECT $1, f, t, s, d FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[]) AS u(f, t, s, d)`,
    [stream, added.map((g) => g.from), added.map((g) => g.to), added.map((g) => g.state), added.map((g) => g.detectedAtMs)]);
  }
}

async function recordRejection(c: PoolClient, err: BatchRejectedError, batch: EventBatch, nowMs: number): Promise<void> {
  await c.query(`INSERT INTO rejections (device_id, stream_id, code, batches, records, last_error, last_at_ms)
    VALUES ($1, $2, $3, 1, $4, $5, $6)
    ON CONFLICT (device_id, stream_id, code) DO UPDATE SET batches = rejections.batches + 1,
      records = rejections.records + excluded.records, last_error = excluded.last_error, last_at_ms = excluded.last_at_ms`,
  [err.deviceId, batch.streamId, err.code, batch.count, err.message, nowMs]);
}

/** Ingests `items` inside the caller's open transaction. A rejection is counted, not thrown. */
export async function ingestInTx(c: PoolClient, manifests: PgManifests, items: readonly IngestItem[], nowMs: number): Promise<IngestOutcome[]> {
  const out: (IngestOutcome | undefined)[] = new Array(items.length);
  const checked: ({ schema: Schema; ck: CheckedBatch } | undefined)[] = new Array(items.length);
  const keys = new Map<string, StreamKey>();
  for (let i = 0; i < items.length; i++) {
    const { deviceId, batch } = items[i]!;
    try {
      const schema = await manifests.schema(c, batch.schemaId);
      const ck = checkBatch(deviceId, batch, schema);
      checked[i] = { schema: schema!, ck };
      keys.set(batch.streamId, ck.key);
    } catch (err) {
      if (!(err instanceof BatchRejectedError)) throw err;
      out[i] = { ok: false, error: err };
    }
  }
  const streams = await lockStreams(c, keys, nowMs);
  const pieces: PieceRow[] = [];
  for (let i = 0; i < items.length; i++) {
    const { deviceId, batch } = items[i]!;
    const prior = out[i];
    if (prior) {
      if (!prior.ok) await recordRejection(c, prior.error, batch, nowMs);
      continue;
    }
    const { schema, ck: { lo, hi } } = checked[i]!;
    const st = streams.get(batch.streamId)!;
    if (st.schemaId && st.schemaId !== batch.schemaId) {
      const error = new BatchRejectedError('schema_mismatch', `batch of stream "${batch.streamId}" rejected: schema ` +
        `${batch.schemaId}, but the stream was started with ${st.schemaId}; a new loader version needs a new run`,
      deviceId, batch.streamId, batch.count);
      await recordRejection(c, error, batch, nowMs);
      out[i] = { ok: false, error };
      continue;
    }
    if (!st.schemaId) {
      st.schemaId = batch.schemaId;
      st.setSchema = { schemaId: batch.schemaId, recordSize: schema.recordSize };
    }
    const gaps = st.open + st.lost > 0 && lo < st.nextSeq
      ? (await c.query<GapDbRow>(`SELECT from_seq, to_seq, state, detected_at_ms FROM gaps
          WHERE stream = $1 AND from_seq < $2 AND to_seq > $3 ORDER BY from_seq`, [st.id, Math.min(hi, st.nextSeq), lo])).rows.map(toGap)
      : [];
    const plan = planIngest(st.nextSeq, gaps, lo, hi);
    const added = plan.newGap ? [...plan.added, { ...plan.newGap, state: 'open' as const, detectedAtMs: nowMs }] : plan.added;
    await applyGapChanges(c, st.id, plan.removed, added);

    const size = schema.recordSize;
    for (const p of plan.pieces) {
      const records = batch.records.subarray((p.from - lo) * size, (p.to - lo) * size);
      const ts = tsRange(records, size, schema.tsOffset);
      if (ts.max - ts.min > st.maxSpan) st.maxSpan = ts.max - ts.min;
      pieces.push({ stream: st.id, firstSeq: p.from, count: p.to - p.from, minWall: ts.min + batch.clockOffsetNs,
        maxWall: ts.max + batch.clockOffsetNs, offset: batch.clockOffsetNs, records,
        intervals: batch.intervalIndex.length === 0 ? null : u32le(batch.intervalIndex, p.from - lo, p.to - lo) });
    }
    const newGapRecords = plan.newGap ? plan.newGap.to - plan.newGap.from : 0;
    st.open = st.open - plan.filledOpen + newGapRecords;
    st.lost -= plan.filledLost;
    st.nextSeq = plan.nextSeq;
    st.dStored += plan.stored;
    st.dBatches += plan.pieces.length;
    st.dDuplicate += plan.duplicate;
    st.dFilled += plan.filledOpen + plan.filledLost;
    st.dirty = true;
    out[i] = {
      ok: true, stored: plan.stored, duplicate: plan.duplicate, gapRecords: newGapRecords,
      filled: plan.filledOpen + plan.filledLost,
      ackedThrough: BigInt(ackedThrough(st.nextSeq, st.open > 0 ? await firstOpenGap(c, st.id) : undefined)),
    };
  }
  // One multi-row INSERT per group; the records go as separate Buffer parameters, which node-pg
  // sends in binary (a bytea[] array would be hex text both ways: twice the bytes, and parsing).
  for (let at = 0; at < pieces.length; at += PIECES_PER_INSERT) {
    const chunk = pieces.slice(at, at + PIECES_PER_INSERT);
    const args: unknown[] = [nowMs];
    const rows = chunk.map((p) => {
      const i = args.length;
      args.push(p.stream, p.firstSeq, p.count, p.minWall.toString(), p.maxWall.toString(), p.offset.toString(), p.records, p.intervals);
      return `($${i + 1}::bigint, $${i + 2}::bigint, $${i + 3}::integer, $${i + 4}::bigint, $${i + 5}::bigint, $${i + 6}::bigint, $1::bigint, ` +
        `$${i + 7}::bytea, $${i + 8}::bytea)`;
    });
    await c.query(`INSERT INTO batches (stream, first_seq, count, min_wall_ns, max_wall_ns, clock_offset_ns, received_at_ms,
      records, interval_index) VALUES ${rows.join(', ')}`, args);
  }
  const dirty = [...streams.values()].filter((s) => s.dirty);
  if (dirty.length > 0) {
    await c.query(`UPDATE streams s SET next_seq = u.n, stored_records = s.stored_records + u.st,
        stored_batches = s.stored_batches + u.b, duplicate_records = s.duplicate_records + u.d, open_gap_records = u.o,
        lost_gap_records = u.l, filled_gap_records = s.filled_gap_records + u.f, max_span_ns = greatest(s.max_span_ns, u.sp),
        last_batch_at_ms = $11, schema_id = coalesce(s.schema_id, u.sc), record_size = coalesce(s.record_size, u.rs)
      FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
        $8::bigint[], $9::bigint[], $10::text[], $12::integer[]) AS u(id, n, st, b, d, o, l, f, sp, sc, rs)
      WHERE s.id = u.id`,
    [dirty.map((s) => s.id), dirty.map((s) => s.nextSeq), dirty.map((s) => s.dStored), dirty.map((s) => s.dBatches),
      dirty.map((s) => s.dDuplicate), dirty.map((s) => s.open), dirty.map((s) => s.lost), dirty.map((s) => s.dFilled),
      dirty.map((s) => s.maxSpan.toString()), dirty.map((s) => s.setSchema?.schemaId ?? null), nowMs,
      dirty.map((s) => s.setSchema?.recordSize ?? null)]);
  }
  return out as IngestOutcome[];
}

/** Open gaps below firstHeld become lost, under the stream lock; inside the caller's transaction. */
export async function declareLostInTx(c: PoolClient, streamId: string, key: StreamKey, firstHeld: number, nowMs: number): Promise<StreamCursorState> {
  const st = (await lockStreams(c, new Map([[streamId, key]]), nowMs)).get(streamId)!;
  const open = (await c.query<GapDbRow>(
    "SELECT from_seq, to_seq, state, detected_at_ms FROM gaps WHERE stream = $1 AND state = 'open' ORDER BY from_seq", [st.id])).rows.map(toGap);
  const plan = planLoss(st.nextSeq, open, firstHeld, nowMs);
  await applyGapChanges(c, st.id, plan.removed, plan.added);
  const fromOpen = plan.lost - (plan.newLost ? plan.newLost.to - plan.newLost.from : 0);
  const openRecords = st.open - fromOpen;
  const lost = st.lost + plan.lost;
  await c.query('UPDATE streams SET next_seq = $1, open_gap_records = $2, lost_gap_records = $3 WHERE id = $4',
    [plan.nextSeq, openRecords, lost, st.id]);
  return {
    streamId,
    ackedThrough: BigInt(ackedThrough(plan.nextSeq, openRecords > 0 ? await firstOpenGap(c, st.id) : undefined)),
    nextSeq: BigInt(plan.nextSeq),
    gapRecords: openRecords + lost,
  };
}
