// Real loaders in this kernel against real loopback traffic (root, tracepoints; this kernel
// has no kprobes, which is what the skbclone case relies on).
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ProbeStatus_State as S, decodeRecord, type Manifest } from '@bpfleet/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeRegistry } from './probe-registry.js';
import { ProbeRunner, type ProbeRunnerOptions } from './probe-runner.js';
import {
  RecordingSink,
  buildTcpgen,
  devDir,
  ensureProbesBuilt,
  installCrashingLoader,
  pickPort,
  requireRoot,
  runTcpgen,
  sleep,
  tempDir,
} from './probe-test-support.js';
import type { ProbeBatch } from './types.js';

const CLIENT = ['CLOSE>SYN_SENT', 'SYN_SENT>ESTABLISHED', 'ESTABLISHED>FIN_WAIT1', 'FIN_WAIT1>FIN_WAIT2', 'FIN_WAIT2>CLOSE'];

let tmp: string | undefined;
let tcpgen: string;
let installDir: string;
let manifest: Manifest;
let manifestText: string;

function runner(sink: RecordingSink, opts: Partial<ProbeRunnerOptions> = {}): ProbeRunner {
  return new ProbeRunner({
    registry: new ProbeRegistry({ installDir, devDir }),
    sink,
    deviceId: 'dev-1',
    statsIntervalMs: 200,
    ...opts,
  });
}

function decodeAll(batches: ProbeBatch[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const b of batches) {
    expect(b.records.length).toBe(b.count * b.recordSize);
    for (let i = 0; i < b.count; i++) out.push(decodeRecord(manifest, b.records.subarray(i * b.recordSize, (i + 1) * b.recordSize)));
  }
  return out;
}

