// Versioned schema of the SQLite store. Migrations run in order, each in its own transaction
// together with its schema_version row; a released migration is never edited, only followed.
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  what: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'device registry: enrollment tokens, devices, manifests, bundles, deployments, probe runs',
    sql: `
      CREATE TABLE enrollment_tokens (
        token_hash TEXT PRIMARY KEY,            -- sha256 hex of the token; the token is shown once
        labels_json TEXT NOT NULL,
        device_name TEXT,                       -- set: may re-enroll the existing device of that name
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        used_at_ms INTEGER,
        used_by_device TEXT
      ) STRICT;
      CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        labels_json TEXT NOT NULL,
        credential_hash TEXT NOT NULL,          -- sha256 hex of a random 32-byte secret
        facts_json TEXT NOT NULL,
        transport TEXT,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        online INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      CREATE TABLE manifests (
        schema_id TEXT PRIMARY KEY,
        probe TEXT NOT NULL,
        version TEXT NOT NULL,
        manifest_json TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE bundles (
        id INTEGER PRIMARY KEY,
        probe TEXT NOT NULL,
        version TEXT NOT NULL,
        arch TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        signature BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        UNIQUE (probe, version, arch)
      ) STRICT;
      CREATE TABLE deployments (
        device_id TEXT NOT NULL REFERENCES devices(id),
        bundle_id INTEGER NOT NULL REFERENCES bundles(id),
        state TEXT NOT NULL CHECK (state IN ('pending', 'installed', 'failed', 'removed')),
        reason TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (device_id, bundle_id)
      ) STRICT;
      CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        probe TEXT NOT NULL,
        args_json TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        exit_code INTEGER,
        restarts INTEGER NOT NULL DEFAULT 0,
        loader_hello_json TEXT,
        stream_id TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX runs_by_device ON runs(device_id);
    `,
  },
  {
    version: 2,
    what: 'event streams: streams with cursors, batches of records, gaps, rejected batches',
    sql: `
      CREATE TABLE streams (
        id INTEGER PRIMARY KEY,                 -- batches and gaps refer to this, not the text id
        stream_id TEXT NOT NULL UNIQUE,         -- "<device>/<probe>/<run>"
        device_id TEXT NOT NULL,
        probe TEXT NOT NULL,
        run_id TEXT NOT NULL,
        schema_id TEXT,                         -- fixed by the first stored batch
        record_size INTEGER,
        next_seq INTEGER NOT NULL DEFAULT 0,    -- one past the highest seq stored or in a gap; inserts set 1 (streams start at seq 1)
        stored_records INTEGER NOT NULL DEFAULT 0,
        stored_batches INTEGER NOT NULL DEFAULT 0,
        duplicate_records INTEGER NOT NULL DEFAULT 0,
        open_gap_records INTEGER NOT NULL DEFAULT 0,
        lost_gap_records INTEGER NOT NULL DEFAULT 0,
        filled_gap_records INTEGER NOT NULL DEFAULT 0,
        max_span_ns INTEGER NOT NULL DEFAULT 0, -- widest max_wall - min_wall of its batches
        created_at_ms INTEGER NOT NULL,
        last_batch_at_ms INTEGER
      ) STRICT;
      CREATE INDEX streams_by_device ON streams(device_id, probe);
      -- One row per stored piece of a batch: count records of the stream's record_size,
      -- seqs [first_seq, first_seq + count). Never overlapping (the unique index is the backstop).
      CREATE TABLE batches (
        stream INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        count INTEGER NOT NULL,
        min_wall_ns INTEGER NOT NULL,           -- min/max of ts_ns + clock_offset_ns
        max_wall_ns INTEGER NOT NULL,
        clock_offset_ns INTEGER NOT NULL,
        received_at_ms INTEGER NOT NULL,
        records BLOB NOT NULL,
        interval_index BLOB                     -- u32 LE per record, interval probes only
      ) STRICT;
      CREATE UNIQUE INDEX batches_by_seq ON batches(stream, first_seq);
      CREATE INDEX batches_by_time ON batches(min_wall_ns);
      CREATE TABLE gaps (
        stream INTEGER NOT NULL,
        from_seq INTEGER NOT NULL,
        to_seq INTEGER NOT NULL,                -- exclusive
        state TEXT NOT NULL CHECK (state IN ('open', 'lost')),
        detected_at_ms INTEGER NOT NULL,
        PRIMARY KEY (stream, from_seq)
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE rejections (
        device_id TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        code TEXT NOT NULL,
        batches INTEGER NOT NULL,
        records INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        last_at_ms INTEGER NOT NULL,
        PRIMARY KEY (device_id, stream_id, code)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    what: 'telemetry: pipeline stats (latest per stream and history), heartbeats',
    sql: `
      CREATE TABLE stream_stats (
        stream_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        sample_unix_ns INTEGER NOT NULL,
        received_at_ms INTEGER NOT NULL,
        records INTEGER NOT NULL,
        kernel_ringbuf_full INTEGER NOT NULL,
        kernel_map_full INTEGER NOT NULL,
        kernel_sampled_out INTEGER NOT NULL,
        kernel_read_failed INTEGER NOT NULL,
        loader_lost INTEGER NOT NULL,
        agent_queue_dropped INTEGER NOT NULL,
        spool_evicted INTEGER NOT NULL,
        spool_corrupt INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE stream_stats_history (
        stream_id TEXT NOT NULL,
        sample_unix_ns INTEGER NOT NULL,
        received_at_ms INTEGER NOT NULL,
        stats_json TEXT NOT NULL
      ) STRICT;
      CREATE INDEX stream_stats_history_by_stream ON stream_stats_history(stream_id, sample_unix_ns);
      CREATE TABLE heartbeats (
        device_id TEXT NOT NULL,
        time_unix_ns INTEGER NOT NULL,
        received_at_ms INTEGER NOT NULL,
        cpu_busy REAL NOT NULL,
        load1 REAL NOT NULL,
        load5 REAL NOT NULL,
        load15 REAL NOT NULL,
        mem_available_bytes INTEGER NOT NULL,
        mem_total_bytes INTEGER NOT NULL,
        agent_cpu_ns INTEGER NOT NULL,
        agent_rss_bytes INTEGER NOT NULL,
        net_rx_bytes INTEGER NOT NULL,
        net_tx_bytes INTEGER NOT NULL,
        spool_bytes INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX heartbeats_by_device ON heartbeats(device_id, time_unix_ns);
    `,
  },
  {
    version: 4,
    what: 'devices: the credential hashed for an external MQTT broker (Mosquitto password file, PBKDF2-SHA512)',
    sql: `
      -- Made at enrollment, when the credential is known in clear; NULL for devices enrolled before.
      ALTER TABLE devices ADD COLUMN mqtt_password_hash TEXT;
    `,
  },
  {
    version: 5,
    what: 'smoke tests: one row per device x probe of every `bpfleet smoke`',
    sql: `
      CREATE TABLE smoke_results (
        id INTEGER PRIMARY KEY,
        command_id TEXT NOT NULL,               -- the RunSmokeTest; '' when it could not be sent
        device_id TEXT NOT NULL,
        probe TEXT NOT NULL,                    -- '*' when the device could not run the test at all
        version TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'unsupported')),
        reason TEXT NOT NULL,                   -- '' on pass: the verifier/attach error, the missing feature, what did not arrive
        run_id TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        time_to_first_event_ms INTEGER,         -- trigger until the first matching record at the agent
        attach_ms INTEGER,
        verified_insns INTEGER,
        stored_records INTEGER NOT NULL,        -- records of the smoke run in this store when judged
        detail_json TEXT NOT NULL,              -- the agent's per-probe result plus the controller's check
        created_at_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX smoke_results_by_device ON smoke_results(device_id, probe, created_at_ms);
    `,
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The schema version of an open database (0: empty). */
export function schemaVersion(db: Database.Database): number {
  const t = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (!t) return 0;
  const row = db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null };
  return row.v ?? 0;
}

/**
 * Brings the database to `upTo` (default: latest). Refuses a database newer than this code: an
 * older controller must not write into a schema it does not know.
 */
export function migrate(db: Database.Database, path: string, migrations = MIGRATIONS, upTo = LATEST_VERSION): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY, what TEXT NOT NULL, applied_at_ms INTEGER NOT NULL) STRICT`);
  const current = schemaVersion(db);
  const known = migrations[migrations.length - 1]?.version ?? 0;
  if (current > known) {
    throw new Error(`database ${path} is at schema version ${current}, this controller knows up to ${known}: ` +
      'run a controller at least as new as the one that last wrote it');
  }
  const record = db.prepare('INSERT INTO schema_version (version, what, applied_at_ms) VALUES (?, ?, ?)');
  for (const m of migrations) {
    if (m.version <= current || m.version > upTo) continue;
    // Re-read inside the write lock: another controller may have migrated meanwhile.
    db.transaction(() => {
      if (schemaVersion(db) >= m.version) return;
      db.exec(m.sql);
      record.run(m.version, m.what, Date.now());
    }).immediate();
  }
  return schemaVersion(db);
}
