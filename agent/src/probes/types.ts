// What a probe run hands to its consumer (the decoder/fan-out). The runner owns processes only;
// everything downstream (sequence numbers, spool, exporters) lives behind ProbeSink.
import type { PipelineStats, ProbeStatus } from '@bpfleet/proto';

/** Records of one run exactly as the loader framed them, concatenated. */
export interface ProbeBatch {
  streamId: string;
  runId: string;
  probe: string;
  count: number;
  /** count records of recordSize bytes each. */
  records: Buffer;
  recordSize: number;
  /** "<probe>@<version>:<first 16 hex of sha256 of the manifest text>". */
  schemaId: string;
  /** From the loader's HELLO: add to a record's ktime to get Unix ns. */
  clockOffsetNs: bigint;
  /** Interval probes: the interval each record belongs to, parallel to records; else empty. */
  intervalIndex: number[];
}

/**
 * The loader and kernel stages of PipelineStats, cumulative for the run (summed over restarts).
 * The agent and spool stages are the consumer's to fill in.
 */
export type LoaderStats = Pick<
  PipelineStats,
  | 'streamId'
  | 'records'
  | 'kernelRingbufFull'
  | 'kernelMapFull'
  | 'kernelSampledOut'
  | 'kernelReadFailed'
  | 'loaderLost'
  | 'timeUnixNs'
> & { runId: string; intervals: bigint };

/**
 * Consumer of a run. Calls are serialized per run and awaited: while a returned promise is
 * pending the runner stops reading the loader's stdout once a few batches wait, so a slow
 * consumer makes the kernel ring buffer fill (and the kernel count the loss) instead of Node
 * buffering without bound.
 */
export interface ProbeSink {
  batch(batch: ProbeBatch): void | Promise<void>;
  stats?(stats: LoaderStats): void | Promise<void>;
  status?(status: ProbeStatus): void | Promise<void>;
}

export interface BatchLimits {
  maxRecords: number;
  maxBytes: number;
  maxDelayMs: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = { maxRecords: 1000, maxBytes: 256 * 1024, maxDelayMs: 200 };
