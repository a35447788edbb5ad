// Versioned schema of the PostgreSQL store. All pending migrations run in ONE transaction that
// first takes a transaction-scoped advisory lock: two controllers starting at once against an
// empty database serialize here, the second finds the schema current and does nothing. DDL is
// transactional in PostgreSQL, so a failed migration leaves the database as it was.
// A released migration is never edited, only followed by a new one.
import type { PoolClient } from 'pg';

export interface PgMigration {
  version: number;
  what: string;
  sql: string;
}

/** pg_advisory_xact_lock key of schema migrations: "bpfleet" in ASCII, fits a bigint. */
export const MIGRATION_LOCK_KEY = 0x627066_6c656574n;

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    what: 'device registry: enrollment tokens, devices, manifests, bundles, deployments, probe runs',
    sql: `
      CREATE TABLE enrollment_tokens (
        token_hash text PRIMARY KEY,            -- sha256 hex of the token; the token is shown once
        labels_json text NOT NULL,
        device_name text,                       -- set: may re-enroll the existing device of that name
        created_at_ms bigint NOT NULL,
        expires_at_ms bigint NOT NULL,
        used_at_ms bigint,
        used_by_device text
      );
      CREATE TABLE devices (
        id text PRIMARY KEY,
        name text NOT NULL UNIQUE,
        labels_json text NOT NULL,
        credential_hash text NOT NULL,          -- sha256 hex of a random 32-byte secret
        mqtt_password_hash text,                -- the credential as Mosquitto's password_file wants it
        facts_json text NOT NULL,
        transport text,
        first_seen_ms bigint NOT NULL,
        last_seen_ms bigint NOT NULL,
        online boolean NOT NULL DEFAULT false
      );
      CREATE INDEX devices_by_credential ON devices(credential_hash);
      CREATE TABLE manifests (
        schema_id text PRIMARY KEY,
        probe text NOT NULL,
        version text NOT NULL,
        manifest_json text NOT NULL,
        created_at_ms bigint NOT NULL
      );
      CREATE TABLE bundles (
        id bigserial PRIMARY KEY,
        probe text NOT NULL,
        version text NOT NULL,
        arch text NOT NULL,
        sha256 text NOT NULL,
        signature bytea NOT NULL,
        created_at_ms bigint NOT NULL,
        UNIQUE (probe, version, arch)
      );
      CREATE TABLE deployments (
        device_id text NOT NULL REFERENCES devices(id),
        bundle_id bigint NOT NULL REFERENCES bundles(id),
        state text NOT NULL CHECK (state IN ('pending', 'installed', 'failed', 'removed')),
        reason text NOT NULL,
        updated_at_ms bigint NOT NULL,
        PRIMARY KEY (device_id, bundle_id)
      );
      CREATE TABLE runs (
        run_id text PRIMARY KEY,
        device_id text NOT NULL REFERENCES devices(id),
        probe text NOT NULL,
        args_json text NOT NULL,
        state text NOT NULL,
        reason text NOT NULL,
        exit_code integer,
        restarts integer NOT NULL DEFAULT 0,
        loader_hello_json text,
        stream_id text,
        created_at_ms bigint NOT NULL,
        updated_at_ms bigint NOT NULL
      );
      CREATE INDEX runs_by_device ON runs(device_id);
    `,
  },
  {
    version: 2,
    what: 'event streams: streams with cursors, batches of records, gaps, rejected batches',
    sql: `
      -- The stream row is the lock of its stream: every ingest and declareLost takes it FOR UPDATE
      -- first, so controllers ingesting the same stream at once serialize on it.
      CREATE TABLE streams (
        id bigserial PRIMARY KEY,
        stream_id text NOT NULL UNIQUE,         -- "<device>/<probe>/<run>"
        device_id text NOT NULL,
        probe text NOT NULL,
        run_id text NOT NULL,
        schema_id text,                         -- fixed by the first stored batch
        record_size integer,
        next_seq bigint NOT NULL CHECK (next_seq >= 1), -- streams start at seq 1
        stored_records bigint NOT NULL DEFAULT 0,
        stored_batches bigint NOT NULL DEFAULT 0,
        duplicate_records bigint NOT NULL DEFAULT 0,
        open_gap_records bigint NOT NULL DEFAULT 0,
        lost_gap_records bigint NOT NULL DEFAULT 0,
        filled_gap_records bigint NOT NULL DEFAULT 0,
        max_span_ns bigint NOT NULL DEFAULT 0,  -- widest max_wall - min_wall of its batches
        created_at_ms bigint NOT NULL,
        last_batch_at_ms bigint
      );
      CREATE INDEX streams_by_device ON streams(device_id, probe);
      -- One row per stored piece of a batch: count records of the stream's record_size, seqs
      -- [first_seq, first_seq + count). The exclusion of overlapping ranges is the planner's job
      -- under the stream lock; the primary key is the backstop against a seq stored twice.
      CREATE TABLE batches (
        stream bigint NOT NULL REFERENCES streams(id),
        first_seq bigint NOT NULL CHECK (first_seq >= 1),
        count integer NOT NULL CHECK (count > 0),
        min_wall_ns bigint NOT NULL,            -- min/max of ts_ns + clock_offset_ns
        max_wall_ns bigint NOT NULL,
        clock_offset_ns bigint NOT NULL,
        received_at_ms bigint NOT NULL,
        records bytea NOT NULL,
        interval_index bytea,                   -- u32 LE per record, interval probes only
        -- Which controller committed it (its connection's application_name): who stored what,
        -- when several controllers share the database.
        stored_by text NOT NULL DEFAULT current_setting('application_name'),
        PRIMARY KEY (stream, first_seq)
      );
      CREATE INDEX batches_by_time ON batches(min_wall_ns);
      CREATE TABLE gaps (
        stream bigint NOT NULL REFERENCES streams(id),
        from_seq bigint NOT NULL,
        to_seq bigint NOT NULL CHECK (to_seq > from_seq),   -- exclusive
        state text NOT NULL CHECK (state IN ('open', 'lost')),
        detected_at_ms bigint NOT NULL,
        PRIMARY KEY (stream, from_seq)
      );
      CREATE TABLE rejections (
        device_id text NOT NULL,
        stream_id text NOT NULL,
        code text NOT NULL,
        batches bigint NOT NULL,
        records bigint NOT NULL,
        last_error text NOT NULL,
        last_at_ms bigint NOT NULL,
        PRIMARY KEY (device_id, stream_id, code)
      );
    `,
  },
  {
    version: 3,
    what: 'telemetry: pipeline stats (latest per stream and history), heartbeats',
    sql: `
      CREATE TABLE stream_stats (
        stream_id text PRIMARY KEY,
        device_id text NOT NULL,
        sample_unix_ns bigint NOT NULL,
        received_at_ms bigint NOT NULL,
        records bigint NOT NULL,
        kernel_ringbuf_full bigint NOT NULL,
        kernel_map_full bigint NOT NULL,
        kernel_sampled_out bigint NOT NULL,
        kernel_read_failed bigint NOT NULL,
        loader_lost bigint NOT NULL,
        agent_queue_dropped bigint NOT NULL,
        spool_evicted bigint NOT NULL,
        spool_corrupt bigint NOT NULL
      );
      CREATE TABLE stream_stats_history (
        stream_id text NOT NULL,
        sample_unix_ns bigint NOT NULL,
        received_at_ms bigint NOT NULL,
        stats_json text NOT NULL
      );
      CREATE INDEX stream_stats_history_by_stream ON stream_stats_history(stream_id, sample_unix_ns);
      CREATE TABLE heartbeats (
        device_id text NOT NULL,
        time_unix_ns bigint NOT NULL,
        received_at_ms bigint NOT NULL,
        cpu_busy double precision NOT NULL,
        load1 double precision NOT NULL,
        load5 double precision NOT NULL,
        load15 double precision NOT NULL,
        mem_available_bytes bigint NOT NULL,
        mem_total_bytes bigint NOT NULL,
        agent_cpu_ns bigint NOT NULL,
        agent_rss_bytes bigint NOT NULL,
        net_rx_bytes bigint NOT NULL,
        net_tx_bytes bigint NOT NULL,
        spool_bytes bigint NOT NULL
      );
      CREATE INDEX heartbeats_by_device ON heartbeats(device_id, time_unix_ns);
    `,
  },
  {
    version: 4,
    what: 'smoke tests: one row per device x probe of every `bpfleet smoke`',
    sql: `
      CREATE TABLE smoke_results (
        id bigserial PRIMARY KEY,
        command_id text NOT NULL,
        device_id text NOT NULL,
        probe text NOT NULL,
        version text NOT NULL,
        outcome text NOT NULL CHECK (outcome IN ('pass', 'fail', 'unsupported')),
        reason text NOT NULL,
        run_id text NOT NULL,
        stream_id text NOT NULL,
        time_to_first_event_ms double precision,
        attach_ms double precision,
        verified_insns bigint,
        stored_records bigint NOT NULL,
        detail_json text NOT NULL,
        created_at_ms bigint NOT NULL
      );
      CREATE INDEX smoke_results_by_device ON smoke_results(device_id, probe, created_at_ms);
    `,
  },
  {
    version: 5,
    what: 'batches: the storing transaction, so that readers follow new batches in commit order',
    sql: `
      -- eventsAfter's position. Not an identity column: sequence values are taken at insert, so
      -- a transaction can commit a lower one after a higher one was read. Transaction ids checked
      -- against two snapshots say exactly which batches committed between two reads (pg-events.ts).
      -- Rows stored before this migration keep NULL, which no cursor range matches: they are older
      -- than any cursor, and adding the column this way does not rewrite a large table.
      ALTER TABLE batches ADD COLUMN tx xid8;
      ALTER TABLE batches ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
      CREATE INDEX batches_by_tx ON batches(tx, stream, first_seq);
    `,
  },
];

