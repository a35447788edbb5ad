// A set of sequence numbers kept as sorted half-open ranges: a follower remembers what it sent
// in a few ranges per stream, however many records it streamed.
export class SeqSet {
  private readonly ranges: [number, number][] = [];

  has(seq: number): boolean {
    const i = this.indexAfter(seq) - 1;
    return i >= 0 && seq < this.ranges[i]![1];
  }

  add(seq: number): void {
    this.addRange(seq, seq + 1);
  }

  addRange(from: number, to: number): void {
    if (to <= from) return;
    const last = this.ranges[this.ranges.length - 1];
    if (!last || from > last[1]) { this.ranges.push([from, to]); return; } // the common case: appending
    // Merge every range touching [from, to).
    let i = this.indexAfter(from) - 1;
    if (i < 0 || this.ranges[i]![1] < from) i++;
    let j = i;
    while (j < this.ranges.length && this.ranges[j]![0] <= to) j++;
    const merged: [number, number] = j > i ? [Math.min(from, this.ranges[i]![0]), Math.max(to, this.ranges[j - 1]![1])] : [from, to];
    this.ranges.splice(i, j - i, merged);
  }

  get rangeCount(): number { return this.ranges.length; }

  /** Index of the first range starting after seq. */
  private indexAfter(seq: number): number {
    let lo = 0, hi = this.ranges.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.ranges[mid]![0] <= seq) lo = mid + 1; else hi = mid; }
    return lo;
  }
}
