import { afterEach, describe, expect, it } from 'vitest';
import { Fleet, portBase } from '../lib/index.js';

// The fleet simulator against a real controller: `bpfleet sim` creates a token per device through
// the admin API, runs 10 real agent sessions (own identity, spool, gRPC connection) in 2 worker
// processes, deploys tcpstates to them, and each replays recorded tcpstates output at 50
// events/s for a few seconds. A correctness test, not a timing one: every generated event must
// be stored exactly once, and the sim's counters must agree with the controller's database.

let fleet: Fleet | undefined;

interface SimTotals { devices: number; peakConnected: number; generated: number; ringbufFull: number; spooled: number; acked: number;
  backlog: number; spoolEvicted: number; appendErrors: number; transportDowns: number; startFailures: number }

describe('bpfleet sim', () => {
  afterEach(async (ctx) => {
    await fleet?.stop(ctx.task.result?.state === 'fail');
    fleet = undefined;
  });

  it('stores every event of 10 simulated devices exactly once', async () => {
    const base = portBase(4);
    const f = (fleet = new Fleet({ name: 'sim', grpcPort: base, adminPort: base + 1 }));
    await f.startController();
    const r = await f.cli(['sim', '--devices', '10', '--rate', '50', '--seconds', '4', '--processes', '2', '--controller', f.grpc,
      '--data-dir', `${f.dir}/sim`, '--drain-seconds', '30', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as { drained: boolean; totals: SimTotals; workers: unknown[] };
    const t = res.totals;
    expect(res.workers).toHaveLength(2);
    expect(t).toMatchObject({ devices: 10, peakConnected: 10, startFailures: 0, ringbufFull: 0, spoolEvicted: 0, appendErrors: 0,
      transportDowns: 0, backlog: 0 });
    expect(res.drained).toBe(true);
    // 10 devices x 50 events/s x 4 s: runs wait for every device's start, then all emit 4 s.
    expect(t.generated).toBe(2000);
    expect(t.spooled).toBe(t.generated);
    expect(t.acked).toBe(t.generated);
    // The controller's database: each (stream, seq) once, as many as were generated, on 10 streams.
    expect(f.distinctEvents()).toBe(t.generated);
    expect(f.storedEvents()).toBe(t.generated);
    const streams = await f.streamStats();
    expect(streams).toHaveLength(10);
    for (const s of streams) {
      expect(s.storedRecords).toBe(200);
      expect(s.duplicateRecords + s.gapRecords + s.rejectedRecords).toBe(0);
    }
  }, 180_000);
});
