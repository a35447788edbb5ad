// The controller's store: what every backend (SQLite now, PostgreSQL later) must offer.
// The contract test in store-contract.ts runs against each implementation.
//
// Sequence numbers: a stream starts at seq 1 (the agent's spool numbers records from 1, so
// acked_through = 0, the proto3 default, means "nothing stored"; a batch at seq 0 is refused)
// and each batch covers [first_seq, first_seq+count).
// The store keeps, per stream, next_seq (one past the highest seq stored or recorded as a gap)
// and a list of gaps below it. A gap is `open` while the records may still arrive (they are
// stored when they do: a late batch fills its gap) and `lost` once the agent says it no longer
// holds them (`declareLost`). Acks only cover contiguous data: ackedThrough is the last seq
// before the first open gap, so an agent resends what the controller is still missing.
import type { DeviceFacts, EventBatch, Heartbeat, Manifest, PipelineStats, ProbeStatus } from '@bpfleet/proto';
import type { BatchRejectedError, RejectCode } from './errors.js';

export interface IngestResult {
  /** Records of this batch newly stored (new tail and filled gaps). */
  stored: number;
  /** Records of this batch that were already stored and were dropped: a replay, not a loss. */
  duplicate: number;
  /** Records this batch revealed as missing (a new gap before its first_seq). */
  gapRecords: number;
  /** Records of `stored` that filled an earlier gap. */
  filled: number;
  /**
   * Every seq <= ackedThrough is stored or declared lost: what the transport acks.
   * 0n while seq 1 is not (an Ack of 0 tells the agent nothing is stored yet).
   */
  ackedThrough: bigint;
}

export type IngestOutcome = ({ ok: true } & IngestResult) | { ok: false; error: BatchRejectedError };

export interface IngestItem {
  /** The authenticated device that sent the batch. */
  deviceId: string;
  batch: EventBatch;
}

export interface StreamCursorState {
  streamId: string;
  /** As IngestResult.ackedThrough: Welcome.acked / Ack.acked_through. */
  ackedThrough: bigint;
  /** One past the highest seq stored or recorded as a gap. */
  nextSeq: bigint;
  /** Records currently missing below nextSeq (open + lost). */
  gapRecords: number;
}

export interface StoredEvent {
  streamId: string;
  deviceId: string;
  probe: string;
  seq: number;
  /** ts_ns of the record + the batch's clock_offset_ns: Unix time on the device, ns. */
  timeUnixNs: bigint;
  /** For interval probes: the interval the record closes. */
  interval?: number;
  /** The record decoded with its stream's manifest (decodeRecord). */
  fields: Record<string, unknown>;
}

export interface EventQuery {
  deviceId?: string;
  probe?: string;
  streamId?: string;
  /** Only records with timeUnixNs >= this. */
  sinceUnixNs?: bigint;
  /** At most this many records (default 1000). Results are ordered by time, then stream, seq. */
  limit?: number;
}

/**
 * A position in the order batches are committed, opaque and backend-specific (SQLite: a rowid;
 * PostgreSQL: snapshots). Time cannot serve: device clocks disagree, and a late gap fill is new
 * however old its records are.
 */
export type EventCursor = string;

export interface EventsAfterQuery {
  deviceId?: string;
  probe?: string;
  /**
   * Stop once this many records are in the answer (default 1000). Batches are never split, so an
   * answer can hold up to one batch more.
   */
  limit?: number;
}

export interface EventsAfter {
  /** Records of the batches committed after the cursor, batch by batch (not in time order). */
  events: StoredEvent[];
  /** Pass to the next call. */
  cursor: EventCursor;
  /**
   * The limit cut the answer short: call again at once. When false, the cursor covers every batch
   * committed before this call began.
   */
  more: boolean;
}

export interface StreamRow {
  streamId: string;
  deviceId: string;
  probe: string;
  runId: string;
  /** Null until the first batch is stored. */
  schemaId: string | null;
  recordSize: number | null;
  nextSeq: bigint;
  ackedThrough: bigint;
  storedRecords: number;
  storedBatches: number;
  duplicateRecords: number;
  openGapRecords: number;
  lostGapRecords: number;
  filledGapRecords: number;
  lastBatchAtMs: number | null;
}

