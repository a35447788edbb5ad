// Smoke test results (migration 5): one row per device x probe of every `bpfleet smoke`, read
// back as the latest per device x probe (the dashboard's matrix) or as history.
import type Database from 'better-sqlite3';
import { toJsonText } from './json-text.js';
import type { SmokeOutcome, SmokeQuery, SmokeResultRow } from './store.js';

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 100_000;

interface SmokeDbRow {
  id: number; command_id: string; device_id: string; probe: string; version: string; outcome: SmokeOutcome; reason: string;
  run_id: string; stream_id: string; time_to_first_event_ms: number | null; attach_ms: number | null;
  verified_insns: number | null; stored_records: number; detail_json: string; created_at_ms: number;
}

function toRow(r: SmokeDbRow): SmokeResultRow {
  let detail: unknown;
  try { detail = JSON.parse(r.detail_json); } catch { detail = r.detail_json; }
  return {
    id: r.id, commandId: r.command_id, deviceId: r.device_id, probe: r.probe, version: r.version, outcome: r.outcome,
    reason: r.reason, runId: r.run_id, streamId: r.stream_id, timeToFirstEventMs: r.time_to_first_event_ms,
    attachMs: r.attach_ms, verifiedInsns: r.verified_insns, storedRecords: r.stored_records, detail, createdAtMs: r.created_at_ms,
  };
}

export class SqliteSmoke {
  private readonly insert;

  constructor(private readonly db: Database.Database) {
    this.insert = db.prepare(`INSERT INTO smoke_results (command_id, device_id, probe, version, outcome, reason, run_id,
      stream_id, time_to_first_event_ms, attach_ms, verified_insns, stored_records, detail_json, created_at_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  }

  record(rows: SmokeResultRow[]): void {
    this.db.transaction(() => {
      for (const r of rows) {
        this.insert.run(r.commandId, r.deviceId, r.probe, r.version, r.outcome, r.reason, r.runId, r.streamId,
          r.timeToFirstEventMs, r.attachMs, r.verifiedInsns, r.storedRecords, toJsonText(r.detail ?? null), r.createdAtMs);
      }
    }).immediate();
  }

  results(q: SmokeQuery = {}): SmokeResultRow[] {
    const limit = q.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new RangeError(`smoke results: limit must be an integer in 1..${MAX_LIMIT}, got ${limit}`);
    }
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.deviceId !== undefined) { where.push('device_id = ?'); args.push(q.deviceId); }
    if (q.probe !== undefined) { where.push('probe = ?'); args.push(q.probe); }
    if (q.commandId !== undefined) { where.push('command_id = ?'); args.push(q.commandId); }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const sql = q.history
      ? `SELECT * FROM smoke_results ${w} ORDER BY created_at_ms DESC, id DESC LIMIT ?`
      : `SELECT * FROM smoke_results WHERE id IN (
           SELECT max(id) FROM smoke_results ${w} GROUP BY device_id, probe) ORDER BY device_id, probe LIMIT ?`;
    return (this.db.prepare(sql).all(...args, limit) as SmokeDbRow[]).map(toRow);
  }
}
