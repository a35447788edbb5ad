// The PostgreSQL store: several controllers sharing one database (docs/SCALE-OUT.md).
export { PgStore, type PgStoreOptions } from './pg-store.js';
export { PG_LATEST_VERSION, PG_MIGRATIONS, PgSchemaTooNewError } from './pg-migrations.js';
export { parsePgUrl, redact as redactPgUrl } from './pg-errors.js';
