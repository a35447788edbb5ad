// SQLite failures of the database file turned into StoreIoError messages that name the file and
// say what to do. Anything else (constraint violations: bugs) passes through unchanged.
import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { StoreIoError } from './errors.js';

export function translateSqliteError(err: unknown, path: string, busyTimeoutMs: number): unknown {
  if (!(err instanceof Database.SqliteError)) return err;
  const base = err.code.split('_').slice(0, 2).join('_');
  const io = (why: string): StoreIoError => new StoreIoError(`${why} (${err.code}: ${err.message})`, path, err.code, { cause: err });
  switch (base) {
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
      return io(`database ${path} stayed locked by another connection for more than ${busyTimeoutMs} ms: ` +
        'is a second controller or a long-running sqlite3 shell using the same file? Nothing of this call was stored');
    case 'SQLITE_READONLY':
      return io(`database ${path} is read-only: make the file and its directory ${dirname(path)} writable ` +
        '(SQLite creates the -wal and -shm files next to it)');
    case 'SQLITE_FULL':
      return io(`database ${path}: disk full or size limit reached; free space on ${dirname(path)}. ` +
        'Nothing of this call was stored and nothing was acked, so agents keep their spooled data');
    case 'SQLITE_CANTOPEN':
      return io(`cannot open database ${path}: does ${dirname(path)} exist and is it writable?`);
    case 'SQLITE_IOERR':
      return io(`I/O error on database ${path}: check the disk and the kernel log`);
    case 'SQLITE_CORRUPT':
    case 'SQLITE_NOTADB':
      return io(`${path} is not a bpfleet database or is corrupt: move it away, or restore a backup`);
    default:
      return err;
  }
}
