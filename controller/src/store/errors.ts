// Errors the store throws. Each message says what is wrong and what to do about it.

/** Why a batch was refused. Every code is counted per device and stream (see `rejections`). */
export type RejectCode =
  /** The batch contradicts itself: records length vs count x record_size, bad stream id, seq range. */
  | 'malformed'
  /** The batch names a schema_id the controller has no manifest for. */
  | 'unknown_schema'
  /** The batch disagrees with its manifest or with earlier batches of its stream. */
  | 'schema_mismatch'
  /** The stream id names another device than the one that sent it. */
  | 'wrong_device';

/**
 * A batch the store refused. Nothing of it was stored and nothing was acknowledged, so an agent
 * that fixes the cause (or a controller that learns the manifest) can resend it.
 */
export class BatchRejectedError extends Error {
  override name = 'BatchRejectedError';
  constructor(
    readonly code: RejectCode,
    message: string,
    readonly deviceId: string,
    readonly streamId: string,
    /** Records the batch claimed to carry. */
    readonly records: number,
  ) {
    super(message);
  }
}

/** Enrollment refused: unknown, used or expired token, or a device name taken by another device. */
export class EnrollmentError extends Error {
  override name = 'EnrollmentError';
}

/** A request that contradicts what the store holds (a run of another device, a changed manifest). */
export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
}

/** The database file itself is the problem: locked, read-only, disk full, unreadable. */
export class StoreIoError extends Error {
  override name = 'StoreIoError';
  constructor(
    message: string,
    /** Database file path. */
    readonly path: string,
    /** SQLite's extended result code (SQLITE_BUSY, SQLITE_FULL, ...). */
    readonly sqliteCode: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