export const PG_LATEST_VERSION = PG_MIGRATIONS[PG_MIGRATIONS.length - 1]!.version;

/** Thrown when the database holds a schema newer than this controller knows. */
export class PgSchemaTooNewError extends Error {
  override name = 'PgSchemaTooNewError';
}

async function currentVersion(c: PoolClient): Promise<number> {
  const t = await c.query<{ r: string | null }>("SELECT to_regclass('schema_version')::text AS r");
  if (!t.rows[0]?.r) return 0;
  const v = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version');
  return v.rows[0]?.v ?? 0;
}

/**
 * Brings the database to `upTo` (default: latest) in one transaction under the migration
 * advisory lock. Refuses a database newer than this code. Returns the version it left.
 */
export async function pgMigrate(c: PoolClient, location: string, migrations = PG_MIGRATIONS,
  upTo = migrations[migrations.length - 1]?.version ?? 0): Promise<number> {
  await c.query('BEGIN');
  try {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_version (
      version integer PRIMARY KEY, what text NOT NULL, applied_at_ms bigint NOT NULL)`);
    const current = await currentVersion(c);
    const known = migrations[migrations.length - 1]?.version ?? 0;
    if (current > known) {
      throw new PgSchemaTooNewError(`database ${location} is at bpfleet schema version ${current}, this controller knows ` +
        `up to ${known}: run a controller at least as new as the one that last migrated it (all controllers sharing ` +
        'a database must run the same version; upgrade them all)');
    }
    for (const m of migrations) {
      if (m.version <= current || m.version > upTo) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO schema_version (version, what, applied_at_ms) VALUES ($1, $2, $3)', [m.version, m.what, Date.now()]);
    }
    const v = await currentVersion(c);
    await c.query('COMMIT');
    return v;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The schema version of the database (0: empty). */
export async function pgSchemaVersion(c: PoolClient): Promise<number> {
  return currentVersion(c);
}
