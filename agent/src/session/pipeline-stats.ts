// PipelineStats per stream: the loader and kernel stages as the runner last reported them, the
// spool's evictions and damage, and what the agent itself dropped.
import type { PipelineStats } from '@bpfleet/proto';
import type { LoaderStats } from '../probes/index.js';
import type { SpoolStats } from '../spool/index.js';

interface StreamBook {
  loader: LoaderStats | undefined;
  dropped: bigint;
  /** The run ended: one more sample goes out, then the stream is forgotten. */
  finished: boolean;
}

export class PipelineStatsBook {
  private readonly streams = new Map<string, StreamBook>();

  private book(streamId: string): StreamBook {
    let b = this.streams.get(streamId);
    if (b === undefined) {
      b = { loader: undefined, dropped: 0n, finished: false };
      this.streams.set(streamId, b);
    }
    return b;
  }

  loader(stats: LoaderStats): void {
    const b = this.book(stats.streamId);
    b.loader = stats;
  }

  /** Records the agent could neither spool nor send. Returns the stream's total. */
  dropped(streamId: string, records: number): bigint {
    const b = this.book(streamId);
    b.dropped += BigInt(records);
    return b.dropped;
  }

  droppedOf(streamId: string): bigint {
    return this.streams.get(streamId)?.dropped ?? 0n;
  }

  finished(streamId: string): void {
    const b = this.streams.get(streamId);
    if (b !== undefined) b.finished = true;
  }

  /** One PipelineStats per stream of this agent's runs; finished ones once more, then forgotten. */
  sample(spool: SpoolStats, nowNs: bigint): PipelineStats[] {
    const spooled = new Map(spool.streams.map((s) => [s.streamId, s]));
    const out: PipelineStats[] = [];
    for (const [streamId, b] of this.streams) {
      const sp = spooled.get(streamId);
      const l = b.loader;
      out.push({
        streamId,
        records: l?.records ?? 0n,
        kernelRingbufFull: l?.kernelRingbufFull ?? 0n,
        kernelMapFull: l?.kernelMapFull ?? 0n,
        kernelSampledOut: l?.kernelSampledOut ?? 0n,
        kernelReadFailed: l?.kernelReadFailed ?? 0n,
        loaderLost: l?.loaderLost ?? 0n,
        agentQueueDropped: b.dropped,
        spoolEvicted: BigInt(sp?.evicted ?? 0),
        spoolCorrupt: BigInt(sp?.corrupt ?? 0),
        timeUnixNs: nowNs,
      });
      if (b.finished) this.streams.delete(streamId);
    }
    return out;
  }
}
