// `--store <location>`: a file path (or sqlite:<path>) opens the SQLite store; postgres:// is
// reserved for the PostgreSQL store (not written yet).
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { Store } from './store.js';

export function openStore(location: string, opts: SqliteStoreOptions = {}): Store {
  if (/^postgres(ql)?:\/\//.test(location)) {
    throw new Error('--store postgres:// is not implemented yet: use a SQLite file path for now');
  }
  return SqliteStore.open(location.startsWith('sqlite:') ? location.slice('sqlite:'.length) : location, opts);
}
