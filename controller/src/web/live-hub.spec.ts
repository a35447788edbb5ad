import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FleetEvent } from '../fleet/fleet-events.js';
import { LiveHub, type LiveUpdate } from './live-hub.js';

const hb = (deviceId: string, cpu: number, t: bigint): FleetEvent => ({ type: 'heartbeat', deviceId, heartbeat: {
  timeUnixNs: t, spoolBytes: 100n, metrics: { cpuBusy: cpu, load1: 1, load5: 0.5, load15: 0.2, memAvailableBytes: 1n << 30n,
    memTotalBytes: 4n << 30n, agentCpuNs: 0n, agentRssBytes: 50n << 20n, netRxBytes: 10n, netTxBytes: 20n } } } as unknown as FleetEvent);
const stored = (streamId: string, records: number): FleetEvent => ({ type: 'stored', deviceId: streamId.split('/')[0]!, streamId, records,
  duplicate: 0, gapRecords: 0, filled: 0, ackedThrough: 1n });

describe('LiveHub', () => {
  afterEach(() => vi.useRealTimers());

  it('folds a burst from 500 devices into one update per tick, bounded by devices and streams', () => {
    vi.useFakeTimers();
    let listener: ((e: FleetEvent) => void) | undefined;
    const hub = new LiveHub({ tickMs: 500, onEvent: (l) => { listener = l; return () => { listener = undefined; }; } });
    const got: LiveUpdate[] = [];
    hub.subscribe((u) => got.push(u));
    // 500 devices x 10 heartbeats and 10 stored batches each, within one tick.
    for (let round = 0; round < 10; round++) {
      for (let d = 0; d < 500; d++) {
        listener!(hb(`dev${d}`, round / 10, BigInt(round) * 1_000_000_000n));
        listener!(stored(`dev${d}/tcpstates/r1`, 7));
      }
    }
    expect(got).toHaveLength(0); // nothing before the tick
    vi.advanceTimersByTime(499);
    expect(got).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(got).toHaveLength(1);
    const u = got[0]!;
    expect(u.events).toBe(10_000);
    expect(Object.keys(u.heartbeats)).toHaveLength(500); // only the latest per device
    expect(u.heartbeats['dev7']!.cpuBusy).toBeCloseTo(0.9);
    expect(u.heartbeats['dev7']!.t).toBe(9000);
    expect(u.heartbeats['dev7']!.memTotalBytes).toBe(4 * 2 ** 30);
    expect(Object.keys(u.stored)).toHaveLength(500);
    expect(u.stored['dev3/tcpstates/r1']).toBe(70); // summed, not one entry per batch
    vi.advanceTimersByTime(5000);
    expect(got).toHaveLength(1); // quiet fleet, no messages
    hub.close();
    expect(listener).toBeUndefined();
  });

  it('keeps the last word on online/offline and on each run state', () => {
    const hub = new LiveHub({ tickMs: 10_000 });
    const got: LiveUpdate[] = [];
    hub.subscribe((u) => got.push(u));
    hub.add({ type: 'online', deviceId: 'a', name: 'a', transport: 'grpc', peer: 'p', agentVersion: '1', replaced: false });
    hub.add({ type: 'offline', deviceId: 'a', reason: 'link cut' });
    hub.add({ type: 'offline', deviceId: 'b', reason: 'x' });
    hub.add({ type: 'online', deviceId: 'b', name: 'b', transport: 'mqtt', peer: 'p', agentVersion: '2', replaced: false });
    hub.add({ type: 'status', deviceId: 'a', runId: 'r1', probe: 'tcpwin', state: 'starting', reason: '', streamId: 's', exitCode: 0, restarts: 0 });
    hub.add({ type: 'status', deviceId: 'a', runId: 'r1', probe: 'tcpwin', state: 'running', reason: '', streamId: 's', exitCode: 0, restarts: 0 });
    hub.flush();
    const u = got[0]!;
    expect(u.offline).toEqual([{ deviceId: 'a', reason: 'link cut' }]);
    expect(u.online.map((x) => x.deviceId)).toEqual(['b']);
    expect(u.status).toHaveLength(1);
    expect(u.status[0]!.state).toBe('running');
    hub.close();
  });

  it('keeps nothing while nobody is subscribed', () => {
    const hub = new LiveHub({ tickMs: 10 });
    hub.add(stored('d/p/r', 5));
    const got: LiveUpdate[] = [];
    hub.subscribe((u) => got.push(u));
    hub.flush();
    expect(got).toHaveLength(0);
    expect(hub.totals.events).toBe(1);
    hub.close();
  });
});
