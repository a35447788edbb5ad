// Stack-count anomaly detection (seed 001's stack_count): per device and probe, flag stacks
// whose share of a time window jumps against their own history. The method and its defaults
// are documented in docs/STACK-ANOMALIES.md; in short:
//   share     s = value of the stack in the window / value of all stacks in the window
//   history   an exponentially weighted mean m and variance v of s per stack (a stack absent
//             from a window has share 0 there); updated after each window is judged
//   jump      z = (s - m) / sqrt(v + floor²) >= zThreshold, and s >= minShare, and
//             s - m >= minDelta, and the stack has >= minSamples samples in the window
//   new       a stack with no history (never seen, or forgotten) with s >= newShare and
//             >= minSamples samples
// Nothing is flagged before minHistory non-empty windows were seen; empty windows (the probe
// was not running) are skipped and leave the history as it was.

export interface AnomalyParams {
  /** Weight of the newest window in the mean and variance (0..1]. */
  alpha: number;
  zThreshold: number;
  /** A stack below this share is never flagged. */
  minShare: number;
  /** A jump must raise the share by at least this much (fraction of the window). */
  minDelta: number;
  /** Share above which a stack without history is flagged "new". */
  newShare: number;
  /** Samples of the stack in the window needed to flag it. */
  minSamples: number;
  /** Non-empty windows seen before anything is flagged. */
  minHistory: number;
  /** Floor of the standard deviation (a share), so a flat history does not make every wiggle infinite. */
  stdFloor: number;
  /** A stack whose mean share fell below this while absent is forgotten (seen again, it is new). */
  forgetBelow: number;
}

export const DEFAULT_ANOMALY_PARAMS: Readonly<AnomalyParams> = Object.freeze({
  alpha: 0.3, zThreshold: 4, minShare: 0.05, minDelta: 0.05, newShare: 0.05, minSamples: 20, minHistory: 3,
  stdFloor: 0.01, forgetBelow: 1e-4,
});

export interface StackWindow {
  /** Value per stack in the window. */
  values: Map<string, number>;
  /** Samples per stack (records, or the value when it counts samples); default: the values. */
  samples?: Map<string, number>;
}

export type AnomalyKind = 'jump' | 'new';

export interface StackAnomaly {
  /** Index of the window in the series given to the detector. */
  window: number;
  kind: AnomalyKind;
  stack: string;
  /** Share of the stack in this window. */
  share: number;
  /** Its expected share from history (0 for a new stack). */
  baselineShare: number;
  baselineStd: number;
  /** Null for a new stack (no history to compare with). */
  z: number | null;
  value: number;
  samples: number;
  windowTotal: number;
}

interface History { mean: number; variance: number }

export function checkParams(p: AnomalyParams): void {
  const bad = (what: string) => { throw new RangeError(`anomaly parameter ${what}`); };
  if (!(p.alpha > 0 && p.alpha <= 1)) bad(`alpha must be in (0, 1], got ${p.alpha}`);
  if (!(p.zThreshold > 0)) bad(`zThreshold must be > 0, got ${p.zThreshold}`);
  for (const k of ['minShare', 'minDelta', 'newShare'] as const) if (!(p[k] >= 0 && p[k] <= 1)) bad(`${k} must be a share from 0 to 1, got ${p[k]}`);
  if (!(p.minSamples >= 0) || !(p.minHistory >= 0) || !(p.stdFloor > 0)) bad('minSamples, minHistory must be >= 0 and stdFloor > 0');
}

/** Judges one window at a time against the history of the windows before it. */
export class StackAnomalyDetector {
  private readonly history = new Map<string, History>();
  private windows = 0;
  private index = -1;
  readonly params: AnomalyParams;

  constructor(params: Partial<AnomalyParams> = {}) {
    this.params = { ...DEFAULT_ANOMALY_PARAMS, ...params };
    checkParams(this.params);
  }

  /** Non-empty windows seen so far. */
  get historyWindows(): number { return this.windows; }

  observe(w: StackWindow): StackAnomaly[] {
    this.index++;
    const p = this.params;
    let total = 0;
    for (const v of w.values.values()) if (v > 0) total += v;
    if (total <= 0) return [];
    const flags: StackAnomaly[] = [];
    if (this.windows >= p.minHistory) {
      for (const [stack, value] of w.values) {
        if (!(value > 0)) continue;
        const share = value / total;
        const samples = w.samples?.get(stack) ?? value;
        if (samples < p.minSamples || share < p.minShare) continue;
        const h = this.history.get(stack);
        if (!h) {
          if (share >= p.newShare) {
            flags.push({ window: this.index, kind: 'new', stack, share, baselineShare: 0, baselineStd: 0, z: null, value, samples, windowTotal: total });
          }
          continue;
        }
        const std = Math.sqrt(h.variance + p.stdFloor * p.stdFloor);
        const z = (share - h.mean) / std;
        if (z >= p.zThreshold && share - h.mean >= p.minDelta) {
          flags.push({ window: this.index, kind: 'jump', stack, share, baselineShare: h.mean, baselineStd: Math.sqrt(h.variance), z, value, samples, windowTotal: total });
        }
      }
    }
    this.learn(w.values, total);
    this.windows++;
    return flags.sort((a, b) => b.share - a.share || (a.stack < b.stack ? -1 : 1));
  }

  private learn(values: Map<string, number>, total: number): void {
    const a = this.params.alpha;
    const first = this.windows === 0;
    for (const [stack, value] of values) {
      if (!(value > 0) || this.history.has(stack)) continue;
      // The first window is the baseline itself; a stack appearing later had share 0 before.
      this.history.set(stack, first ? { mean: value / total, variance: 0 } : { mean: 0, variance: 0 });
    }
    if (first) return;
    for (const [stack, h] of this.history) {
      const v = values.get(stack) ?? 0;
      const x = v > 0 ? v / total : 0;
      // Exponentially weighted mean and variance, updated incrementally (Finch, 2009).
      const diff = x - h.mean;
      const incr = a * diff;
      h.mean += incr;
      h.variance = (1 - a) * (h.variance + diff * incr);
      if (x === 0 && h.mean < this.params.forgetBelow) this.history.delete(stack);
    }
  }
}

/** Runs a detector over a whole series of windows. */
export function detectAnomalies(windows: StackWindow[], params: Partial<AnomalyParams> = {}): StackAnomaly[] {
  const d = new StackAnomalyDetector(params);
  return windows.flatMap((w) => d.observe(w));
}
