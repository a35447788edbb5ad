// Pipeline stats, heartbeats and smoke test results in PostgreSQL.
import type { Pool } from 'pg';
import type { Heartbeat, PipelineStats } from '@bpfleet/proto';
import { parseStreamId } from '../batch-check.js';
import { StoreConflictError } from '../errors.js';
import { toJsonText } from '../json-text.js';
import type { HeartbeatRow, PipelineStatsRow, SmokeOutcome, SmokeQuery, SmokeResultRow } from '../store.js';
import type { InTx } from './pg-registry.js';

const STAT_COLUMNS = ['records', 'kernel_ringbuf_full', 'kernel_map_full', 'kernel_sampled_out', 'kernel_read_failed',
  'loader_lost', 'agent_queue_dropped', 'spool_evicted', 'spool_corrupt'] as const;

type StatsDbRow = { stream_id: string; device_id: string; sample_unix_ns: string } & Record<(typeof STAT_COLUMNS)[number], string>;

const SMOKE_DEFAULT_LIMIT = 1000;
const SMOKE_MAX_LIMIT = 100_000;

const big = (v: bigint | undefined): string => (v ?? 0n).toString();
const num = (v: string | null): number | null => (v === null ? null : Number(v));

export class PgTelemetry {
  constructor(private readonly pool: Pool, private readonly tx: InTx) {}

  recordPipelineStats(deviceId: string, st: PipelineStats, nowMs: number): Promise<void> {
    const key = parseStreamId(st.streamId);
    if (!key || key.deviceId !== deviceId) {
      return Promise.reject(new StoreConflictError(`pipeline stats for stream "${st.streamId}" from device ${deviceId}: ` +
        'a device reports only its own streams, named "<device>/<probe>/<run>"'));
    }
    const values = [st.records, st.kernelRingbufFull, st.kernelMapFull, st.kernelSampledOut, st.kernelReadFailed,
      st.loaderLost, st.agentQueueDropped, st.spoolEvicted, st.spoolCorrupt].map(big);
    return this.tx(async (c) => {
      await c.query(`INSERT INTO stream_stats (stream_id, device_id, sample_unix_ns, received_at_ms, ${STAT_COLUMNS.join(', ')})
        VALUES ($1, $2, $3, $4, ${STAT_COLUMNS.map((_, i) => `$${i + 5}`).join(', ')})
        ON CONFLICT (stream_id) DO UPDATE SET sample_unix_ns = excluded.sample_unix_ns, received_at_ms = excluded.received_at_ms,
          ${STAT_COLUMNS.map((col) => `${col} = excluded.${col}`).join(', ')}
        WHERE excluded.sample_unix_ns >= stream_stats.sample_unix_ns`, [st.streamId, deviceId, big(st.timeUnixNs), nowMs, ...values]);
      await c.query('INSERT INTO stream_stats_history (stream_id, sample_unix_ns, received_at_ms, stats_json) VALUES ($1, $2, $3, $4)',
        [st.streamId, big(st.timeUnixNs), nowMs, toJsonText(st)]);
    });
  }

