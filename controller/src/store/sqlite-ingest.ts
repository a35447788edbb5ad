// Exactly-once ingest into SQLite. Each batch: check it (nothing written if it fails), look up
// the stream's cursor, plan which seqs are new (seq-ranges.ts), write those pieces and the gap
// changes, update the cursor. The caller wraps one or many batches in one transaction.
import type Database from 'better-sqlite3';
import type { EventBatch } from '@bpfleet/proto';
import { checkBatch, FIRST_SEQ, tsRange, type Schema } from './batch-check.js';
import { BatchRejectedError } from './errors.js';
import { ackedThrough, planIngest, planLoss, type Gap } from './seq-ranges.js';
import type { IngestOutcome, StreamCursorState } from './store.js';
import type { SqliteManifests } from './sqlite-manifests.js';

interface StreamState {
  id: number;
  schema_id: string | null;
  next_seq: number;
  open_gap_records: number;
  lost_gap_records: number;
}

interface GapDbRow {
  from_seq: number;
  to_seq: number;
  state: 'open' | 'lost';
  detected_at_ms: number;
}

function u32le(values: readonly number[], from: number, to: number): Buffer {
  const out = Buffer.allocUnsafe((to - from) * 4);
  for (let i = from; i < to; i++) out.writeUInt32LE(values[i]!, (i - from) * 4);
  return out;
}

const toGap = (r: GapDbRow): Gap => ({ from: r.from_seq, to: r.to_seq, state: r.state, detectedAtMs: r.detected_at_ms });

export class SqliteIngest {
  private readonly s;

