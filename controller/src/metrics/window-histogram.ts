// A histogram of the last 60 to 90 s: two finished 30 s slices and the live one. For durations
// that matter while they happen (event-loop stalls, commit times) and should age out after.
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import type { Quantiles } from './exposition.js';

const SLICE_MS = 30_000;

export class WindowHistogram {
  private live = createHistogram();
  /** The finished slices, oldest first (at most two). */
  private readonly slices: RecordableHistogram[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => {
      this.slices.push(this.live);
      this.live = createHistogram();
      if (this.slices.length > 2) this.slices.shift();
    }, SLICE_MS);
    this.timer.unref();
  }

  /** Records a duration in ns (values below 1 ns count as 1: the histogram takes >= 1). */
  record(ns: number): void {
    this.live.record(Math.max(1, Math.round(ns)));
  }

  /** Median, 99th percentile and maximum over the window, in seconds; 0 when nothing was recorded. */
  quantiles(): Quantiles {
    const w = createHistogram();
    for (const s of this.slices) w.add(s);
    w.add(this.live);
    if (w.count === 0) return { p50: 0, p99: 0, max: 0 };
    return { p50: w.percentile(50) / 1e9, p99: w.percentile(99) / 1e9, max: w.max / 1e9 };
  }

  close(): void {
    clearInterval(this.timer);
  }
}
