// One worker process of the fleet simulator: runs its share of the devices and reports counters
// to the parent (sim-main.ts) over the IPC channel every second, and once more at the end.
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Manifest } from '@bpfleet/proto';
import { detectDeviceFacts } from '../system/index.js';
import { loadRecording, newReplayCounters, replayLoaderFactory } from './replay-source.js';
import { SimDevice, type SimDeviceSpec, type SimLinkOptions } from './sim-device.js';

export interface WorkerStart {
  type: 'start';
  worker: number;
  link: SimLinkOptions;
  rate: number;
  /** Each run emits this long from the parent's go. */
  durationMs: number;
  recording: string;
  manifest: string;
  logFile: string;
  devices: SimDeviceSpec[];
}

export interface WorkerDrain {
  type: 'drain';
  timeoutMs: number;
}

/** Every device's run has started: all begin emitting now, for durationMs. */
export interface WorkerGo {
  type: 'go';
}

/** A worker's counters (cumulative) and its process' CPU and memory. */
export interface WorkerReport {
  worker: number;
  pid: number;
  devices: number;
  /** Devices whose session started (enrolled, spool open). */
  started: number;
  startFailures: number;
  /** Devices welcomed by the controller right now, and the most at any report. */
  connected: number;
  peakConnected: number;
  runsStarted: number;
  runsEnded: number;
  generated: number;
  /** Loss in the "kernel ring buffer" while the agent did not read (ringbuf_full). */
  ringbufFull: number;
  written: number;
  spooled: number;
  acked: number;
  /** Spooled and not acknowledged yet. */
  backlog: number;
  spoolEvicted: number;
  /** Batches the spool refused (the agent-queue stage: sent unspooled or dropped). */
  appendErrors: number;
  transportDowns: number;
  cpuSeconds: number;
  rssMiB: number;
  maxRssMiB: number;
  /**
   * How late the worker's event loop ran while the devices emitted (from the go), ms: p99 and
   * max. Every device of the worker waits that long for its timers and sockets; a delay past the
   * gRPC keepalive timeout (5 s) loses links.
   */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export type WorkerMessage = { type: 'progress' | 'final'; report: WorkerReport } | { type: 'error'; message: string };

const START_CONCURRENCY = 16;

async function inPool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

type ParentMessage = WorkerStart | WorkerDrain | WorkerGo;

export async function runWorker(send: (m: WorkerMessage) => void, messages: AsyncIterable<ParentMessage>): Promise<void> {
  const it = messages[Symbol.asyncIterator]();
  const first = (await it.next()).value as WorkerStart | undefined;
  if (first?.type !== 'start') throw new Error('sim worker: expected a start message first');
  const cfg = first;
  const logStream = createWriteStream(cfg.logFile, { flags: 'a' });
  const log = (line: string): void => void logStream.write(`${new Date().toISOString()} ${line}\n`);
  const manifest = JSON.parse(readFileSync(cfg.manifest, 'utf8')) as Manifest;
  const recording = loadRecording(cfg.recording, manifest);
  const counters = newReplayCounters();
  let go!: () => void;
  const gate = new Promise<void>((r) => (go = r));
  const factory = replayLoaderFactory({ recording, rate: cfg.rate, durationMs: cfg.durationMs, counters, gate });
  const facts = await detectDeviceFacts({ board: 'sim' });
  const devices = cfg.devices.map((d) => new SimDevice(d, cfg.link, factory, facts, log));
  let startFailures = 0;
  let started = 0;
  const cpu0 = process.cpuUsage();
  let maxRss = 0;
  let peakConnected = 0;

  // 10 ms resolution: what matters here is hundreds of ms to seconds.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const report = (): WorkerReport => {
    const sum = (f: (d: SimDevice) => number): number => devices.reduce((n, d) => n + f(d), 0);
    const c = process.cpuUsage(cpu0);
    const rss = process.memoryUsage.rss() / (1 << 20);
    maxRss = Math.max(maxRss, rss);
    const connected = devices.reduce((n, d) => n + (d.ready ? 1 : 0), 0);
    peakConnected = Math.max(peakConnected, connected);
    return {
      worker: cfg.worker, pid: process.pid, devices: devices.length, started, startFailures,
      connected, peakConnected,
      runsStarted: counters.started, runsEnded: counters.ended,
      generated: counters.generated, ringbufFull: counters.ringbufFull, written: counters.written,
      spooled: sum((d) => d.counters.spooled), acked: sum((d) => d.counters.acked), backlog: sum((d) => d.backlog),
      spoolEvicted: sum((d) => d.spoolEvicted), appendErrors: sum((d) => d.appendErrors),
      transportDowns: sum((d) => d.counters.transportDowns),
      cpuSeconds: (c.user + c.system) / 1e6, rssMiB: rss, maxRssMiB: maxRss,
      loopDelayP99Ms: loopDelay.count ? loopDelay.percentile(99) / 1e6 : 0, loopDelayMaxMs: loopDelay.count ? loopDelay.max / 1e6 : 0,
    };
  };
  const progress = setInterval(() => send({ type: 'progress', report: report() }), 1000);