  constructor(private readonly db: Database.Database, private readonly manifests: SqliteManifests) {
    this.s = {
      stream: db.prepare<[string], StreamState>(
        'SELECT id, schema_id, next_seq, open_gap_records, lost_gap_records FROM streams WHERE stream_id = ?'),
      // next_seq is set here, not by the column default (0, from before streams started at 1).
      newStream: db.prepare<[string, string, string, string, number, number], { id: number }>(
        `INSERT INTO streams (stream_id, device_id, probe, run_id, created_at_ms, next_seq) VALUES (?, ?, ?, ?, ?, ?)
         RETURNING id`),
      setSchema: db.prepare<[string, number, number]>('UPDATE streams SET schema_id = ?, record_size = ? WHERE id = ?'),
      gapsIn: db.prepare<[number, number, number], GapDbRow>(
        'SELECT from_seq, to_seq, state, detected_at_ms FROM gaps WHERE stream = ? AND from_seq < ? AND to_seq > ? ORDER BY from_seq'),
      openGaps: db.prepare<[number], GapDbRow>(
        "SELECT from_seq, to_seq, state, detected_at_ms FROM gaps WHERE stream = ? AND state = 'open' ORDER BY from_seq"),
      firstOpenGap: db.prepare<[number], { f: number | null }>(
        "SELECT min(from_seq) AS f FROM gaps WHERE stream = ? AND state = 'open'"),
      delGap: db.prepare<[number, number]>('DELETE FROM gaps WHERE stream = ? AND from_seq = ?'),
      addGap: db.prepare<[number, number, number, string, number]>(
        'INSERT INTO gaps (stream, from_seq, to_seq, state, detected_at_ms) VALUES (?, ?, ?, ?, ?)'),
      addBatch: db.prepare<[number, number, number, bigint, bigint, bigint, number, Buffer, Buffer | null]>(
        `INSERT INTO batches (stream, first_seq, count, min_wall_ns, max_wall_ns, clock_offset_ns, received_at_ms,
           records, interval_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      update: db.prepare<[number, number, number, number, number, number, number, bigint, number, number]>(
        `UPDATE streams SET next_seq = ?, stored_records = stored_records + ?, stored_batches = stored_batches + ?,
           duplicate_records = duplicate_records + ?, open_gap_records = ?, lost_gap_records = ?,
           filled_gap_records = filled_gap_records + ?, max_span_ns = max(max_span_ns, ?), last_batch_at_ms = ?
         WHERE id = ?`),
      setCursor: db.prepare<[number, number, number, number]>(
        'UPDATE streams SET next_seq = ?, open_gap_records = ?, lost_gap_records = ? WHERE id = ?'),
      reject: db.prepare<[string, string, string, number, string, number]>(
        `INSERT INTO rejections (device_id, stream_id, code, batches, records, last_error, last_at_ms)
         VALUES (?, ?, ?, 1, ?, ?, ?)
         ON CONFLICT (device_id, stream_id, code) DO UPDATE SET batches = batches + 1,
           records = records + excluded.records, last_error = excluded.last_error, last_at_ms = excluded.last_at_ms`),
    };
  }

  /** Ingests one batch; must run inside a transaction. A rejection is counted, not thrown. */
  one(deviceId: string, batch: EventBatch, nowMs: number): IngestOutcome {
    let schema: Schema | undefined, stream: StreamState | undefined, lo: number, hi: number;
    try {
      schema = this.manifests.schema(batch.schemaId);
      const checked = checkBatch(deviceId, batch, schema);
      ({ lo, hi } = checked);
      stream = this.s.stream.get(batch.streamId);
      if (stream?.schema_id && stream.schema_id !== batch.schemaId) {
        throw new BatchRejectedError('schema_mismatch', `batch of stream "${batch.streamId}" rejected: schema ` +
          `${batch.schemaId}, but the stream was started with ${stream.schema_id}; a new loader version needs a new run`,
          deviceId, batch.streamId, batch.count);
      }
      if (!stream) {
        const { key } = checked;
        const { id } = this.s.newStream.get(batch.streamId, key.deviceId, key.probe, key.runId, nowMs, FIRST_SEQ)!;
        stream = { id, schema_id: null, next_seq: FIRST_SEQ, open_gap_records: 0, lost_gap_records: 0 };
      }
    } catch (err) {
      if (!(err instanceof BatchRejectedError)) throw err;
      this.s.reject.run(deviceId, batch.streamId, err.code, batch.count, err.message, nowMs);
      return { ok: false, error: err };
    }
    if (!stream.schema_id) this.s.setSchema.run(batch.schemaId, schema!.recordSize, stream.id);

    const hasGaps = stream.open_gap_records + stream.lost_gap_records > 0;
    const gaps = hasGaps && lo < stream.next_seq
      ? this.s.gapsIn.all(stream.id, Math.min(hi, stream.next_seq), lo).map(toGap) : [];
    const plan = planIngest(stream.next_seq, gaps, lo, hi);

    for (const g of plan.removed) this.s.delGap.run(stream.id, g.from);
    for (const g of plan.added) this.s.addGap.run(stream.id, g.from, g.to, g.state, g.detectedAtMs);
    if (plan.newGap) this.s.addGap.run(stream.id, plan.newGap.from, plan.newGap.to, 'open', nowMs);

    const size = schema!.recordSize;
    let maxSpan = 0n;
    for (const p of plan.pieces) {
      const records = batch.records.subarray((p.from - lo) * size, (p.to - lo) * size);
      const ts = tsRange(records, size, schema!.tsOffset);
      if (ts.max - ts.min > maxSpan) maxSpan = ts.max - ts.min;
      const intervals = batch.intervalIndex.length === 0 ? null : u32le(batch.intervalIndex, p.from - lo, p.to - lo);
      this.s.addBatch.run(stream.id, p.from, p.to - p.from, ts.min + batch.clockOffsetNs, ts.max + batch.clockOffsetNs,
        batch.clockOffsetNs, nowMs, records, intervals);
    }
    const newGapRecords = plan.newGap ? plan.newGap.to - plan.newGap.from : 0;
    const open = stream.open_gap_records - plan.filledOpen + newGapRecords;
    const lost = stream.lost_gap_records - plan.filledLost;
    this.s.update.run(plan.nextSeq, plan.stored, plan.pieces.length, plan.duplicate, open, lost,
      plan.filledOpen + plan.filledLost, maxSpan, nowMs, stream.id);
    return {
      ok: true,
      stored: plan.stored,
      duplicate: plan.duplicate,
      gapRecords: newGapRecords,
      filled: plan.filledOpen + plan.filledLost,
      ackedThrough: BigInt(this.acked(stream.id, plan.nextSeq, open)),
    };
  }

  /** Open gaps below firstHeld become lost; must run inside a transaction. */
  declareLost(streamId: string, streamKey: { deviceId: string; probe: string; runId: string }, firstHeld: number,
    nowMs: number): StreamCursorState {
    let stream = this.s.stream.get(streamId);
    if (!stream) {
      const { id } = this.s.newStream.get(streamId, streamKey.deviceId, streamKey.probe, streamKey.runId, nowMs, FIRST_SEQ)!;
      stream = { id, schema_id: null, next_seq: FIRST_SEQ, open_gap_records: 0, lost_gap_records: 0 };
    }
    const plan = planLoss(stream.next_seq, this.s.openGaps.all(stream.id).map(toGap), firstHeld, nowMs);
    for (const g of plan.removed) this.s.delGap.run(stream.id, g.from);
    for (const g of plan.added) this.s.addGap.run(stream.id, g.from, g.to, g.state, g.detectedAtMs);
    const fromOpen = plan.lost - (plan.newLost ? plan.newLost.to - plan.newLost.from : 0);
    const open = stream.open_gap_records - fromOpen;
    const lost = stream.lost_gap_records + plan.lost;
    this.s.setCursor.run(plan.nextSeq, open, lost, stream.id);
    return {
      streamId,
      ackedThrough: BigInt(this.acked(stream.id, plan.nextSeq, open)),
      nextSeq: BigInt(plan.nextSeq),
      gapRecords: open + lost,
    };
  }

  private acked(stream: number, nextSeq: number, openGapRecords: number): number {
    const first = openGapRecords > 0 ? this.s.firstOpenGap.get(stream)?.f ?? undefined : undefined;
    return ackedThrough(nextSeq, first);
  }
}
