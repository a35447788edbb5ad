// The controller process' own health on /metrics: how late its event loop runs (every
// session, commit and ack waits that long), CPU and memory. The event-loop delay is over a
// sliding window of the last 60 to 90 s, so a stall shows while it matters and then ages out.
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { Exposition } from './exposition.js';

const ROTATE_MS = 30_000;
/** The loop is sampled by a timer this often; a tick that fires late records how late. */
const TICK_MS = 10;

export interface ProcessMetrics {
  render(): string;
  close(): void;
}

export function startProcessMetrics(): ProcessMetrics {
  // perf_hooks' own monitorEventLoopDelay cannot be merged into other histograms, so the
  // window is built from a plain timer's lateness (ns; a histogram records values >= 1).
  let live = createHistogram();
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    live.record(Math.max(1, Math.round((now - last - TICK_MS) * 1e6)));
    last = now;
  }, TICK_MS);
  tick.unref();
  // The finished 30 s slices of the window, oldest first (at most two).
  const slices: RecordableHistogram[] = [];
  const timer = setInterval(() => {
    slices.push(live);
    live = createHistogram();
    if (slices.length > 2) slices.shift();
  }, ROTATE_MS);
  timer.unref();
  return {
    render() {
      const window = createHistogram();
      for (const s of slices) window.add(s);
      window.add(live);
      const x = new Exposition();
      const delay = x.family('bpfleet_event_loop_delay_seconds', 'gauge',
        'How late the controller\'s event loop ran over the last 60 to 90 s, by quantile (1: the longest stall).');
      for (const q of [0.5, 0.99, 1]) {
        const ns = window.count === 0 ? 0 : q === 1 ? window.max : window.percentile(q * 100);
        delay({ quantile: String(q) }, ns / 1e9);
      }
      const cpu = process.cpuUsage();
      x.family('bpfleet_process_cpu_seconds_total', 'counter', 'CPU time of the controller process, user and system.')({}, (cpu.user + cpu.system) / 1e6);
      x.family('bpfleet_process_resident_memory_bytes', 'gauge', 'Resident memory of the controller process.')({}, process.memoryUsage.rss());
      return x.toString();
    },
    close() {
      clearInterval(timer);
      clearInterval(tick);
    },
  };
}
