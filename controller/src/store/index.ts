// The controller's store: interface, errors, and the SQLite implementation.
export type * from './store.js';
export { BatchRejectedError, EnrollmentError, StoreConflictError, StoreIoError, type RejectCode } from './errors.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
export { openStore, isPostgresLocation } from './open-store.js';
export { PgStore, type PgStoreOptions } from './pg/pg-store.js';
export { LATEST_VERSION as STORE_SCHEMA_VERSION } from './migrations.js';
