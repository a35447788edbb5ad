// schema_id -> manifest. A schema id names one manifest forever (it carries its hash), so each
// is parsed once per controller and cached: a cache of immutable rows, never of state that
// another controller could change.
import type { Pool, PoolClient } from 'pg';
import type { Manifest } from '@bpfleet/proto';
import { toSchema, type Schema } from '../batch-check.js';
import { StoreConflictError } from '../errors.js';

export class PgManifests {
  private readonly cache = new Map<string, Schema>();

  async put(db: Pool | PoolClient, schemaId: string, manifest: Manifest, nowMs: number): Promise<void> {
    const schema = toSchema(schemaId, manifest);
    const json = JSON.stringify(manifest);
    // Two controllers registering the same built manifests at start: one inserts, the other finds it.
    await db.query(`INSERT INTO manifests (schema_id, probe, version, manifest_json, created_at_ms) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (schema_id) DO NOTHING`, [schemaId, manifest.probe, manifest.version, json, nowMs]);
    const r = await db.query<{ manifest_json: string }>('SELECT manifest_json FROM manifests WHERE schema_id = $1', [schemaId]);
    if (r.rows[0]!.manifest_json !== json) {
      throw new StoreConflictError(`schema ${schemaId} is already stored with a different manifest: ` +
        'a schema id names one manifest forever; the agent must compute it from the manifest\'s hash');
    }
    this.cache.set(schemaId, schema);
  }

  async schema(db: Pool | PoolClient, schemaId: string): Promise<Schema | undefined> {
    const hit = this.cache.get(schemaId);
    if (hit) return hit;
    const r = await db.query<{ manifest_json: string }>('SELECT manifest_json FROM manifests WHERE schema_id = $1', [schemaId]);
    if (!r.rows[0]) return undefined;
    const schema = toSchema(schemaId, JSON.parse(r.rows[0].manifest_json) as Manifest);
    this.cache.set(schemaId, schema);
    return schema;
  }
}
