// The PostgreSQL store (`--store postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`): the same
// Store as the SQLite default, for several controllers sharing one database (docs/SCALE-OUT.md).
//
// Exactly once across processes comes from the database alone: every ingest locks its streams'
// rows (pg-ingest.ts), registry writes are single upserts or hold the row they check. Nothing
// cached in a controller's memory decides what is stored (the manifest cache holds immutable rows).
import os from 'node:os';
import pg from 'pg';
import type { Pool, PoolClient } from 'pg';
import type { DeviceFacts, EventBatch, Heartbeat, Manifest, PipelineStats, ProbeStatus } from '@bpfleet/proto';
import { MAX_SEQ, parseStreamId } from '../batch-check.js';
import { StoreConflictError } from '../errors.js';
import type {
  BundleSpec, DeploymentState, EnrollmentTokenSpec, EnrollRequestSpec, EventCursor, EventQuery, EventsAfterQuery, IngestItem,
  IngestOutcome, IngestResult, SmokeQuery, SmokeResultRow, Store,
} from '../store.js';
import { parsePgUrl, translatePgError, type PgTarget } from './pg-errors.js';
import { PgEvents } from './pg-events.js';
import { declareLostInTx, ingestInTx } from './pg-ingest.js';
import { PgManifests } from './pg-manifests.js';
import { pgMigrate } from './pg-migrations.js';
import { PgRegistry } from './pg-registry.js';
import { PgTelemetry } from './pg-telemetry.js';

export interface PgStoreOptions {
  /** Connections per controller (default 8): ingest uses one at a time, readers the rest. */
  poolSize?: number;
  /** How long connecting may take before the error names the server (default 10000 ms). */
  connectTimeoutMs?: number;
  /** Attempts of a transaction aborted by a deadlock or serialization failure (default 8). */
  retries?: number;
  /**
   * Names this controller's connections (pg_stat_activity) and the batches it stores
   * (batches.stored_by); default "bpfleet <host>:<pid>".
   */
  applicationName?: string;
  /** Clock, for tests. */
  now?: () => number;
}

/** SQLSTATEs after which the whole transaction is safely retried: it was rolled back. */
const RETRYABLE = new Set(['40P01', '40001']);

export class PgStore implements Store {
  readonly location: string;
  /** Transactions retried after a deadlock or serialization failure (tests and metrics read it). */
  retriedTransactions = 0;
  private readonly now: () => number;
  private readonly retries: number;
  private readonly manifests = new PgManifests();
  private readonly reader: PgEvents;
  private readonly registry: PgRegistry;
  private readonly telemetry: PgTelemetry;
  private closed = false;

  private constructor(readonly pool: Pool, private readonly target: PgTarget, private readonly connectTimeoutMs: number,
    opts: PgStoreOptions) {
    this.location = target.location;
    this.now = opts.now ?? Date.now;
    this.retries = opts.retries ?? 8;
    const tx = <T>(fn: (c: PoolClient) => Promise<T>) => this.inTx(fn);
    this.reader = new PgEvents(pool, this.manifests);
    this.registry = new PgRegistry(pool, tx);
    this.telemetry = new PgTelemetry(pool, tx);
  }

  /**
   * Connects, checks the server answers, and migrates the schema (under an advisory lock, so
   * controllers starting together do not race). Throws StoreIoError naming the server and
   * what to check, or an Error for a bad URL or a schema newer than this controller.
   */
  static async open(url: string, opts: PgStoreOptions = {}): Promise<PgStore> {
    const target = parsePgUrl(url);
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const pool = new pg.Pool({
      connectionString: url, max: opts.poolSize ?? 8, connectionTimeoutMillis: connectTimeoutMs,
      idleTimeoutMillis: 30_000, application_name: opts.applicationName ?? `bpfleet ${os.hostname()}:${process.pid}`.slice(0, 63),
    });
    // An idle connection dropped by the server must not crash the controller: the next query
    // gets a fresh connection or a clear error.
    pool.on('error', () => undefined);
    try {
      const c = await pool.connect();
      try {
        const v = await c.query<{ server_version_num: string }>('SHOW server_version_num');
        if (Number(v.rows[0]!.server_version_num) < 110000) {
          throw new Error(`PostgreSQL at ${target.host}:${target.port} is version ${v.rows[0]!.server_version_num}: ` +
            'bpfleet needs 11 or newer');
        }
        await pgMigrate(c, target.location);
      } finally {
        c.release();
      }
      return new PgStore(pool, target, connectTimeoutMs, opts);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw translatePgError(err, target, connectTimeoutMs);
    }
  }

  private async io<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translatePgError(err, this.target, this.connectTimeoutMs);
    }
  }

  /** Runs fn in a transaction, retrying it whole after a deadlock or serialization failure. */
  private inTx<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    return this.io(async () => {
      for (let attempt = 1; ; attempt++) {
        const c = await this.pool.connect();
        let broken = false;
        try {
          await c.query('BEGIN');
          const out = await fn(c);
          await c.query('COMMIT');
          return out;
        } catch (err) {
          try { await c.query('ROLLBACK'); } catch { broken = true; }
          const code = (err as { code?: string }).code;
          if (code === undefined || !RETRYABLE.has(code) || attempt >= this.retries) throw err;
          this.retriedTransactions++;
          await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
        } finally {
          c.release(broken);
        }
      }
    });
  }

  putManifest(schemaId: string, manifest: Manifest): Promise<void> {
    return this.io(() => this.manifests.put(this.pool, schemaId, manifest, this.now()));
  }
  manifest(schemaId: string): Promise<Manifest | undefined> {
    return this.io(async () => (await this.manifests.schema(this.pool, schemaId))?.manifest);
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
  deviceByCredential(credential: string) {
    return this.io(() => this.registry.deviceByCredential(credential));
  }
  mqttPasswordHashes() {
    return this.io(() => this.registry.mqttPasswordHashes());
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

  async ingestBatch(deviceId: string, batch: EventBatch): Promise<IngestResult> {
    const [out] = await this.ingestMany([{ deviceId, batch }]);
    if (!out!.ok) throw out!.error;
    const { ok: _ok, ...result } = out!;
    return result;
  }
  ingestMany(items: IngestItem[]): Promise<IngestOutcome[]> {
    if (items.length === 0) return Promise.resolve([]);
    const nowMs = this.now();
    return this.inTx((c) => ingestInTx(c, this.manifests, items, nowMs));
  }
  declareLost(deviceId: string, streamId: string, firstHeldSeq: bigint) {
    const key = parseStreamId(streamId);
    if (!key || key.deviceId !== deviceId) {
      return Promise.reject(new StoreConflictError(`device ${deviceId} cannot declare loss on stream "${streamId}": not its stream`));
    }
    if (firstHeldSeq < 0n || firstHeldSeq > BigInt(MAX_SEQ)) return Promise.reject(new RangeError(`first held seq ${firstHeldSeq} out of range`));
    const nowMs = this.now();
    return this.inTx((c) => declareLostInTx(c, streamId, key, Number(firstHeldSeq), nowMs));
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
    return this.io(() => this.telemetry.recordSmokeResults(rows));
  }
  smokeResults(query?: SmokeQuery) {
    return this.io(() => this.telemetry.smokeResults(query));
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