  await inPool(devices, START_CONCURRENCY, async (d) => {
    try {
      await d.start();
      started++;
    } catch (err) {
      startFailures++;
      const line = `${d.spec.name}: cannot start: ${(err as Error).message}`;
      log(line);
      if (startFailures <= 3) send({ type: 'error', message: line });
    }
  });

  let drain: ParentMessage | undefined;
  while ((drain = (await it.next()).value as ParentMessage | undefined)?.type === 'go') {
    loopDelay.enable();
    go();
  }
  loopDelay.disable(); // the emitting is over: the drain and the stops are not measured
  factory.endAll(); // runs the controller started after the go, or a drain before the end
  const deadline = Date.now() + (drain?.type === 'drain' ? drain.timeoutMs : 0);
  while (Date.now() < deadline && devices.some((d) => d.backlog > 0)) await new Promise((r) => setTimeout(r, 200));
  // Stopping a session stops its probe runs (already ended) and closes link and spool.
  await inPool(devices, 64, (d) => d.stop().catch((err: unknown) => log(`${d.spec.name}: stop failed: ${(err as Error).message}`)));
  clearInterval(progress);
  send({ type: 'final', report: report() });
  await new Promise<void>((r) => logStream.end(r));
}

/** Entry of a forked worker: messages from the parent over IPC. */
export async function workerMain(): Promise<number> {
  if (process.send === undefined) {
    process.stderr.write('bpfleet-sim worker: must be started by bpfleet-sim (no IPC channel)\n');
    return 2;
  }
  const queue: ParentMessage[] = [];
  let wake: (() => void) | undefined;
  process.on('message', (m: ParentMessage) => {
    queue.push(m);
    wake?.();
  });
  // The parent went away: stop like on a drain without waiting.
  process.on('disconnect', () => {
    queue.push({ type: 'drain', timeoutMs: 0 });
    wake?.();
  });
  const messages: AsyncIterable<ParentMessage> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        return { value: queue.shift()!, done: false };
      },
    }),
  };
  let sent: Promise<void> = Promise.resolve();
  const send = (m: WorkerMessage): void => {
    if (!process.connected) return;
    sent = new Promise((resolve) => process.send!(m, undefined, {}, () => resolve()));
  };
  try {
    await runWorker(send, messages);
    return 0;
  } catch (err) {
    send({ type: 'error', message: `worker failed: ${(err as Error).stack ?? String(err)}` });
    return 1;
  } finally {
    await sent;
    if (process.connected) process.disconnect();
    // Whatever a stopped session left behind (a socket closing) must not keep the worker.
    setTimeout(() => process.exit(), 3000).unref();
  }
}

export const workerLogFile = (dataDir: string, worker: number): string => path.join(dataDir, `worker-${worker}.log`);
