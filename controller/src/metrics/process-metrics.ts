// The controller process' own health on /metrics: how late its event loop runs (every
// session, commit and ack waits that long), its garbage collector's pauses, CPU and memory.
// Delays and pauses are over a sliding window of the last 60 to 90 s (window-histogram.ts), so
// a stall shows while it matters and then ages out.
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { Exposition } from './exposition.js';
import { WindowHistogram } from './window-histogram.js';

/** The loop is sampled by a timer this often; a tick that fires late records how late. */
const TICK_MS = 10;

export interface ProcessMetrics {
  render(): string;
  close(): void;
}

export function startProcessMetrics(): ProcessMetrics {
  // perf_hooks' monitorEventLoopDelay cannot be merged into other histograms, so the window is
  // built from a plain timer's lateness.
  const loop = new WindowHistogram();
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    loop.record((now - last - TICK_MS) * 1e6);
    last = now;
  }, TICK_MS);
  tick.unref();
  const gc = new WindowHistogram();
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gc.record(e.duration * 1e6);
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  return {
    render() {
      const x = new Exposition();
      x.quantiles('bpfleet_event_loop_delay_seconds',
        'How late the controller\'s event loop ran over the last 60 to 90 s, by quantile (1: the longest stall).', loop.quantiles());
      x.quantiles('bpfleet_gc_pause_seconds',
        'Garbage-collection pauses of the controller over the last 60 to 90 s, by quantile (1: the longest).', gc.quantiles());
      const cpu = process.cpuUsage();
      x.family('bpfleet_process_cpu_seconds_total', 'counter', 'CPU time of the controller process, user and system.')({}, (cpu.user + cpu.system) / 1e6);
      x.family('bpfleet_process_resident_memory_bytes', 'gauge', 'Resident memory of the controller process.')({}, process.memoryUsage.rss());
      return x.toString();
    },
    close() {
      clearInterval(tick);
      gcObserver.disconnect();
      loop.close();
      gc.close();
    },
  };
}
