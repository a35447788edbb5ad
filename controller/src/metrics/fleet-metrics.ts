// The controller's metrics: devices, and for every stream the records each pipeline stage lost
// (the same counters `bpfleet stats` shows), what was stored, and the ingest path's own counts.
import type { DeviceRow, PipelineStatsRow } from '../store/store.js';
import { Exposition, type Quantiles } from './exposition.js';

/** Counters of the ingest path, if the server keeps them. */
export interface IngestCounters {
  /** EventBatches received. */
  batches: number | bigint;
  /** Store transactions committed (group commits hold several batches). */
  commits: number | bigint;
  /** Transactions that failed. */
  failedCommits?: number | bigint;
  /** Record bytes committed. */
  bytes?: number | bigint;
  /** Bytes waiting for or in a commit. */
  backlogBytes?: number | bigint;
  /** Commit durations over a recent window, seconds. */
  commitSeconds?: Quantiles;
}

export interface FleetMetricsInput {
  devices: DeviceRow[];
  /** Ids of devices with a live session. */
  online: ReadonlySet<string>;
  stats: PipelineStatsRow[];
  ingest?: IngestCounters;
}

/**
 * Where a record can be lost before it reaches the controller, stage by stage. The store's own
 * view (gaps below a stream's head) is exported apart, as bpfleet_store_gap_records: it is the
 * end-to-end count of what is missing and overlaps these (an evicted spool record is a gap too).
 */
export const LOSS_COUNTERS: { stage: string; reason: string; get: (r: PipelineStatsRow) => number | bigint }[] = [
  { stage: 'kernel', reason: 'ringbuf_full', get: (r) => r.kernelRingbufFull },
  { stage: 'kernel', reason: 'map_full', get: (r) => r.kernelMapFull },
  { stage: 'loader', reason: 'lost', get: (r) => r.loaderLost },
  { stage: 'agent', reason: 'queue_dropped', get: (r) => r.agentQueueDropped },
  { stage: 'spool', reason: 'evicted', get: (r) => r.spoolEvicted },
  { stage: 'spool', reason: 'corrupt', get: (r) => r.spoolCorrupt },
];

/** "<device>/<probe>/<run>" -> probe ("" if the id has another shape). */
const probeOf = (streamId: string) => streamId.split('/')[1] ?? '';

export function renderFleetMetrics(input: FleetMetricsInput): string {
  const x = new Exposition();
  x.family('bpfleet_devices', 'gauge', 'Enrolled devices.')({}, input.devices.length);
  x.family('bpfleet_devices_online', 'gauge', 'Devices with a live agent session.')(
    {}, input.devices.filter((d) => input.online.has(d.id)).length);
  const up = x.family('bpfleet_device_online', 'gauge', 'Whether the device has a live agent session (1) or not (0).');
  for (const d of input.devices) up({ device: d.id, name: d.name }, input.online.has(d.id) ? 1 : 0);
  const seen = x.family('bpfleet_device_last_seen_seconds', 'gauge', 'Unix time the controller last heard from the device.');
  for (const d of input.devices) seen({ device: d.id, name: d.name }, d.lastSeenMs / 1000);

  const lost = x.family('bpfleet_records_lost_total', 'counter',
    'Records lost per stream, by pipeline stage and reason (kernel and agent counters as last reported by the agent).');
  const written = x.family('bpfleet_loader_records_total', 'counter', 'Records the loader wrote, as last reported by the agent.');
  const sampled = x.family('bpfleet_kernel_sampled_out_total', 'counter', 'Records not emitted on purpose (rate limit); not a loss.');
  const readFailed = x.family('bpfleet_kernel_read_failed_total', 'counter', 'Kernel memory reads that failed; the record carries zeros there.');
  const stored = x.family('bpfleet_store_records_total', 'counter', 'Records stored.');
  const dup = x.family('bpfleet_store_duplicate_records_total', 'counter', 'Replayed records dropped as already stored; not a loss.');
  const gaps = x.family('bpfleet_store_gap_records', 'gauge',
    'Records missing below the stream head: open (may still arrive) or lost (the agent no longer holds them).');
  const rejected = x.family('bpfleet_store_rejected_batches_total', 'counter', 'Batches refused by the store (malformed, unknown schema, ...).');
  const rejectedRecords = x.family('bpfleet_store_rejected_records_total', 'counter', 'Records the refused batches claimed to hold.');
  for (const r of input.stats) {
    const l = { device: r.deviceId, probe: probeOf(r.streamId), stream: r.streamId };
    for (const c of LOSS_COUNTERS) lost({ ...l, stage: c.stage, reason: c.reason }, c.get(r));
    written(l, r.records);
    sampled(l, r.kernelSampledOut);
    readFailed(l, r.kernelReadFailed);
    stored(l, r.storedRecords);
    dup(l, r.duplicateRecords);
    gaps({ ...l, state: 'open' }, r.openGapRecords);
    gaps({ ...l, state: 'lost' }, r.gapRecords - r.openGapRecords);
    rejected(l, r.rejectedBatches);
    rejectedRecords(l, r.rejectedRecords);
  }
  if (input.ingest) {
    x.family('bpfleet_ingest_batches_total', 'counter', 'Event batches received from agents.')({}, input.ingest.batches);
    x.family('bpfleet_ingest_commits_total', 'counter', 'Store transactions committed by the ingest path.')({}, input.ingest.commits);
    const { failedCommits, bytes, backlogBytes } = input.ingest;
    if (failedCommits !== undefined) x.family('bpfleet_ingest_failed_commits_total', 'counter', 'Store transactions of the ingest path that failed.')({}, failedCommits);
    if (bytes !== undefined) x.family('bpfleet_ingest_record_bytes_total', 'counter', 'Record bytes committed.')({}, bytes);
    if (backlogBytes !== undefined) x.family('bpfleet_ingest_backlog_bytes', 'gauge', 'Record bytes waiting for or in a commit.')({}, backlogBytes);
    const cs = input.ingest.commitSeconds;
    if (cs) x.quantiles('bpfleet_ingest_commit_seconds', 'How long the ingest\'s store transactions took over the last 60 to 90 s, by quantile (1: the longest).', cs);
  }
  return x.toString();
}
