// Device registry: enrollment tokens, devices, bundles, deployments and probe runs.
import type Database from 'better-sqlite3';
import { ProbeStatus_State, type DeviceFacts, type ProbeStatus } from '@bpfleet/proto';
import { hashSecret, mosquittoPasswordHash, newDeviceId, newSecret, secretMatches } from './credentials.js';
import { EnrollmentError, StoreConflictError } from './errors.js';
import { fromJsonText, toJsonText } from './json-text.js';
import type {
  BundleSpec, DeploymentRow, DeploymentState, DeviceRow, Enrollment, EnrollmentTokenSpec, EnrollRequestSpec,
  RunRow, RunState,
} from './store.js';

interface DeviceDbRow {
  id: string; name: string; labels_json: string; credential_hash: string; facts_json: string;
  transport: string | null; first_seen_ms: number; last_seen_ms: number; online: number;
}

interface TokenDbRow {
  labels_json: string; device_name: string | null; expires_at_ms: number; used_at_ms: number | null; used_by_device: string | null;
}

const toDevice = (r: DeviceDbRow): DeviceRow => ({
  id: r.id, name: r.name, labels: fromJsonText(r.labels_json, {}), facts: fromJsonText(r.facts_json, {}),
  transport: r.transport, firstSeenMs: r.first_seen_ms, lastSeenMs: r.last_seen_ms, online: r.online === 1,
});

const RUN_STATES: Record<ProbeStatus_State, RunState> = {
  [ProbeStatus_State.STATE_UNSPECIFIED]: 'unknown',
  [ProbeStatus_State.STATE_RUNNING]: 'running',
  [ProbeStatus_State.STATE_STOPPED]: 'stopped',
  [ProbeStatus_State.STATE_CRASHED]: 'crashed',
  [ProbeStatus_State.STATE_FAILED]: 'failed',
  [ProbeStatus_State.UNRECOGNIZED]: 'unknown',
};

function parseHello(text: string | null): unknown {
  if (!text) return null;
  try { return JSON.parse(text); } catch { return text; }
}

export class SqliteRegistry {
  constructor(private readonly db: Database.Database) {}

  createEnrollmentToken(spec: EnrollmentTokenSpec, nowMs: number): { token: string; expiresAtMs: number } {
    if (!(spec.ttlMs > 0)) throw new RangeError(`enrollment token ttlMs must be > 0, got ${spec.ttlMs}`);
    const token = newSecret();
    const expiresAtMs = nowMs + spec.ttlMs;
    this.db.prepare(
      `INSERT INTO enrollment_tokens (token_hash, labels_json, device_name, created_at_ms, expires_at_ms)
       VALUES (?, ?, ?, ?, ?)`).run(hashSecret(token), JSON.stringify(spec.labels ?? {}), spec.deviceName ?? null, nowMs, expiresAtMs);
    return { token, expiresAtMs };
  }

