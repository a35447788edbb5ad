// Collects record payloads into batches by count, bytes and age. Per record it only keeps a
// reference; the one copy into the batch buffer happens at flush.
import type { BatchLimits } from './types.js';

export interface RecordChunk {
  count: number;
  records: Buffer;
  /** Parallel to the records for interval probes, else empty. */
  intervalIndex: number[];
}

export class RecordBatcher {
  private parts: Buffer[] = [];
  private bytes = 0;
  private intervals: number[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limits: BatchLimits,
    private readonly onFlush: (chunk: RecordChunk) => void,
  ) {}

  /** Adds one record; `interval` only for interval probes. */
  add(record: Buffer, interval?: number): void {
    // Never exceed maxBytes by adding: close the batch first.
    if (this.parts.length > 0 && this.bytes + record.length > this.limits.maxBytes) this.flush();
    this.parts.push(record);
    this.bytes += record.length;
    if (interval !== undefined) this.intervals.push(interval);
    if (this.parts.length >= this.limits.maxRecords || this.bytes >= this.limits.maxBytes) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.limits.maxDelayMs);
    }
  }

  get pending(): number {
    return this.parts.length;
  }

  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.parts.length === 0) return;
    const chunk: RecordChunk = {
      count: this.parts.length,
      records: Buffer.concat(this.parts, this.bytes),
      intervalIndex: this.intervals,
    };
    this.parts = [];
    this.bytes = 0;
    this.intervals = [];
    this.onFlush(chunk);
  }
}
