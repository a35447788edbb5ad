// schema_id -> manifest. Manifests are immutable (the id carries their hash), so each is
// parsed once and cached for the life of the store.
import type Database from 'better-sqlite3';
import type { Manifest } from '@bpfleet/proto';
import { toSchema, type Schema } from './batch-check.js';
import { StoreConflictError } from './errors.js';

export class SqliteManifests {
  private readonly cache = new Map<string, Schema>();
  private readonly get: Database.Statement<[string], { manifest_json: string }>;
  private readonly insert: Database.Statement<[string, string, string, string, number]>;

  constructor(db: Database.Database) {
    this.get = db.prepare('SELECT manifest_json FROM manifests WHERE schema_id = ?');
    this.insert = db.prepare(
      'INSERT INTO manifests (schema_id, probe, version, manifest_json, created_at_ms) VALUES (?, ?, ?, ?, ?)');
  }

  put(schemaId: string, manifest: Manifest): void {
    const schema = toSchema(schemaId, manifest);
    const json = JSON.stringify(manifest);
    const existing = this.get.get(schemaId);
    if (existing) {
      if (existing.manifest_json !== json) {
        throw new StoreConflictError(`schema ${schemaId} is already stored with a different manifest: ` +
          'a schema id names one manifest forever; the agent must compute it from the manifest\'s hash');
      }
      return;
    }
    this.insert.run(schemaId, manifest.probe, manifest.version, json, Date.now());
    this.cache.set(schemaId, schema);
  }

  schema(schemaId: string): Schema | undefined {
    const hit = this.cache.get(schemaId);
    if (hit) return hit;
    const row = this.get.get(schemaId);
    if (!row) return undefined;
    const schema = toSchema(schemaId, JSON.parse(row.manifest_json) as Manifest);
    this.cache.set(schemaId, schema);
    return schema;
  }
}
