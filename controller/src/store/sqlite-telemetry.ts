// Pipeline stats (latest per stream and history) and heartbeats, and the loss report that puts
// every stage side by side: kernel, loader, agent, spool, and this store.
import type Database from 'better-sqlite3';
import type { Heartbeat, PipelineStats } from '@bpfleet/proto';
import { parseStreamId } from './batch-check.js';
import { StoreConflictError } from './errors.js';
import { toJsonText } from './json-text.js';
import type { HeartbeatRow, PipelineStatsRow } from './store.js';

const STAT_COLUMNS = ['records', 'kernel_ringbuf_full', 'kernel_map_full', 'kernel_sampled_out', 'kernel_read_failed',
  'loader_lost', 'agent_queue_dropped', 'spool_evicted', 'spool_corrupt'] as const;

type StatsDbRow = { stream_id: string; device_id: string; sample_unix_ns: bigint } & Record<(typeof STAT_COLUMNS)[number], bigint>;

export class SqliteTelemetry {
  private readonly s;

  constructor(private readonly db: Database.Database) {
    this.s = {
      latest: db.prepare(
        `INSERT INTO stream_stats (stream_id, device_id, sample_unix_ns, received_at_ms, ${STAT_COLUMNS.join(', ')})
         VALUES (?, ?, ?, ?, ${STAT_COLUMNS.map(() => '?').join(', ')})
         ON CONFLICT (stream_id) DO UPDATE SET sample_unix_ns = excluded.sample_unix_ns,
           received_at_ms = excluded.received_at_ms, ${STAT_COLUMNS.map((c) => `${c} = excluded.${c}`).join(', ')}
         WHERE excluded.sample_unix_ns >= stream_stats.sample_unix_ns`),
      history: db.prepare(
        'INSERT INTO stream_stats_history (stream_id, sample_unix_ns, received_at_ms, stats_json) VALUES (?, ?, ?, ?)'),
      heartbeat: db.prepare(
        `INSERT INTO heartbeats (device_id, time_unix_ns, received_at_ms, cpu_busy, load1, load5, load15,
           mem_available_bytes, mem_total_bytes, agent_cpu_ns, agent_rss_bytes, net_rx_bytes, net_tx_bytes, spool_bytes)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      seen: db.prepare('UPDATE devices SET last_seen_ms = ?, online = 1 WHERE id = ?'),
    };
  }

  recordPipelineStats(deviceId: string, st: PipelineStats, nowMs: number): void {
    const key = parseStreamId(st.streamId);
    if (!key || key.deviceId !== deviceId) {
      throw new StoreConflictError(`pipeline stats for stream "${st.streamId}" from device ${deviceId}: ` +
        'a device reports only its own streams, named "<device>/<probe>/<run>"');
    }
    const values = [st.records, st.kernelRingbufFull, st.kernelMapFull, st.kernelSampledOut, st.kernelReadFailed,
      st.loaderLost, st.agentQueueDropped, st.spoolEvicted, st.spoolCorrupt];
    this.db.transaction(() => {
      this.s.latest.run(st.streamId, deviceId, st.timeUnixNs, nowMs, ...values);
      this.s.history.run(st.streamId, st.timeUnixNs, nowMs, toJsonText(st));
    }).immediate();
  }

  recordHeartbeat(deviceId: string, hb: Heartbeat, nowMs: number): void {
    const m = hb.metrics;
    this.db.transaction(() => {
      const seen = this.s.seen.run(nowMs, deviceId);
      if (seen.changes === 0) throw new StoreConflictError(`heartbeat from unknown device ${deviceId}: enroll it first`);
      this.s.heartbeat.run(deviceId, hb.timeUnixNs, nowMs, m?.cpuBusy ?? 0, m?.load1 ?? 0, m?.load5 ?? 0, m?.load15 ?? 0,
        m?.memAvailableBytes ?? 0n, m?.memTotalBytes ?? 0n, m?.agentCpuNs ?? 0n, m?.agentRssBytes ?? 0n,
        m?.netRxBytes ?? 0n, m?.netTxBytes ?? 0n, hb.spoolBytes);
    }).immediate();
  }

  heartbeats(deviceId: string, limit = 100): HeartbeatRow[] {
    const rows = this.db.prepare(
      'SELECT * FROM heartbeats WHERE device_id = ? ORDER BY time_unix_ns DESC LIMIT ?').safeIntegers(true)
      .all(deviceId, limit) as Record<string, bigint | number | string>[];
    return rows.map((r) => ({
      deviceId: r['device_id'] as string, timeUnixNs: r['time_unix_ns'] as bigint, receivedAtMs: Number(r['received_at_ms']),
      cpuBusy: r['cpu_busy'] as number, load1: r['load1'] as number, load5: r['load5'] as number, load15: r['load15'] as number,
      memAvailableBytes: r['mem_available_bytes'] as bigint, memTotalBytes: r['mem_total_bytes'] as bigint,
      agentCpuNs: r['agent_cpu_ns'] as bigint, agentRssBytes: r['agent_rss_bytes'] as bigint,
      netRxBytes: r['net_rx_bytes'] as bigint, netTxBytes: r['net_tx_bytes'] as bigint, spoolBytes: r['spool_bytes'] as bigint,
    }));
  }

  /** One row per (device, stream) known from stats, stored batches or rejections. */
  pipelineStats(filter: { deviceId?: string } = {}): PipelineStatsRow[] {
    const dev = filter.deviceId;
    const by = (col: string): string => (dev === undefined ? '' : `WHERE ${col} = ?`);
    const args = dev === undefined ? [] : [dev];
    const stats = this.db.prepare(`SELECT * FROM stream_stats ${by('device_id')}`).safeIntegers(true).all(...args) as StatsDbRow[];
    const streams = this.db.prepare(
      `SELECT stream_id, device_id, stored_records, duplicate_records, open_gap_records, lost_gap_records
       FROM streams ${by('device_id')}`).all(...args) as
      { stream_id: string; device_id: string; stored_records: number; duplicate_records: number; open_gap_records: number; lost_gap_records: number }[];
    const rejected = this.db.prepare(
      `SELECT device_id, stream_id, sum(batches) AS batches, sum(records) AS records FROM rejections ${by('device_id')}
       GROUP BY device_id, stream_id`).all(...args) as { device_id: string; stream_id: string; batches: number; records: number }[];

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
        sampleUnixNs: s.sample_unix_ns, records: s.records, kernelRingbufFull: s.kernel_ringbuf_full,
        kernelMapFull: s.kernel_map_full, kernelSampledOut: s.kernel_sampled_out, kernelReadFailed: s.kernel_read_failed,
        loaderLost: s.loader_lost, agentQueueDropped: s.agent_queue_dropped, spoolEvicted: s.spool_evicted,
        spoolCorrupt: s.spool_corrupt,
      });
    }
    for (const s of streams) {
      Object.assign(row(s.device_id, s.stream_id), {
        storedRecords: s.stored_records, duplicateRecords: s.duplicate_records,
        gapRecords: s.open_gap_records + s.lost_gap_records, openGapRecords: s.open_gap_records,
      });
    }
    for (const r of rejected) Object.assign(row(r.device_id, r.stream_id), { rejectedBatches: r.batches, rejectedRecords: r.records });
    return [...rows.values()].sort((a, b) => (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : 0));
  }
}