  enroll(req: EnrollRequestSpec, nowMs: number): Enrollment {
    if (!req.deviceName) throw new EnrollmentError('enrollment needs a device name');
    return this.db.transaction((): Enrollment => {
      const hash = hashSecret(req.token);
      const t = this.db.prepare('SELECT * FROM enrollment_tokens WHERE token_hash = ?').get(hash) as TokenDbRow | undefined;
      if (!t) throw new EnrollmentError('unknown enrollment token: create one with `bpfleet token create`');
      if (t.used_at_ms !== null) {
        throw new EnrollmentError(`enrollment token already used by device ${t.used_by_device} at ` +
          `${new Date(t.used_at_ms).toISOString()}: tokens are one-time, create a new one`);
      }
      if (t.expires_at_ms <= nowMs) {
        throw new EnrollmentError(`enrollment token expired at ${new Date(t.expires_at_ms).toISOString()}: create a new one`);
      }
      const existing = this.db.prepare('SELECT id FROM devices WHERE name = ?').get(req.deviceName) as { id: string } | undefined;
      if (existing && t.device_name !== req.deviceName) {
        throw new EnrollmentError(`device name "${req.deviceName}" is taken by device ${existing.id}: pick another ` +
          `name, or create a token for that name (bpfleet token create --name ${req.deviceName}) to re-enroll it`);
      }
      const credential = newSecret();
      const facts = toJsonText(req.facts ?? {});
      const deviceId = existing?.id ?? newDeviceId();
      if (existing) {
        this.db.prepare(`UPDATE devices SET credential_hash = ?, labels_json = ?, facts_json = ?, transport = ?,
          last_seen_ms = ? WHERE id = ?`).run(hashSecret(credential), t.labels_json, facts, req.transport ?? null, nowMs, deviceId);
        this.db.prepare('UPDATE devices SET mqtt_password_hash = ? WHERE id = ?').run(mosquittoPasswordHash(credential), deviceId);
      } else {
        this.db.prepare(`INSERT INTO devices (id, name, labels_json, credential_hash, facts_json, transport, first_seen_ms,
          last_seen_ms, online) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`)
          .run(deviceId, req.deviceName, t.labels_json, hashSecret(credential), facts, req.transport ?? null, nowMs, nowMs);
        this.db.prepare('UPDATE devices SET mqtt_password_hash = ? WHERE id = ?').run(mosquittoPasswordHash(credential), deviceId);
      }
      this.db.prepare('UPDATE enrollment_tokens SET used_at_ms = ?, used_by_device = ? WHERE token_hash = ?').run(nowMs, deviceId, hash);
      return { deviceId, credential, labels: JSON.parse(t.labels_json) as Record<string, string> };
    }).immediate();
  }

  authenticate(deviceId: string, credential: string): DeviceRow | undefined {
    const r = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(deviceId) as DeviceDbRow | undefined;
    return r && secretMatches(credential, r.credential_hash) ? toDevice(r) : undefined;
  }

  deviceByCredential(credential: string): DeviceRow | undefined {
    // Looked up by hash: a 256-bit random secret's sha256 reveals nothing to a timing attack.
    const r = this.db.prepare('SELECT * FROM devices WHERE credential_hash = ?').get(hashSecret(credential)) as DeviceDbRow | undefined;
    return r && toDevice(r);
  }

  markSeen(deviceId: string, seen: { online: boolean; transport?: string; facts?: DeviceFacts }, nowMs: number): void {
    const r = this.db.prepare(`UPDATE devices SET last_seen_ms = ?, online = ?, transport = coalesce(?, transport),
      facts_json = coalesce(?, facts_json) WHERE id = ?`)
      .run(nowMs, seen.online ? 1 : 0, seen.transport ?? null, seen.facts ? toJsonText(seen.facts) : null, deviceId);
    if (r.changes === 0) throw new StoreConflictError(`unknown device ${deviceId}: enroll it first`);
  }

  /** Each device's credential as an external MQTT broker's password file wants it (null: enrolled before there was one). */
  mqttPasswordHashes(): { deviceId: string; name: string; hash: string | null }[] {
    return this.db.prepare('SELECT id AS deviceId, name, mqtt_password_hash AS hash FROM devices ORDER BY name')
      .all() as { deviceId: string; name: string; hash: string | null }[];
  }

  devices(): DeviceRow[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY name').all() as DeviceDbRow[]).map(toDevice);
  }

  putBundle(b: BundleSpec, nowMs: number): number {
    return this.db.transaction((): number => {
      const old = this.db.prepare('SELECT id, sha256 FROM bundles WHERE probe = ? AND version = ? AND arch = ?')
        .get(b.probe, b.version, b.arch) as { id: number; sha256: string } | undefined;
      if (old) {
        if (old.sha256 !== b.sha256) {
          throw new StoreConflictError(`bundle ${b.probe} ${b.version} ${b.arch} exists with another digest ` +
            `(${old.sha256}): a released version never changes, bump the version`);
        }
        return old.id;
      }
      return Number(this.db.prepare(`INSERT INTO bundles (probe, version, arch, sha256, signature, created_at_ms)
        VALUES (?, ?, ?, ?, ?, ?)`).run(b.probe, b.version, b.arch, b.sha256, b.signature, nowMs).lastInsertRowid);
    }).immediate();
  }