describe('ProbeRunner with real loaders', () => {
  beforeAll(() => {
    requireRoot();
    ensureProbesBuilt();
    tmp = tempDir('probes');
    tcpgen = buildTcpgen(tmp);
    installDir = path.join(tmp, 'install');
    manifestText = readFileSync(path.join(devDir, 'tcpstates.manifest.json'), 'utf8');
    manifest = JSON.parse(manifestText) as Manifest;
  }, 600_000);
  afterAll(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('tcpstates: every client transition arrives, in batches of at most batchMaxRecords', async () => {
    const sink = new RecordingSink();
    const r = runner(sink, { batch: { maxRecords: 7, maxDelayMs: 100 } });
    const port = pickPort();
    const run = r.start({ runId: 'run-1', probe: 'tcpstates', args: ['--rport', String(port)] });
    expect(run.streamId).toBe('dev-1/tcpstates/run-1');
    await sink.waitForState(S.STATE_RUNNING);

    const count = 20;
    const gen = await runTcpgen(tcpgen, port, 100, 200, count);
    await sink.waitFor(`${count * 5} records`, () => sink.records >= count * 5);
    const final = await run.stop();

    expect(final.state).toBe(S.STATE_STOPPED);
    expect(final.exitCode).toBe(0);
    expect(sink.states()).toEqual(['STATE_RUNNING/0', 'STATE_STOPPED/0']);
    expect(JSON.parse(sink.statuses[0]!.loaderHelloJson)).toMatchObject({ probe: 'tcpstates', record_size: 88 });

    // Batch boundaries: never above the limit, and the limit is actually reached.
    expect(sink.batches.every((b) => b.count >= 1 && b.count <= 7)).toBe(true);
    expect(sink.batches.some((b) => b.count === 7)).toBe(true);
    const hash = createHash('sha256').update(manifestText).digest('hex').slice(0, 16);
    for (const b of sink.batches) {
      expect(b).toMatchObject({ streamId: 'dev-1/tcpstates/run-1', recordSize: 88, schemaId: `tcpstates@1.0.0:${hash}`, intervalIndex: [] });
    }

    const recs = decodeAll(sink.batches);
    expect(recs).toHaveLength(count * 5);
    expect(recs.every((e) => e.rport === port && e.pid === gen.pid && e.comm === 'tcpgen')).toBe(true);
    // Connections run one after the other, so each one's 5 transitions are contiguous; the
    // local port is bound only after CLOSE>SYN_SENT.
    gen.conns.forEach((c, i) => {
      const mine = recs.slice(i * 5, i * 5 + 5);
      expect(mine.map((e) => `${e.oldstate}>${e.newstate}`)).toEqual(CLIENT);
      expect(mine.slice(1).every((e) => e.lport === c.lport && e.skaddr === mine[0]!.skaddr)).toBe(true);
    });
    // ktime + clock offset is wall-clock time.
    const wall = BigInt(recs.at(-1)!.ts_ns as number) + sink.batches.at(-1)!.clockOffsetNs;
    expect(Number(BigInt(Date.now()) * 1_000_000n - wall) / 1e9).toBeLessThan(10);

    const last = sink.statsSeen.at(-1)!;
    expect(last).toMatchObject({ streamId: 'dev-1/tcpstates/run-1', records: BigInt(count * 5), kernelRingbufFull: 0n, loaderLost: 0n });
  });

  it('stop() sends SIGINT: the loader exits 0 and its final stats frame arrives before STOPPED', async () => {
    const sink = new RecordingSink();
    // No periodic stats within the test: the only stats frame is the one written at exit.
    const r = runner(sink, { statsIntervalMs: 3_600_000 });
    const port = pickPort();
    const run = r.start({ runId: 'run-stop', probe: 'tcpstates', args: ['--rport', String(port)] });
    await sink.waitForState(S.STATE_RUNNING);
    await runTcpgen(tcpgen, port, 10, 10, 3);
    expect(sink.statsSeen).toHaveLength(0);

    const final = await run.stop();
    // SIGINT was enough: after a SIGKILL the reason would say so ("... SIGKILL").
    expect(final).toMatchObject({ state: S.STATE_STOPPED, exitCode: 0, reason: 'stopped on request', restarts: 0 });
    expect(sink.statsSeen).toHaveLength(1);
    expect(sink.statsSeen[0]!.records).toBe(15n);
    expect(sink.records).toBe(15);
    expect(r.list()).toEqual([]);
  });

  it('skbclone: FAILED with the loader\'s reason and no restart (no kprobes here)', async () => {
    const sink = new RecordingSink();
    const r = runner(sink, { backoff: { initialMs: 50 } });
    const run = r.start({ runId: 'run-skb', probe: 'skbclone', args: [] });
    const final = await run.finished;
    await sleep(500); // a restart would show up as another status by now
    expect(final.state).toBe(S.STATE_FAILED);
    expect(final.exitCode).toBe(3);
    expect(final.reason).toContain('unsupported on this kernel');
    expect(final.reason).toContain('kprobe skb_clone');
    expect(sink.states()).toEqual(['STATE_FAILED/0']);
    expect(run.restarts).toBe(0);
  });

  it('a loader that keeps crashing: CRASHED, restarted with doubling delays, restarts counted', async () => {
    installCrashingLoader(installDir);
    const sink = new RecordingSink();
    const r = runner(sink, { backoff: { initialMs: 200, maxMs: 5000, stableMs: 60_000 } });
    const run = r.start({ runId: 'run-fake', probe: 'fake', args: ['--pid', '1'] });
    await sink.waitForState(S.STATE_CRASHED, 4, 15_000);
    const final = await run.stop();

    expect(sink.states().slice(0, 8)).toEqual([
      'STATE_RUNNING/0', 'STATE_CRASHED/0',
      'STATE_RUNNING/1', 'STATE_CRASHED/1',
      'STATE_RUNNING/2', 'STATE_CRASHED/2',
      'STATE_RUNNING/3', 'STATE_CRASHED/3',
    ]);
    const crashed = sink.statuses.find((s) => s.state === S.STATE_CRASHED)!;
    expect(crashed.exitCode).toBe(1);
    expect(crashed.reason).toContain('exited with code 1');
    expect(crashed.reason).toContain('segfault in the imaginary ring buffer');
    // Delay between a crash and the next RUNNING: at least 200, 400, 800 ms (plus the respawn,
    // which a loaded machine makes longer, so only the lower bounds are checked here; the exact
    // delays are RestartBackoff's unit test).
    const gaps = [0, 1, 2].map((i) => sink.statuses[2 * i + 2]!.at - sink.statuses[2 * i + 1]!.at);
    gaps.forEach((g, i) => expect(g).toBeGreaterThanOrEqual(200 * 2 ** i - 20));
    expect(final.state).toBe(S.STATE_STOPPED);
    expect(final.restarts).toBeGreaterThanOrEqual(3);

    // Each short life wrote one record before dying: all delivered; stats add up across lives.
    const lives = sink.statuses.filter((s) => s.state === S.STATE_RUNNING).length;
    expect(sink.records).toBe(lives);
    expect(sink.batches.every((b) => b.schemaId.startsWith('fake@0.0.1:') && b.clockOffsetNs === 1700000000123456789n)).toBe(true);
    expect(sink.statsSeen.at(-1)!.records).toBe(BigInt(lives));
  });

  it('tcpbytes (interval probe): each record carries the interval it closes', async () => {
    const sink = new RecordingSink();
    const r = runner(sink);
    const run = r.start({ runId: 'run-bytes', probe: 'tcpbytes', args: ['--interval', '200', '--comm', 'tcpgen'] });
    await sink.waitForState(S.STATE_RUNNING);
    const gen = await runTcpgen(tcpgen, pickPort(), 5000, 7000, 2);
    await sleep(700);
    await run.stop();

    const m = JSON.parse(readFileSync(path.join(devDir, 'tcpbytes.manifest.json'), 'utf8')) as Manifest;
    let sent = 0;
    for (const b of sink.batches) {
      expect(b.intervalIndex).toHaveLength(b.count);
      // A batch closes at the end of an interval, so it never mixes two.
      expect(new Set(b.intervalIndex).size).toBe(1);
      for (let i = 0; i < b.count; i++) {
        const rec = decodeRecord(m, b.records.subarray(i * b.recordSize, (i + 1) * b.recordSize));
        if (rec.pid === gen.pid) sent += Number(rec.sent_bytes); // other tcpgen runs on this host share the comm
      }
    }
    expect(sent).toBe(2 * (5000 + 7000)); // tcpgen is both ends of both connections
    const idx = sink.batches.map((b) => b.intervalIndex[0]!);
    expect([...idx].sort((a, b) => a - b)).toEqual(idx);
    expect(BigInt(idx.at(-1)!)).toBeLessThanOrEqual(sink.statsSeen.at(-1)!.intervals);
  });

  it('a probe that is not installed: FAILED saying where it looked', async () => {
    const sink = new RecordingSink();
    const final = await runner(sink).start({ runId: 'run-none', probe: 'nosuchprobe', args: [] }).finished;
    expect(final.state).toBe(S.STATE_FAILED);
    expect(final.reason).toMatch(/probe nosuchprobe is not installed \(no executable loader at .*nosuchprobe\/current\/nosuchprobe or .*bpf\/out\/x86_64\/nosuchprobe\)/);
  });

  it('refuses output-mode arguments before starting anything', () => {
    const sink = new RecordingSink();
    expect(() => runner(sink).start({ runId: 'run-json', probe: 'tcpstates', args: ['--json'] })).toThrow(/output mode/);
    expect(sink.statuses).toEqual([]);
  });

  it('backpressure: a consumer blocked for 2 s makes the kernel count the loss, exactly', async () => {
    const sink = new RecordingSink();
    let blocked = false;
    sink.onBatch = async () => {
      if (blocked) return;
      blocked = true;
      await sleep(2000);
    };
    const r = runner(sink, { statsIntervalMs: 100 });
    const port = pickPort();
    const run = r.start({ runId: 'run-storm', probe: 'tcpstates', args: ['--rport', String(port)] });
    await sink.waitForState(S.STATE_RUNNING);

    const count = 4000;
    const t0 = Date.now();
    await runTcpgen(tcpgen, port, 1, 1, count);
    const stormMs = Date.now() - t0;
    await sink.waitFor('the consumer to catch up', () => blocked && sink.batches.length > 0);
    await sleep(500);
    await run.stop();

    const last = sink.statsSeen.at(-1)!;
    const delivered = sink.records;
    const dropped = Number(last.kernelRingbufFull);
    console.log(`storm: ${count * 5} transitions in ${stormMs} ms; delivered ${delivered}, ringbuf_full ${dropped}`);
    expect(delivered + dropped).toBe(count * 5);
    expect(Number(last.records)).toBe(delivered); // the loader wrote exactly what the agent got
    expect(dropped > 0 || delivered === count * 5).toBe(true);
    expect(last.loaderLost).toBe(0n);
  }, 60_000);
});