export interface GapRow {
  fromSeq: number;
  /** Exclusive. */
  toSeq: number;
  state: 'open' | 'lost';
  detectedAtMs: number;
}

export interface DeviceRow {
  id: string;
  name: string;
  labels: Record<string, string>;
  facts: Record<string, unknown>;
  transport: string | null;
  firstSeenMs: number;
  lastSeenMs: number;
  online: boolean;
}

export interface EnrollmentTokenSpec {
  /** Labels the enrolled device gets. */
  labels?: Record<string, string>;
  /** How long the token stays valid. */
  ttlMs: number;
  /** If set, the token may re-enroll the existing device of this name (a reflashed board). */
  deviceName?: string;
}

export interface EnrollRequestSpec {
  token: string;
  deviceName: string;
  facts?: DeviceFacts;
  transport?: string;
}

export interface Enrollment {
  deviceId: string;
  /** Shown once; the store keeps only its hash. */
  credential: string;
  labels: Record<string, string>;
}

export interface BundleSpec {
  probe: string;
  version: string;
  arch: string;
  /** Digest the signature covers, hex. */
  sha256: string;
  signature: Buffer;
}

export type DeploymentState = 'pending' | 'installed' | 'failed' | 'removed';

export interface DeploymentRow {
  deviceId: string;
  bundleId: number;
  probe: string;
  version: string;
  arch: string;
  state: DeploymentState;
  reason: string;
  updatedAtMs: number;
}

export type RunState = 'starting' | 'running' | 'stopped' | 'crashed' | 'failed' | 'unknown';

export interface RunRow {
  runId: string;
  deviceId: string;
  probe: string;
  args: string[];
  state: RunState;
  reason: string;
  exitCode: number | null;
  restarts: number;
  loaderHello: unknown;
  streamId: string | null;
  createdAtMs: number;
  updatedAtMs: number;
}

/** Loss and throughput of one stream, every stage from the kernel to this store. */
export interface PipelineStatsRow {
  streamId: string;
  deviceId: string;
  /** Agent time of the latest PipelineStats sample; null if none arrived yet. */
  sampleUnixNs: bigint | null;
  /** Records the loader wrote. */
  records: bigint;
  kernelRingbufFull: bigint;
  kernelMapFull: bigint;
  /** Not a loss: rate-limited on purpose. */
  kernelSampledOut: bigint;
  kernelReadFailed: bigint;
  loaderLost: bigint;
  agentQueueDropped: bigint;
  spoolEvicted: bigint;
  spoolCorrupt: bigint;
  /** The store's own view. */
  storedRecords: number;
  /** Replays dropped: not a loss. */
  duplicateRecords: number;
  /** Missing below next_seq as seen by the controller (open + lost): a loss. */
  gapRecords: number;
  openGapRecords: number;
  /** Batches refused (malformed, unknown schema, ...), and the records they claimed. */
  rejectedBatches: number;
  rejectedRecords: number;
}

export interface RejectionRow {
  deviceId: string;
  streamId: string;
  code: RejectCode;
  batches: number;
  records: number;
  lastError: string;
  lastAtMs: number;
}

export interface HeartbeatRow {
  deviceId: string;
  timeUnixNs: bigint;
  receivedAtMs: number;
  cpuBusy: number;
  load1: number;
  load5: number;
  load15: number;
  memAvailableBytes: bigint;
  memTotalBytes: bigint;
  agentCpuNs: bigint;
  agentRssBytes: bigint;
  netRxBytes: bigint;
  netTxBytes: bigint;
  spoolBytes: bigint;
}

export type SmokeOutcome = 'pass' | 'fail' | 'unsupported';

/** One device x probe of a smoke test (`bpfleet smoke`), as judged by the controller. */
export interface SmokeResultRow {
  /** Assigned by the store. */
  id?: number;
  commandId: string;
  deviceId: string;
  /** '*' when the device could not run the test at all (offline, no answer). */
  probe: string;
  version: string;
  outcome: SmokeOutcome;
  /** '' on pass. */
  reason: string;
  runId: string;
  streamId: string;
  timeToFirstEventMs: number | null;
  attachMs: number | null;
  verifiedInsns: number | null;
  storedRecords: number;
  detail: unknown;
  createdAtMs: number;
}

