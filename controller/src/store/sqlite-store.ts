// The default store: one embedded SQLite file (better-sqlite3), WAL mode.
//
// better-sqlite3 is synchronous: each call runs to completion on the event loop. That is the
// fastest way to drive SQLite from Node (no thread hop per statement), and the Promise-returning
// Store interface keeps the door open for an asynchronous backend (PostgreSQL).
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { EventBatch, Heartbeat, Manifest, PipelineStats, ProbeStatus, DeviceFacts } from '@bpfleet/proto';
import { parseStreamId, MAX_SEQ } from './batch-check.js';
import { StoreConflictError, StoreIoError } from './errors.js';
import { migrate } from './migrations.js';
import { translateSqliteError } from './sqlite-errors.js';
import { SqliteEvents } from './sqlite-events.js';
import { SqliteIngest } from './sqlite-ingest.js';
import { SqliteManifests } from './sqlite-manifests.js';
import { SqliteRegistry } from './sqlite-registry.js';
import { SqliteSmoke } from './sqlite-smoke.js';
import { SqliteTelemetry } from './sqlite-telemetry.js';
import type {
  BundleSpec, DeploymentState, EnrollmentTokenSpec, EnrollRequestSpec, EventCursor, EventQuery, EventsAfterQuery, IngestItem,
  IngestOutcome, IngestResult, SmokeQuery, SmokeResultRow, Store,
} from './store.js';

export interface SqliteStoreOptions {
  /** How long a write waits for another connection's lock before failing (default 5000 ms). */
  busyTimeoutMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export class SqliteStore implements Store {
  readonly location: string;
  private readonly busyTimeoutMs: number;
  private readonly now: () => number;
  private readonly manifests: SqliteManifests;
  private readonly ingest: SqliteIngest;
  private readonly reader: SqliteEvents;
  private readonly registry: SqliteRegistry;
  private readonly telemetry: SqliteTelemetry;
  private readonly smoke: SqliteSmoke;
  private readonly ingestManyTx: Database.Transaction<(items: IngestItem[], nowMs: number) => IngestOutcome[]>;

  private constructor(readonly db: Database.Database, path: string, opts: SqliteStoreOptions) {
    this.location = path;
    this.busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
    this.now = opts.now ?? Date.now;
    this.manifests = new SqliteManifests(db);
    this.ingest = new SqliteIngest(db, this.manifests);
    this.reader = new SqliteEvents(db, this.manifests);
    this.registry = new SqliteRegistry(db);
    this.telemetry = new SqliteTelemetry(db);
    this.smoke = new SqliteSmoke(db);
    // IMMEDIATE: take the write lock up front (waiting busy_timeout), instead of failing with
    // SQLITE_BUSY_SNAPSHOT when another writer commits between our read and our first write.
    this.ingestManyTx = db.transaction((items: IngestItem[], nowMs: number) =>
      items.map((it) => this.ingest.one(it.deviceId, it.batch, nowMs)));
  }

  /** Opens (creating if needed) and migrates the database at `file`. Throws StoreIoError naming it. */
  static open(file: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const path = file === ':memory:' ? file : resolve(file);
    const busy = opts.busyTimeoutMs ?? 5000;
    if (path !== ':memory:' && !existsSync(dirname(path))) {
      throw new StoreIoError(`cannot open database ${path}: directory ${dirname(path)} does not exist; create it or ` +
        'choose another --store path', path, 'SQLITE_CANTOPEN');
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { timeout: busy });
      // WAL: readers (dashboard, exports) never block the ingest writer, and a commit is one
      // append to the -wal file. synchronous=NORMAL with WAL fsyncs only at checkpoints: a
      // committed transaction survives a crash of the controller process (the data is in the
      // OS page cache and the -wal file), but not a power loss or kernel crash, which can undo
      // the last commits. Agents keep records spooled until acked, and an ack after a power
      // cut is then re-sent and stored again; FULL would fsync every commit for that guarantee.
      if (path !== ':memory:') {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal') throw new Error(`database ${path}: cannot switch to WAL (got ${String(mode)}); is it on a network filesystem?`);
      }
      db.pragma('synchronous = NORMAL');
      db.pragma(`busy_timeout = ${busy}`);
      db.pragma('foreign_keys = ON');
      // Bound the -wal file after checkpoints, and give the page cache room for blob writes.
      db.pragma('journal_size_limit = 67108864');
      db.pragma('cache_size = -32768');
      migrate(db, path);
      return new SqliteStore(db, path, opts);
    } catch (err) {
      db?.close();
      throw translateSqliteError(err, path, busy);
    }
  }

