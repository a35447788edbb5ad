// What the spool keeps in memory per segment file: its size and, per stream, the range of
// sequence numbers it holds. Enough to decide when a segment is fully acknowledged, to count
// exactly what an eviction loses, and to skip segments on replay, without an index of
// every batch.

export interface StreamRange {
  /** First and last sequence number of the stream's batches in this segment. */
  lo: bigint;
  hi: bigint;
  /** Records of the stream in this segment (less than hi - lo + 1 only if some were corrupt). */
  records: number;
}

export interface SegmentSummary {
  index: number;
  file: string;
  bytes: number;
  streams: Map<string, StreamRange>;
  /** Offsets of damaged regions already counted, so a replay does not count them again. */
  knownCorrupt: Set<number>;
}

export function newSegmentSummary(index: number, file: string): SegmentSummary {
  return { index, file, bytes: 0, streams: new Map(), knownCorrupt: new Set() };
}

export function noteBatch(seg: SegmentSummary, streamId: string, firstSeq: bigint, count: number): void {
  const last = firstSeq + BigInt(count - 1);
  const r = seg.streams.get(streamId);
  if (r === undefined) {
    seg.streams.set(streamId, { lo: firstSeq, hi: last, records: count });
    return;
  }
  if (firstSeq < r.lo) r.lo = firstSeq;
  if (last > r.hi) r.hi = last;
  r.records += count;
}

/** Records of a range at or after `firstHeld`: what is lost if the segment goes now. */
export function unacknowledgedIn(r: StreamRange, firstHeld: bigint): number {
  if (firstHeld <= r.lo) return r.records;
  if (firstHeld > r.hi) return 0;
  return Number(r.hi - firstHeld + 1n);
}
