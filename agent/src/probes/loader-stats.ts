// STATS frames (bpf/README.md: {"ts_ns","records","intervals","kernel":{...},"loader":{"lost"}})
// are cumulative per loader process; a run's stats add up every process it had.
import type { LoaderStats } from './types.js';

export interface LoaderCounters {
  records: bigint;
  intervals: bigint;
  ringbufFull: bigint;
  mapFull: bigint;
  sampledOut: bigint;
  readFailed: bigint;
  loaderLost: bigint;
}

export const ZERO_COUNTERS: LoaderCounters = {
  records: 0n,
  intervals: 0n,
  ringbufFull: 0n,
  mapFull: 0n,
  sampledOut: 0n,
  readFailed: 0n,
  loaderLost: 0n,
};

function big(v: unknown, what: string): bigint {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`stats frame: "${what}" is not a count: ${String(v)}`);
  return BigInt(v);
}

export function parseStatsFrame(json: unknown): LoaderCounters {
  const o = (json ?? {}) as { records?: unknown; intervals?: unknown; kernel?: Record<string, unknown>; loader?: Record<string, unknown> };
  const k = o.kernel ?? {};
  return {
    records: big(o.records, 'records'),
    intervals: big(o.intervals ?? 0, 'intervals'),
    ringbufFull: big(k['ringbuf_full'], 'kernel.ringbuf_full'),
    mapFull: big(k['map_full'], 'kernel.map_full'),
    sampledOut: big(k['sampled_out'], 'kernel.sampled_out'),
    readFailed: big(k['read_failed'], 'kernel.read_failed'),
    loaderLost: big(o.loader?.['lost'], 'loader.lost'),
  };
}

export function addCounters(a: LoaderCounters, b: LoaderCounters): LoaderCounters {
  return {
    records: a.records + b.records,
    intervals: a.intervals + b.intervals,
    ringbufFull: a.ringbufFull + b.ringbufFull,
    mapFull: a.mapFull + b.mapFull,
    sampledOut: a.sampledOut + b.sampledOut,
    readFailed: a.readFailed + b.readFailed,
    loaderLost: a.loaderLost + b.loaderLost,
  };
}

export function toLoaderStats(c: LoaderCounters, streamId: string, runId: string, now = Date.now()): LoaderStats {
  return {
    streamId,
    runId,
    records: c.records,
    intervals: c.intervals,
    kernelRingbufFull: c.ringbufFull,
    kernelMapFull: c.mapFull,
    kernelSampledOut: c.sampledOut,
    kernelReadFailed: c.readFailed,
    loaderLost: c.loaderLost,
    timeUnixNs: BigInt(now) * 1_000_000n,
  };
}