export interface SmokeQuery {
  deviceId?: string;
  probe?: string;
  commandId?: string;
  /** Every row, newest first, instead of the latest per device x probe. */
  history?: boolean;
  /** At most this many rows (default 1000). */
  limit?: number;
}

export interface Store {
  /** Where the data lives (file path or connection string without secrets). */
  readonly location: string;

  // -- manifests: schema_id -> manifest, immutable once stored
  putManifest(schemaId: string, manifest: Manifest): Promise<void>;
  manifest(schemaId: string): Promise<Manifest | undefined>;

  // -- enrollment and devices
  createEnrollmentToken(spec: EnrollmentTokenSpec): Promise<{ token: string; expiresAtMs: number }>;
  /** Consumes the token and creates (or re-keys) the device, atomically. Throws EnrollmentError. */
  enroll(req: EnrollRequestSpec): Promise<Enrollment>;
  /** The device if the credential is its current one, else undefined. */
  authenticate(deviceId: string, credential: string): Promise<DeviceRow | undefined>;
  /**
   * The device whose current credential this is, else undefined: a session presents only its
   * credential, and the controller checks the device id of its Hello against this.
   */
  deviceByCredential(credential: string): Promise<DeviceRow | undefined>;
  /** Device credentials hashed for an external MQTT broker's password file (hash null: enrolled before v4). */
  mqttPasswordHashes?(): Promise<{ deviceId: string; name: string; hash: string | null }[]>;
  markSeen(deviceId: string, seen: { online: boolean; transport?: string; facts?: DeviceFacts }): Promise<void>;
  devices(): Promise<DeviceRow[]>;

  // -- bundles, deployments, probe runs
  putBundle(bundle: BundleSpec): Promise<number>;
  setDeployment(deviceId: string, bundleId: number, state: DeploymentState, reason?: string): Promise<void>;
  deployments(deviceId?: string): Promise<DeploymentRow[]>;
  startRun(run: { runId: string; deviceId: string; probe: string; args: string[] }): Promise<void>;
  recordProbeStatus(deviceId: string, status: ProbeStatus): Promise<void>;
  runs(filter?: { deviceId?: string }): Promise<RunRow[]>;

  // -- events
  /** One batch in one transaction. Throws BatchRejectedError (counted, nothing stored). */
  ingestBatch(deviceId: string, batch: EventBatch): Promise<IngestResult>;
  /** Many batches in one transaction (group commit); a rejected batch does not stop the others. */
  ingestMany(items: IngestItem[]): Promise<IngestOutcome[]>;
  /**
   * The agent no longer holds records before `firstHeldSeq` (Hello.spooled.first_seq): open gaps
   * below it become lost, so acks move past them.
   */
  declareLost(deviceId: string, streamId: string, firstHeldSeq: bigint): Promise<StreamCursorState>;
  cursor(streamId: string): Promise<StreamCursorState | undefined>;
  events(query?: EventQuery): Promise<StoredEvent[]>;
  /** The cursor of what is committed now: eventsAfter(eventsHead()) answers only later batches. */
  eventsHead(): Promise<EventCursor>;
  /**
   * Records of batches committed after `cursor`, each batch once across successive calls, costing
   * what is new, not what is stored. Throws RangeError for a cursor this store did not make.
   */
  eventsAfter(cursor: EventCursor, query?: EventsAfterQuery): Promise<EventsAfter>;
  streams(filter?: { deviceId?: string }): Promise<StreamRow[]>;
  gaps(streamId: string): Promise<GapRow[]>;
  rejections(): Promise<RejectionRow[]>;

  // -- smoke tests (optional: a backend without them answers the smoke API with 501)
  recordSmokeResults?(rows: SmokeResultRow[]): Promise<void>;
  /** Latest row per device x probe (ordered by device, probe), or the history newest first. */
  smokeResults?(query?: SmokeQuery): Promise<SmokeResultRow[]>;

  // -- telemetry
  recordPipelineStats(deviceId: string, stats: PipelineStats): Promise<void>;
  /** Latest sample per stream joined with the store's own counters. */
  pipelineStats(filter?: { deviceId?: string }): Promise<PipelineStatsRow[]>;
  recordHeartbeat(deviceId: string, heartbeat: Heartbeat): Promise<void>;
  heartbeats(deviceId: string, limit?: number): Promise<HeartbeatRow[]>;

  close(): Promise<void>;
}
