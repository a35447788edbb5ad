import { describe, expect, it } from 'vitest';
import { startProcessMetrics } from './process-metrics.js';

const value = (text: string, series: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (!line) throw new Error(`no ${series} in:\n${text}`);
  return Number(line.slice(series.length + 1));
};

describe('process metrics', () => {
  it('a 300 ms stall of the event loop shows as the longest delay; CPU and RSS are the process\'s', async () => {
    const m = startProcessMetrics();
    try {
      await new Promise((r) => setTimeout(r, 100));
      const t = Date.now();
      while (Date.now() - t < 300) { /* hold the loop */ }
      await new Promise((r) => setTimeout(r, 50));
      const cpuBefore = process.cpuUsage();
      const text = m.render();
      const cpuAfter = process.cpuUsage();
      const max = value(text, 'bpfleet_event_loop_delay_seconds{quantile="1"}');
      expect(max).toBeGreaterThanOrEqual(0.28);
      expect(max).toBeLessThan(2);
      // One stall among many on-time ticks: the median stays small.
      expect(value(text, 'bpfleet_event_loop_delay_seconds{quantile="0.5"}')).toBeLessThan(0.1);
      // Some garbage: the collector runs and its pauses are seen.
      let keep = 0;
      for (let i = 0; i < 300_000; i++) keep += [i, { i }, `${i}`].length;
      expect(keep).toBe(900_000);
      await new Promise((r) => setTimeout(r, 20));
      expect(value(m.render(), 'bpfleet_gc_pause_seconds{quantile="1"}')).toBeGreaterThan(0);
      // The process's own CPU time, read while rendering (the 300 ms spin is in it, unless this
      // worker was kept off the CPU, so no lower bound from the spin is asserted).
      const cpu = value(text, 'bpfleet_process_cpu_seconds_total');
      expect(cpu).toBeGreaterThanOrEqual((cpuBefore.user + cpuBefore.system) / 1e6);
      expect(cpu).toBeLessThanOrEqual((cpuAfter.user + cpuAfter.system) / 1e6);
      expect(value(text, 'bpfleet_process_resident_memory_bytes')).toBe(Math.round(value(text, 'bpfleet_process_resident_memory_bytes')));
      expect(value(text, 'bpfleet_process_resident_memory_bytes')).toBeGreaterThan(10 << 20);
    } finally {
      m.close();
    }
  });
});
