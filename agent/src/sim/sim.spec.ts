import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ProbeStatus_State, type Manifest } from '@bpfleet/proto';
import { ProbeRegistry, ProbeRunner, type LoaderStats, type ProbeBatch } from '../probes/index.js';
import { loadRecording, newReplayCounters, replayLoaderFactory } from './replay-source.js';
import { deviceName, parseSimArgs, splitDevices } from './sim-config.js';
import { sumReports } from './sim-main.js';
import type { WorkerReport } from './sim-worker.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PROBES = path.join(repoRoot, 'bpf', 'out', 'x86_64');
const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'recorded', 'tcpstates.machine');
const manifest = JSON.parse(readFileSync(path.join(PROBES, 'tcpstates.manifest.json'), 'utf8')) as Manifest;
const recording = loadRecording(FIXTURE, manifest);

describe('worker split', () => {
  it('spreads devices over workers in contiguous ranges differing by at most one', () => {
    const split = splitDevices(1000, 3);
    expect(split.map((w) => w.length)).toEqual([334, 333, 333]);
    expect(split.flat()).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('never starts an empty worker', () => {
    expect(splitDevices(2, 8)).toEqual([[0], [1]]);
    expect(splitDevices(1, 1)).toEqual([[0]]);
  });

  it('caps --processes at --devices and names devices by index', () => {
    const a = parseSimArgs(['--devices', '3', '--processes', '8', '--data-dir', '/tmp/x'], repoRoot);
    expect(a.processes).toBe(3);
    expect(a.transport).toBe('grpc');
    expect(() => parseSimArgs(['--transport', 'udp', '--data-dir', '/tmp/x'], repoRoot)).toThrow(/grpc or mqtt/);
    expect(deviceName('sim-', 7)).toBe('sim-0007');
  });

  it('adds worker reports up field by field; loop delays are the worst worker\'s', () => {
    const r = (w: number, generated: number, loop = 0): WorkerReport => ({
      worker: w, pid: w, devices: 2, started: 2, startFailures: 0, connected: 2, peakConnected: 2, runsStarted: 2, runsEnded: 2, generated,
      ringbufFull: 1, written: generated - 1, spooled: generated - 1, acked: generated - 1, backlog: 0, spoolEvicted: 0, appendErrors: 0,
      transportDowns: 0, cpuSeconds: 1, rssMiB: 10, maxRssMiB: 10, loopDelayP99Ms: loop, loopDelayMaxMs: 2 * loop,
    });
    const t = sumReports([r(0, 100, 30), r(1, 50, 120)]);
    expect(t).toMatchObject({ devices: 4, generated: 150, ringbufFull: 2, acked: 148, loopDelayP99Ms: 120, loopDelayMaxMs: 240 });
  });
});

describe('replay source', () => {
  it('reads the recorded tcpstates capture: its HELLO and 88-byte records', () => {
    expect(recording.records.length).toBe(512);
    expect(recording.records.every((r) => r.length === 88)).toBe(true);
    expect(recording.tsOffset).toBe(0);
    expect(recording.hello['probe']).toBe('tcpstates');
  });

  /** A real ProbeRunner whose loaders are replays; the sink collects what a session would spool. */
  function runner(rate: number, durationMs: number, sinkBatch: (b: ProbeBatch) => void | Promise<void>, ringRecords?: number) {
    const counters = newReplayCounters();
    const stats: LoaderStats[] = [];
    const r = new ProbeRunner({
      registry: new ProbeRegistry({ installDir: '/nonexistent', devDir: PROBES }),
      deviceId: 'd-sim',
      statsIntervalMs: 100,
      batch: { maxDelayMs: 20 },
      loaderFactory: replayLoaderFactory({ recording, rate, durationMs, counters, tickMs: 20, ...(ringRecords ? { ringRecords } : {}) }),
      sink: { batch: sinkBatch, stats: (s) => void stats.push(s) },
    });
    return { r, counters, stats };
  }

  it('emits rate x duration records through the real run and batcher, stamped with the time of replay', async () => {
    const batches: ProbeBatch[] = [];
    const { r, counters, stats } = runner(400, 500, (b) => void batches.push(b));
    const before = BigInt(Date.now()) * 1_000_000n;
    const run = r.start({ runId: 'r1', probe: 'tcpstates', args: [] });
    const final = await run.finished;
    expect(final.state).toBe(ProbeStatus_State.STATE_STOPPED);
    const n = batches.reduce((s, b) => s + b.count, 0);
    expect(n).toBe(200);
    expect(counters).toMatchObject({ generated: 200, written: 200, ringbufFull: 0, started: 1, ended: 1 });
    // The last STATS frame counts every record written.
    expect(stats.at(-1)?.records).toBe(200n);
    // Wall time of each record (ktime + HELLO clock offset) is now, not when it was recorded.
    const b = batches[0]!;
    const wall = b.records.readBigUInt64LE(0) + b.clockOffsetNs;
    expect(wall).toBeGreaterThanOrEqual(before - 50_000_000n);
    expect(wall).toBeLessThan(BigInt(Date.now()) * 1_000_000n + 50_000_000n);
    // The payload is the recorded one apart from the timestamp.
    expect(b.records.subarray(8, 88).equals(recording.records[0]!.subarray(8))).toBe(true);
  });

  it('is RUNNING at once but emits nothing until the gate opens, then exactly rate x duration', async () => {
    const batches: ProbeBatch[] = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const counters = newReplayCounters();
    const r = new ProbeRunner({
      registry: new ProbeRegistry({ installDir: '/nonexistent', devDir: PROBES }),
      deviceId: 'd-sim', statsIntervalMs: 100, batch: { maxDelayMs: 20 },
      loaderFactory: replayLoaderFactory({ recording, rate: 500, durationMs: 200, counters, gate, tickMs: 20 }),
      sink: { batch: (b) => void batches.push(b) },
    });
    const run = r.start({ runId: 'r3', probe: 'tcpstates', args: [] });
    await new Promise((res) => setTimeout(res, 300));
    expect(run.state).toBe(ProbeStatus_State.STATE_RUNNING);
    expect(counters.generated).toBe(0);
    open();
    await run.finished;
    expect(batches.reduce((n, b) => n + b.count, 0)).toBe(100);
  });

  it('holds records in a bounded ring while the agent does not read, and counts the overflow as ringbuf_full', async () => {
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    let delivered = 0;
    const { r, counters, stats } = runner(1000, 600, async (b) => {
      delivered += b.count;
      await blocked; // a stuck spool: the delivery queue fills, the run pauses the "loader"
    }, 50);
    const run = r.start({ runId: 'r2', probe: 'tcpstates', args: [] });
    setTimeout(release, 800);
    await run.finished;
    expect(counters.generated).toBe(600);
    expect(counters.ringbufFull).toBeGreaterThan(0);
    // Nothing vanishes: every generated record was either delivered or counted as lost.
    expect(delivered + counters.ringbufFull).toBe(counters.generated);
    expect(stats.at(-1)?.kernelRingbufFull).toBe(BigInt(counters.ringbufFull));
  });

  it('makes only the records the agent takes or the ring holds; the overflow is counted without being made', async () => {
    // Counts reads of recorded events: each one is a record made (copied and stamped).
    let made = 0;
    const records = new Proxy(recording.records, {
      get: (target, key, recv) => {
        if (typeof key === 'string' && /^\d+$/.test(key)) made++;
        return Reflect.get(target, key, recv) as unknown;
      },
    });
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    let delivered = 0;
    const counters = newReplayCounters();
    const r = new ProbeRunner({
      registry: new ProbeRegistry({ installDir: '/nonexistent', devDir: PROBES }),
      deviceId: 'd-sim', statsIntervalMs: 100, batch: { maxDelayMs: 20 },
      loaderFactory: replayLoaderFactory({ recording: { ...recording, records }, rate: 1_000_000, durationMs: 300, counters, tickMs: 20, ringRecords: 50 }),
      sink: { batch: async (b) => { delivered += b.count; await blocked; } },
    });
    const run = r.start({ runId: 'r4', probe: 'tcpstates', args: [] });
    setTimeout(release, 500);
    await run.finished;
    expect(counters.generated).toBe(300_000);
    expect(delivered + counters.ringbufFull).toBe(counters.generated);
    expect(counters.ringbufFull).toBeGreaterThan(250_000);
    // Made: what was delivered plus at most the last ring's worth and slice dropped at the end.
    expect(made).toBeLessThanOrEqual(delivered + 50 + 64);
  });
});