  recordHeartbeat(deviceId: string, hb: Heartbeat, nowMs: number): Promise<void> {
    const m = hb.metrics;
    return this.tx(async (c) => {
      const seen = await c.query('UPDATE devices SET last_seen_ms = $1, online = true WHERE id = $2', [nowMs, deviceId]);
      if (seen.rowCount === 0) throw new StoreConflictError(`heartbeat from unknown device ${deviceId}: enroll it first`);
      await c.query(`INSERT INTO heartbeats (device_id, time_unix_ns, received_at_ms, cpu_busy, load1, load5, load15,
          mem_available_bytes, mem_total_bytes, agent_cpu_ns, agent_rss_bytes, net_rx_bytes, net_tx_bytes, spool_bytes)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
      [deviceId, big(hb.timeUnixNs), nowMs, m?.cpuBusy ?? 0, m?.load1 ?? 0, m?.load5 ?? 0, m?.load15 ?? 0,
        big(m?.memAvailableBytes), big(m?.memTotalBytes), big(m?.agentCpuNs), big(m?.agentRssBytes), big(m?.netRxBytes),
        big(m?.netTxBytes), big(hb.spoolBytes)]);
    });
  }

  async heartbeats(deviceId: string, limit = 100): Promise<HeartbeatRow[]> {
    const r = await this.pool.query<Record<string, string>>(
      'SELECT * FROM heartbeats WHERE device_id = $1 ORDER BY time_unix_ns DESC LIMIT $2', [deviceId, limit]);
    return r.rows.map((x) => ({
      deviceId: x['device_id']!, timeUnixNs: BigInt(x['time_unix_ns']!), receivedAtMs: Number(x['received_at_ms']),
      cpuBusy: Number(x['cpu_busy']), load1: Number(x['load1']), load5: Number(x['load5']), load15: Number(x['load15']),
      memAvailableBytes: BigInt(x['mem_available_bytes']!), memTotalBytes: BigInt(x['mem_total_bytes']!),
      agentCpuNs: BigInt(x['agent_cpu_ns']!), agentRssBytes: BigInt(x['agent_rss_bytes']!),
      netRxBytes: BigInt(x['net_rx_bytes']!), netTxBytes: BigInt(x['net_tx_bytes']!), spoolBytes: BigInt(x['spool_bytes']!),
    }));
  }

  /** One row per (device, stream) known from stats, stored batches or rejections. */
  async pipelineStats(filter: { deviceId?: string } = {}): Promise<PipelineStatsRow[]> {
    const dev = filter.deviceId;
    const by = (col: string): string => (dev === undefined ? '' : `WHERE ${col} = $1`);
    const args = dev === undefined ? [] : [dev];
    const stats = (await this.pool.query<StatsDbRow>(`SELECT * FROM stream_stats ${by('device_id')}`, args)).rows;
    const streams = (await this.pool.query<{ stream_id: string; device_id: string; stored_records: string; duplicate_records: string;
      open_gap_records: string; lost_gap_records: string }>(
      `SELECT stream_id, device_id, stored_records, duplicate_records, open_gap_records, lost_gap_records
       FROM streams ${by('device_id')}`, args)).rows;
    const rejected = (await this.pool.query<{ device_id: string; stream_id: string; batches: string; records: string }>(
      `SELECT device_id, stream_id, sum(batches) AS batches, sum(records) AS records FROM rejections ${by('device_id')}
       GROUP BY device_id, stream_id`, args)).rows;

    const rows = new Map<string, PipelineStatsRow>();
    const row = (deviceId: string, streamId: string): PipelineStatsRow => {
      const k = `${deviceId}\n${streamId}`;
      let r = rows.get(k);
      if (!r) {
        r = { streamId, deviceId, sampleUnixNs: null, records: 0n, kernelRingbufFull: 0n, kernelMapFull: 0n,
          kernelSampledOut: 0n, kernelReadFailed: 0n, loaderLost: 0n, agentQueueDropped: 0n, spoolEvicted: 0n,
          spoolCorrupt: 0n, storedRecords: 0, duplicateRecords: 0, gapRecords: 0, openGapRecords: 0,
          rejectedBatches: 0, rejectedRecords: 0 };
        rows.set(k, r);
      }
      return r;
    };
    for (const s of stats) {
      Object.assign(row(s.device_id, s.stream_id), {
        sampleUnixNs: BigInt(s.sample_unix_ns), records: BigInt(s.records), kernelRingbufFull: BigInt(s.kernel_ringbuf_full),
        kernelMapFull: BigInt(s.kernel_map_full), kernelSampledOut: BigInt(s.kernel_sampled_out),
        kernelReadFailed: BigInt(s.kernel_read_failed), loaderLost: BigInt(s.loader_lost),
        agentQueueDropped: BigInt(s.agent_queue_dropped), spoolEvicted: BigInt(s.spool_evicted), spoolCorrupt: BigInt(s.spool_corrupt),
      });
    }
    for (const s of streams) {
      const open = Number(s.open_gap_records), lost = Number(s.lost_gap_records);
      Object.assign(row(s.device_id, s.stream_id), {
        storedRecords: Number(s.stored_records), duplicateRecords: Number(s.duplicate_records), gapRecords: open + lost, openGapRecords: open,
      });
    }
    for (const r of rejected) {
      Object.assign(row(r.device_id, r.stream_id), { rejectedBatches: Number(r.batches), rejectedRecords: Number(r.records) });
    }
    return [...rows.values()].sort((a, b) => (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : 0));
  }

  recordSmokeResults(rows: SmokeResultRow[]): Promise<void> {
    return this.tx(async (c) => {
      for (const r of rows) {
        await c.query(`INSERT INTO smoke_results (command_id, device_id, probe, version, outcome, reason, run_id, stream_id,
            time_to_first_event_ms, attach_ms, verified_insns, stored_records, detail_json, created_at_ms)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        [r.commandId, r.deviceId, r.probe, r.version, r.outcome, r.reason, r.runId, r.streamId, r.timeToFirstEventMs,
          r.attachMs, r.verifiedInsns, r.storedRecords, toJsonText(r.detail ?? null), r.createdAtMs]);
      }
    });
  }

  async smokeResults(q: SmokeQuery = {}): Promise<SmokeResultRow[]> {
    const limit = q.limit ?? SMOKE_DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > SMOKE_MAX_LIMIT) {
      throw new RangeError(`smoke results: limit must be an integer in 1..${SMOKE_MAX_LIMIT}, got ${limit}`);
    }
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.deviceId !== undefined) { args.push(q.deviceId); where.push(`device_id = $${args.length}`); }
    if (q.probe !== undefined) { args.push(q.probe); where.push(`probe = $${args.length}`); }
    if (q.commandId !== undefined) { args.push(q.commandId); where.push(`command_id = $${args.length}`); }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    args.push(limit);
    const sql = q.history
      ? `SELECT * FROM smoke_results ${w} ORDER BY created_at_ms DESC, id DESC LIMIT $${args.length}`
      : `SELECT * FROM smoke_results WHERE id IN (
           SELECT max(id) FROM smoke_results ${w} GROUP BY device_id, probe) ORDER BY device_id, probe LIMIT $${args.length}`;
    const r = await this.pool.query<{ id: string; command_id: string; device_id: string; probe: string; version: string;
      outcome: SmokeOutcome; reason: string; run_id: string; stream_id: string; time_to_first_event_ms: number | null;
      attach_ms: number | null; verified_insns: string | null; stored_records: string; detail_json: string; created_at_ms: string }>(sql, args);
    return r.rows.map((x) => {
      let detail: unknown;
      try { detail = JSON.parse(x.detail_json); } catch { detail = x.detail_json; }
      return {
        id: Number(x.id), commandId: x.command_id, deviceId: x.device_id, probe: x.probe, version: x.version, outcome: x.outcome,
        reason: x.reason, runId: x.run_id, streamId: x.stream_id, timeToFirstEventMs: x.time_to_first_event_ms,
        attachMs: x.attach_ms, verifiedInsns: num(x.verified_insns), storedRecords: Number(x.stored_records), detail,
        createdAtMs: Number(x.created_at_ms),
      };
    });
  }
}