  setDeployment(deviceId: string, bundleId: number, state: DeploymentState, reason: string, nowMs: number): void {
    this.db.prepare(`INSERT INTO deployments (device_id, bundle_id, state, reason, updated_at_ms) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (device_id, bundle_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
        updated_at_ms = excluded.updated_at_ms`).run(deviceId, bundleId, state, reason, nowMs);
  }

  deployments(deviceId?: string): DeploymentRow[] {
    const rows = this.db.prepare(`SELECT d.device_id, d.bundle_id, b.probe, b.version, b.arch, d.state, d.reason, d.updated_at_ms
      FROM deployments d JOIN bundles b ON b.id = d.bundle_id ${deviceId === undefined ? '' : 'WHERE d.device_id = ?'}
      ORDER BY d.device_id, b.probe, b.version`).all(...(deviceId === undefined ? [] : [deviceId])) as
      { device_id: string; bundle_id: number; probe: string; version: string; arch: string; state: DeploymentState; reason: string; updated_at_ms: number }[];
    return rows.map((r) => ({ deviceId: r.device_id, bundleId: r.bundle_id, probe: r.probe, version: r.version, arch: r.arch,
      state: r.state, reason: r.reason, updatedAtMs: r.updated_at_ms }));
  }

  startRun(run: { runId: string; deviceId: string; probe: string; args: string[] }, nowMs: number): void {
    if (run.runId.includes('/')) throw new RangeError(`run id "${run.runId}" must not contain '/': it is part of stream ids`);
    const r = this.db.prepare(`INSERT INTO runs (run_id, device_id, probe, args_json, state, reason, created_at_ms, updated_at_ms)
      VALUES (?, ?, ?, ?, 'starting', '', ?, ?) ON CONFLICT (run_id) DO NOTHING`)
      .run(run.runId, run.deviceId, run.probe, JSON.stringify(run.args), nowMs, nowMs);
    if (r.changes === 0) throw new StoreConflictError(`run ${run.runId} exists already: run ids are unique`);
  }

  recordProbeStatus(deviceId: string, st: ProbeStatus, nowMs: number): void {
    const state = RUN_STATES[st.state];
    const exited = state === 'stopped' || state === 'crashed' || state === 'failed';
    // A status for a run the controller did not record (it restarted, or lost the start) is kept too.
    const r = this.db.prepare(`INSERT INTO runs (run_id, device_id, probe, args_json, state, reason, exit_code, restarts,
        loader_hello_json, stream_id, created_at_ms, updated_at_ms) VALUES (?, ?, ?, '[]', ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, exit_code = excluded.exit_code,
        restarts = excluded.restarts, loader_hello_json = coalesce(excluded.loader_hello_json, runs.loader_hello_json),
        stream_id = coalesce(excluded.stream_id, runs.stream_id), updated_at_ms = excluded.updated_at_ms
      WHERE runs.device_id = excluded.device_id`)
      .run(st.runId, deviceId, st.probe, state, st.reason, exited ? st.exitCode : null, st.restarts,
        st.loaderHelloJson || null, st.streamId || null, nowMs, nowMs);
    if (r.changes === 0) throw new StoreConflictError(`probe status for run ${st.runId} from device ${deviceId}: the run belongs to another device`);
  }

  runs(filter: { deviceId?: string } = {}): RunRow[] {
    const rows = this.db.prepare(`SELECT * FROM runs ${filter.deviceId === undefined ? '' : 'WHERE device_id = ?'}
      ORDER BY created_at_ms, run_id`).all(...(filter.deviceId === undefined ? [] : [filter.deviceId])) as
      { run_id: string; device_id: string; probe: string; args_json: string; state: RunState; reason: string; exit_code: number | null;
        restarts: number; loader_hello_json: string | null; stream_id: string | null; created_at_ms: number; updated_at_ms: number }[];
    return rows.map((r) => ({ runId: r.run_id, deviceId: r.device_id, probe: r.probe, args: JSON.parse(r.args_json) as string[],
      state: r.state, reason: r.reason, exitCode: r.exit_code, restarts: r.restarts, loaderHello: parseHello(r.loader_hello_json),
      streamId: r.stream_id, createdAtMs: r.created_at_ms, updatedAtMs: r.updated_at_ms }));
  }
}
