// The spool's public types: options, the disk-full error, statistics. See spool.ts.

export type SyncPolicy = 'always' | 'interval' | 'none';

export interface SpoolOptions {
  /** Directory of the segment files and the state file; created if missing. */
  dir: string;
  /** Size bound over all segments; beyond it the oldest segments are evicted. */
  maxBytes: number;
  /** A segment is closed and a new one started past this size (default 8 MiB, at most maxBytes / 4). */
  segmentBytes?: number;
  /** When segment data is flushed to the device (default 'interval'); trade-offs in spool.ts. */
  sync?: SyncPolicy;
  /** Flush period of sync 'interval' (default 200 ms): at most this much is lost in a power cut. */
  syncIntervalMs?: number;
  /** How often acknowledged positions are written to the state file at most (default 1000 ms). */
  stateFlushMs?: number;
  /** One line per event worth a person's attention (eviction, damage found); default stderr. */
  log?: (line: string) => void;
}

/** The disk (or quota) is full: the batch was not spooled and nothing of it was left behind. */
export class SpoolFullError extends Error {
  override name = 'SpoolFullError';
  constructor(
    readonly dir: string,
    readonly code: string,
    readonly streamId: string,
    readonly records: number,
  ) {
    const what = code === 'EDQUOT' ? 'disk quota exceeded' : 'disk full';
    super(
      `spool: ${what} at ${dir} (${code}): ${records} records of ${streamId} not spooled; ` +
        'free space or lower spool_max_bytes',
    );
  }
}

export interface SpoolStreamStats {
  streamId: string;
  firstSeq: bigint;
  nextSeq: bigint;
  /** Records evicted unsent by the size bound. */
  evicted: number;
  /** Records an open found missing from the log (damaged, torn after being spooled, removed). */
  corrupt: number;
  /** Records an append refused (disk full, bad batch, write error). */
  appendErrors: number;
}

export interface SpoolStats {
  bytes: number;
  segments: number;
  /** Log records (batches) that failed their checksum, cumulative. */
  corrupt: number;
  /** Bytes of incomplete records cut off at the last open. */
  tornBytes: number;
  /** Failed background fsyncs (sync: 'interval'). */
  syncErrors: number;
  evicted: number;
  appendErrors: number;
  streams: SpoolStreamStats[];
}
