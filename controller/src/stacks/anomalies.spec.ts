import { describe, expect, it } from 'vitest';
import { detectAnomalies, StackAnomalyDetector, type StackWindow } from './anomalies.js';

/** mulberry32: a seeded generator, so every run sees the same "noise". */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BACKGROUND = { 'app;main;work': 0.40, 'app;main;io': 0.25, 'app;gc': 0.20, 'sshd;poll_[k]': 0.10, 'cron;sleep': 0.05 };

/**
 * One window of `total` samples: `special` stacks at their share, the background stacks sharing
 * what is left in their proportions, each share wiggled by up to ±jitter (absolute).
 */
function window(special: Record<string, number>, r: () => number, total = 2000, jitter = 0.005): StackWindow {
  const rest = 1 - Object.values(special).reduce((s, v) => s + v, 0);
  const shares: Record<string, number> = { ...special };
  for (const [k, v] of Object.entries(BACKGROUND)) shares[k] = v * rest;
  const values = new Map<string, number>();
  for (const [k, s] of Object.entries(shares)) {
    const v = Math.round(total * Math.max(0, s + (r() * 2 - 1) * jitter));
    if (v > 0) values.set(k, v);
  }
  return { values };
}

const A = 'app;main;work;compress';

describe('stack anomaly detection', () => {
  it('flags nothing in a stable series', () => {
    const r = rng(1);
    const series = Array.from({ length: 60 }, () => window({ [A]: 0.02 }, r));
    expect(detectAnomalies(series)).toEqual([]);
  });

  it('flags a stack jumping from 2% to 30% at that window, once', () => {
    const r = rng(2);
    const series = Array.from({ length: 30 }, (_, i) => window({ [A]: i < 20 ? 0.02 : 0.30 }, r));
    const flags = detectAnomalies(series);
    expect(flags.map((f) => [f.window, f.kind, f.stack])).toEqual([[20, 'jump', A]]);
    const f = flags[0]!;
    expect(f.share).toBeGreaterThan(0.29);
    expect(f.share).toBeLessThan(0.31);
    expect(f.baselineShare).toBeGreaterThan(0.015);
    expect(f.baselineShare).toBeLessThan(0.025);
    expect(f.z).toBeGreaterThan(4);
    expect(f.windowTotal).toBeGreaterThan(1950);
  });

  it('does not flag a slow drift from 2% to 30%', () => {
    const r = rng(3);
    const series = Array.from({ length: 40 }, (_, i) => window({ [A]: 0.02 + 0.01 * Math.max(0, Math.min(28, i - 10)) }, r));
    expect(series[38]!.values.get(A)! / 2000).toBeGreaterThan(0.29); // it did reach 30%
    expect(detectAnomalies(series)).toEqual([]);
  });

  it('flags a stack absent from history but large now as new', () => {
    const r = rng(4);
    const N = 'app;main;leak;malloc';
    const series = Array.from({ length: 20 }, (_, i) => window(i === 15 ? { [N]: 0.12 } : {}, r));
    const flags = detectAnomalies(series);
    expect(flags.map((f) => [f.window, f.kind, f.stack, f.z])).toEqual([[15, 'new', N, null]]);
    expect(flags[0]!.share).toBeCloseTo(0.12, 2);
  });

  it('ignores jumps of small shares and of few samples', () => {
    const r = rng(5);
    const tiny = 'app;rare';
    // 0.1% -> 3%: a huge z, but under minShare (5%)
    const small = Array.from({ length: 20 }, (_, i) => window({ [tiny]: i === 12 ? 0.03 : 0.001 }, r, 2000, 0.0005));
    expect(detectAnomalies(small)).toEqual([]);
    expect(detectAnomalies(small, { minShare: 0.01, minDelta: 0.01, stdFloor: 0.002 }).map((f) => [f.window, f.stack])).toEqual([[12, tiny]]);
    // 2% -> 50% in a window of 30 samples: 15 samples, under minSamples (20)
    const few = Array.from({ length: 20 }, (_, i) => window({ [A]: i === 12 ? 0.5 : 0.02 }, r, i === 12 ? 30 : 2000));
    expect(detectAnomalies(few)).toEqual([]);
    expect(detectAnomalies(few, { minSamples: 10 }).map((f) => [f.window, f.stack])).toEqual([[12, A]]);
  });

  it('flags nothing while history is short, and skips empty windows', () => {
    const r = rng(6);
    const d = new StackAnomalyDetector();
    expect(d.observe(window({}, r))).toEqual([]);
    expect(d.observe(window({ 'new;early': 0.2 }, r))).toEqual([]); // 1 window of history < minHistory
    for (let i = 0; i < 5; i++) d.observe(window({ [A]: 0.02 }, r));
    expect(d.observe({ values: new Map() })).toEqual([]);
    expect(d.historyWindows).toBe(7);
    expect(d.observe(window({ [A]: 0.3 }, r)).map((f) => [f.window, f.kind, f.stack])).toEqual([[8, 'jump', A]]);
  });

  it('refuses parameters that make no sense', () => {
    expect(() => new StackAnomalyDetector({ alpha: 0 })).toThrow(/alpha must be in \(0, 1\]/);
    expect(() => new StackAnomalyDetector({ minShare: 2 })).toThrow(/minShare must be a share/);
  });
});