  /** Runs fn, turning SQLite file errors into StoreIoError. */
  private io<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(translateSqliteError(err, this.location, this.busyTimeoutMs));
    }
  }

  putManifest(schemaId: string, manifest: Manifest): Promise<void> {
    return this.io(() => this.manifests.put(schemaId, manifest));
  }
  manifest(schemaId: string): Promise<Manifest | undefined> {
    return this.io(() => this.manifests.schema(schemaId)?.manifest);
  }

  createEnrollmentToken(spec: EnrollmentTokenSpec) {
    return this.io(() => this.registry.createEnrollmentToken(spec, this.now()));
  }
  enroll(req: EnrollRequestSpec) {
    return this.io(() => this.registry.enroll(req, this.now()));
  }
  authenticate(deviceId: string, credential: string) {
    return this.io(() => this.registry.authenticate(deviceId, credential));
  }
  mqttPasswordHashes() {
    return this.io(() => this.registry.mqttPasswordHashes());
  }
  deviceByCredential(credential: string) {
    return this.io(() => this.registry.deviceByCredential(credential));
  }
  markSeen(deviceId: string, seen: { online: boolean; transport?: string; facts?: DeviceFacts }) {
    return this.io(() => this.registry.markSeen(deviceId, seen, this.now()));
  }
  devices() {
    return this.io(() => this.registry.devices());
  }
  putBundle(bundle: BundleSpec) {
    return this.io(() => this.registry.putBundle(bundle, this.now()));
  }
  setDeployment(deviceId: string, bundleId: number, state: DeploymentState, reason = '') {
    return this.io(() => this.registry.setDeployment(deviceId, bundleId, state, reason, this.now()));
  }
  deployments(deviceId?: string) {
    return this.io(() => this.registry.deployments(deviceId));
  }
  startRun(run: { runId: string; deviceId: string; probe: string; args: string[] }) {
    return this.io(() => this.registry.startRun(run, this.now()));
  }
  recordProbeStatus(deviceId: string, status: ProbeStatus) {
    return this.io(() => this.registry.recordProbeStatus(deviceId, status, this.now()));
  }
  runs(filter?: { deviceId?: string }) {
    return this.io(() => this.registry.runs(filter));
  }

  /** Synchronous core of ingestBatch, for callers already on the event loop (and the bench). */
  ingestBatchSync(deviceId: string, batch: EventBatch): IngestResult {
    try {
      const [out] = this.ingestManyTx.immediate([{ deviceId, batch }], this.now());
      if (!out!.ok) throw out!.error;
      const { ok: _ok, ...result } = out!;
      return result;
    } catch (err) {
      throw translateSqliteError(err, this.location, this.busyTimeoutMs);
    }
  }
  ingestBatch(deviceId: string, batch: EventBatch): Promise<IngestResult> {
    return this.io(() => this.ingestBatchSync(deviceId, batch));
  }
  /** Synchronous core of ingestMany. */
  ingestManySync(items: IngestItem[]): IngestOutcome[] {
    try {
      return this.ingestManyTx.immediate(items, this.now());
    } catch (err) {
      throw translateSqliteError(err, this.location, this.busyTimeoutMs);
    }
  }
  ingestMany(items: IngestItem[]): Promise<IngestOutcome[]> {
    return this.io(() => this.ingestManySync(items));
  }
  declareLost(deviceId: string, streamId: string, firstHeldSeq: bigint) {
    return this.io(() => {
      const key = parseStreamId(streamId);
      if (!key || key.deviceId !== deviceId) {
        throw new StoreConflictError(`device ${deviceId} cannot declare loss on stream "${streamId}": not its stream`);
      }
      if (firstHeldSeq < 0n || firstHeldSeq > BigInt(MAX_SEQ)) throw new RangeError(`first held seq ${firstHeldSeq} out of range`);
      return this.db.transaction(() => this.ingest.declareLost(streamId, key, Number(firstHeldSeq), this.now())).immediate();
    });
  }
  cursor(streamId: string) {
    return this.io(() => this.reader.cursor(streamId));
  }
  events(query?: EventQuery) {
    return this.io(() => this.reader.events(query));
  }
  eventsHead() {
    return this.io(() => this.reader.eventsHead());
  }
  eventsAfter(cursor: EventCursor, query?: EventsAfterQuery) {
    return this.io(() => this.reader.eventsAfter(cursor, query));
  }
  streams(filter?: { deviceId?: string }) {
    return this.io(() => this.reader.streams(filter));
  }
  gaps(streamId: string) {
    return this.io(() => this.reader.gaps(streamId));
  }
  rejections() {
    return this.io(() => this.reader.rejections());
  }

  recordSmokeResults(rows: SmokeResultRow[]) {
    return this.io(() => this.smoke.record(rows));
  }
  smokeResults(query?: SmokeQuery) {
    return this.io(() => this.smoke.results(query));
  }

  recordPipelineStats(deviceId: string, stats: PipelineStats) {
    return this.io(() => this.telemetry.recordPipelineStats(deviceId, stats, this.now()));
  }
  pipelineStats(filter?: { deviceId?: string }) {
    return this.io(() => this.telemetry.pipelineStats(filter));
  }
  recordHeartbeat(deviceId: string, heartbeat: Heartbeat) {
    return this.io(() => this.telemetry.recordHeartbeat(deviceId, heartbeat, this.now()));
  }
  heartbeats(deviceId: string, limit?: number) {
    return this.io(() => this.telemetry.heartbeats(deviceId, limit));
  }

  close(): Promise<void> {
    return this.io(() => { if (this.db.open) this.db.close(); });
  }
}
