// Device registry in PostgreSQL: enrollment tokens, devices, bundles, deployments, probe runs.
// Every check-then-write runs in one transaction holding the row it depends on (FOR UPDATE)
// or is a single upsert, so two controllers acting at once give the same answers as one.
import type { Pool, PoolClient } from 'pg';
import { ProbeStatus_State, type DeviceFacts, type ProbeStatus } from '@bpfleet/proto';
import { hashSecret, mosquittoPasswordHash, newDeviceId, newSecret, secretMatches } from '../credentials.js';
import { EnrollmentError, StoreConflictError } from '../errors.js';
import { fromJsonText, toJsonText } from '../json-text.js';
import type {
  BundleSpec, DeploymentRow, DeploymentState, DeviceRow, Enrollment, EnrollmentTokenSpec, EnrollRequestSpec, RunRow, RunState,
} from '../store.js';

interface DeviceDbRow {
  id: string; name: string; labels_json: string; credential_hash: string; facts_json: string;
  transport: string | null; first_seen_ms: string; last_seen_ms: string; online: boolean;
}

const toDevice = (r: DeviceDbRow): DeviceRow => ({
  id: r.id, name: r.name, labels: fromJsonText(r.labels_json, {}), facts: fromJsonText(r.facts_json, {}),
  transport: r.transport, firstSeenMs: Number(r.first_seen_ms), lastSeenMs: Number(r.last_seen_ms), online: r.online,
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

export type InTx = <T>(fn: (c: PoolClient) => Promise<T>) => Promise<T>;

export class PgRegistry {
  constructor(private readonly pool: Pool, private readonly tx: InTx) {}

  async createEnrollmentToken(spec: EnrollmentTokenSpec, nowMs: number): Promise<{ token: string; expiresAtMs: number }> {
    if (!(spec.ttlMs > 0)) throw new RangeError(`enrollment token ttlMs must be > 0, got ${spec.ttlMs}`);
    const token = newSecret();
    const expiresAtMs = nowMs + spec.ttlMs;
    await this.pool.query(`INSERT INTO enrollment_tokens (token_hash, labels_json, device_name, created_at_ms, expires_at_ms)
      VALUES ($1, $2, $3, $4, $5)`, [hashSecret(token), JSON.stringify(spec.labels ?? {}), spec.deviceName ?? null, nowMs, expiresAtMs]);
    return { token, expiresAtMs };
  }

  enroll(req: EnrollRequestSpec, nowMs: number): Promise<Enrollment> {
    if (!req.deviceName) return Promise.reject(new EnrollmentError('enrollment needs a device name'));
    return this.tx(async (c): Promise<Enrollment> => {
      const hash = hashSecret(req.token);
      // The token row is the lock: of two controllers presenting one token, the second waits and sees it used.
      const t = (await c.query<{ labels_json: string; device_name: string | null; expires_at_ms: string; used_at_ms: string | null;
        used_by_device: string | null }>('SELECT * FROM enrollment_tokens WHERE token_hash = $1 FOR UPDATE', [hash])).rows[0];
      if (!t) throw new EnrollmentError('unknown enrollment token: create one with `bpfleet token create`');
      if (t.used_at_ms !== null) {
        throw new EnrollmentError(`enrollment token already used by device ${t.used_by_device} at ` +
          `${new Date(Number(t.used_at_ms)).toISOString()}: tokens are one-time, create a new one`);
      }
      if (Number(t.expires_at_ms) <= nowMs) {
        throw new EnrollmentError(`enrollment token expired at ${new Date(Number(t.expires_at_ms)).toISOString()}: create a new one`);
      }
      const existing = (await c.query<{ id: string }>('SELECT id FROM devices WHERE name = $1 FOR UPDATE', [req.deviceName])).rows[0];
      const taken = (id: string) => new EnrollmentError(`device name "${req.deviceName}" is taken by device ${id}: pick another ` +
        `name, or create a token for that name (bpfleet token create --name ${req.deviceName}) to re-enroll it`);
      if (existing && t.device_name !== req.deviceName) throw taken(existing.id);
      const credential = newSecret();
      const facts = toJsonText(req.facts ?? {});
      const deviceId = existing?.id ?? newDeviceId();
      if (existing) {
        await c.query(`UPDATE devices SET credential_hash = $1, mqtt_password_hash = $2, labels_json = $3, facts_json = $4,
          transport = $5, last_seen_ms = $6 WHERE id = $7`,
        [hashSecret(credential), mosquittoPasswordHash(credential), t.labels_json, facts, req.transport ?? null, nowMs, deviceId]);
      } else {
        // Another controller may create the same name concurrently with another token: the
        // unique name decides, and the loser is told the name is taken.
        const r = await c.query(`INSERT INTO devices (id, name, labels_json, credential_hash, mqtt_password_hash, facts_json,
            transport, first_seen_ms, last_seen_ms, online) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, false)
          ON CONFLICT (name) DO NOTHING`,
        [deviceId, req.deviceName, t.labels_json, hashSecret(credential), mosquittoPasswordHash(credential), facts,
          req.transport ?? null, nowMs]);
        if (r.rowCount === 0) {
          const other = (await c.query<{ id: string }>('SELECT id FROM devices WHERE name = $1', [req.deviceName])).rows[0];
          throw taken(other?.id ?? '(another controller\'s, just now)');
        }
      }
      await c.query('UPDATE enrollment_tokens SET used_at_ms = $1, used_by_device = $2 WHERE token_hash = $3', [nowMs, deviceId, hash]);
      return { deviceId, credential, labels: JSON.parse(t.labels_json) as Record<string, string> };
    });
  }

  async authenticate(deviceId: string, credential: string): Promise<DeviceRow | undefined> {
    const r = (await this.pool.query<DeviceDbRow>('SELECT * FROM devices WHERE id = $1', [deviceId])).rows[0];
    return r && secretMatches(credential, r.credential_hash) ? toDevice(r) : undefined;
  }

  async deviceByCredential(credential: string): Promise<DeviceRow | undefined> {
    // Looked up by hash: a 256-bit random secret's sha256 reveals nothing to a timing attack.
    const r = (await this.pool.query<DeviceDbRow>('SELECT * FROM devices WHERE credential_hash = $1', [hashSecret(credential)])).rows[0];
    return r && toDevice(r);
  }

  async markSeen(deviceId: string, seen: { online: boolean; transport?: string; facts?: DeviceFacts }, nowMs: number): Promise<void> {
    const r = await this.pool.query(`UPDATE devices SET last_seen_ms = $1, online = $2, transport = coalesce($3, transport),
      facts_json = coalesce($4, facts_json) WHERE id = $5`,
    [nowMs, seen.online, seen.transport ?? null, seen.facts ? toJsonText(seen.facts) : null, deviceId]);
    if (r.rowCount === 0) throw new StoreConflictError(`unknown device ${deviceId}: enroll it first`);
  }

  async mqttPasswordHashes(): Promise<{ deviceId: string; name: string; hash: string | null }[]> {
    return (await this.pool.query<{ deviceId: string; name: string; hash: string | null }>(
      'SELECT id AS "deviceId", name, mqtt_password_hash AS hash FROM devices ORDER BY name')).rows;
  }

  async devices(): Promise<DeviceRow[]> {
    return (await this.pool.query<DeviceDbRow>('SELECT * FROM devices ORDER BY name')).rows.map(toDevice);
  }

  async putBundle(b: BundleSpec, nowMs: number): Promise<number> {
    const ins = await this.pool.query<{ id: string }>(`INSERT INTO bundles (probe, version, arch, sha256, signature, created_at_ms)
      VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (probe, version, arch) DO NOTHING RETURNING id`,
    [b.probe, b.version, b.arch, b.sha256, b.signature, nowMs]);
    if (ins.rows[0]) return Number(ins.rows[0].id);
    const old = (await this.pool.query<{ id: string; sha256: string }>(
      'SELECT id, sha256 FROM bundles WHERE probe = $1 AND version = $2 AND arch = $3', [b.probe, b.version, b.arch])).rows[0]!;
    if (old.sha256 !== b.sha256) {
      throw new StoreConflictError(`bundle ${b.probe} ${b.version} ${b.arch} exists with another digest ` +
        `(${old.sha256}): a released version never changes, bump the version`);
    }
    return Number(old.id);
  }

  async setDeployment(deviceId: string, bundleId: number, state: DeploymentState, reason: string, nowMs: number): Promise<void> {
    await this.pool.query(`INSERT INTO deployments (device_id, bundle_id, state, reason, updated_at_ms) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (device_id, bundle_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
        updated_at_ms = excluded.updated_at_ms`, [deviceId, bundleId, state, reason, nowMs]);
  }

  async deployments(deviceId?: string): Promise<DeploymentRow[]> {
    const r = await this.pool.query<{ device_id: string; bundle_id: string; probe: string; version: string; arch: string;
      state: DeploymentState; reason: string; updated_at_ms: string }>(
      `SELECT d.device_id, d.bundle_id, b.probe, b.version, b.arch, d.state, d.reason, d.updated_at_ms
       FROM deployments d JOIN bundles b ON b.id = d.bundle_id ${deviceId === undefined ? '' : 'WHERE d.device_id = $1'}
       ORDER BY d.device_id, b.probe, b.version`, deviceId === undefined ? [] : [deviceId]);
    return r.rows.map((x) => ({ deviceId: x.device_id, bundleId: Number(x.bundle_id), probe: x.probe, version: x.version,
      arch: x.arch, state: x.state, reason: x.reason, updatedAtMs: Number(x.updated_at_ms) }));
  }

  async startRun(run: { runId: string; deviceId: string; probe: string; args: string[] }, nowMs: number): Promise<void> {
    if (run.runId.includes('/')) throw new RangeError(`run id "${run.runId}" must not contain '/': it is part of stream ids`);
    const r = await this.pool.query(`INSERT INTO runs (run_id, device_id, probe, args_json, state, reason, created_at_ms,
        updated_at_ms) VALUES ($1, $2, $3, $4, 'starting', '', $5, $5) ON CONFLICT (run_id) DO NOTHING`,
    [run.runId, run.deviceId, run.probe, JSON.stringify(run.args), nowMs]);
    if (r.rowCount === 0) throw new StoreConflictError(`run ${run.runId} exists already: run ids are unique`);
  }

  async recordProbeStatus(deviceId: string, st: ProbeStatus, nowMs: number): Promise<void> {
    const state = RUN_STATES[st.state];
    const exited = state === 'stopped' || state === 'crashed' || state === 'failed';
    // A status for a run the controller did not record (it restarted, or lost the start) is kept too.
    const r = await this.pool.query(`INSERT INTO runs (run_id, device_id, probe, args_json, state, reason, exit_code, restarts,
        loader_hello_json, stream_id, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, '[]', $4, $5, $6, $7, $8, $9, $10, $10)
      ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, exit_code = excluded.exit_code,
        restarts = excluded.restarts, loader_hello_json = coalesce(excluded.loader_hello_json, runs.loader_hello_json),
        stream_id = coalesce(excluded.stream_id, runs.stream_id), updated_at_ms = excluded.updated_at_ms
      WHERE runs.device_id = excluded.device_id`,
    [st.runId, deviceId, st.probe, state, st.reason, exited ? st.exitCode : null, st.restarts, st.loaderHelloJson || null,
      st.streamId || null, nowMs]);
    if (r.rowCount === 0) {
      throw new StoreConflictError(`probe status for run ${st.runId} from device ${deviceId}: the run belongs to another device`);
    }
  }

  async runs(filter: { deviceId?: string } = {}): Promise<RunRow[]> {
    const r = await this.pool.query<{ run_id: string; device_id: string; probe: string; args_json: string; state: RunState;
      reason: string; exit_code: number | null; restarts: number; loader_hello_json: string | null; stream_id: string | null;
      created_at_ms: string; updated_at_ms: string }>(
      `SELECT * FROM runs ${filter.deviceId === undefined ? '' : 'WHERE device_id = $1'} ORDER BY created_at_ms, run_id`,
      filter.deviceId === undefined ? [] : [filter.deviceId]);
    return r.rows.map((x) => ({ runId: x.run_id, deviceId: x.device_id, probe: x.probe, args: JSON.parse(x.args_json) as string[],
      state: x.state, reason: x.reason, exitCode: x.exit_code, restarts: x.restarts, loaderHello: parseHello(x.loader_hello_json),
      streamId: x.stream_id, createdAtMs: Number(x.created_at_ms), updatedAtMs: Number(x.updated_at_ms) }));
  }
}
