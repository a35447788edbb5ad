// `--store <location>`: a file path (or sqlite:<path>) opens the SQLite store; a postgres:// or
// postgresql:// URL opens the PostgreSQL store, which several controllers can share
// (docs/SCALE-OUT.md).
import { PgStore, type PgStoreOptions } from './pg/pg-store.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { Store } from './store.js';

export function isPostgresLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//.test(location);
}

export async function openStore(location: string, opts: SqliteStoreOptions & PgStoreOptions = {}): Promise<Store> {
  if (isPostgresLocation(location)) return PgStore.open(location, opts);
  return SqliteStore.open(location.startsWith('sqlite:') ? location.slice('sqlite:'.length) : location, opts);
}
