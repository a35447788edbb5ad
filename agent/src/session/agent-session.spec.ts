// The session end to end: real tcpstates loaders in this kernel (root), real loopback traffic,
// a real gRPC link to an in-test controller that is shut down and restarted under the agent.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { ProbeStatus_State as S, decodeRecord, type Manifest } from '@bpfleet/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BundleInstaller } from '../bundles/index.js';
import { builtBundle, newSigner, type TestSigner } from '../bundles/signed-bundle.fixture.js';
import { ProbeRegistry } from '../probes/index.js';
import { buildTcpgen, devDir, ensureProbesBuilt, pickPort, requireRoot, runTcpgen, sleep, tempDir } from '../probes/probe-test-support.js';
import { Spool } from '../spool/index.js';
import { SystemMetricsSampler, detectDeviceFacts } from '../system/index.js';
import { GrpcTransport } from '../transport/index.js';
import type { SmokeReport } from '../smoke/index.js';
import { AgentSession } from './agent-session.js';
import { TestController } from './session-test-support.js';

const DEVICE = 'dev-session';
let tmp: string;
let tcpgen: string;
let manifest: Manifest;
let signer: TestSigner;
const logs: string[] = [];

interface Agent {
  session: AgentSession;
  spool: Spool;
}

async function startAgent(dataDir: string, ctrl: TestController, spoolDir = path.join(dataDir, 'spool')): Promise<Agent> {
  const log = (line: string): void => {
    logs.push(line);
    if (process.env.BPFLEET_TEST_LOG) process.stderr.write(`${line}\n`);
  };
  const spool = await Spool.open({ dir: spoolDir, maxBytes: 64 << 20, log });
  const installDir = path.join(dataDir, 'probes');
  const session = new AgentSession({
    deviceId: DEVICE,
    agentVersion: '0.1.0-test',
    transport: new GrpcTransport({ address: ctrl.address, credential: ctrl.credential, backoff: { initialMs: 100, maxMs: 800 }, log }),
    spool,
    installer: new BundleInstaller({ installDir, pinnedKey: signer.publicKeyRaw, arch: 'x86_64' }),
    registry: new ProbeRegistry({ installDir, devDir }),
    facts: () => detectDeviceFacts({ board: 'workstation' }),
    metrics: new SystemMetricsSampler(),
    heartbeatMs: 300,
    statsIntervalMs: 300,
    loaderStatsIntervalMs: 200,
    batch: { maxRecords: 10, maxDelayMs: 50 },
    log,
  });
  session.start();
  return { session, spool };
}

function decodeAll(ctrl: TestController, streamId: string): Record<string, unknown>[] {
  const s = ctrl.store.get(streamId) ?? new Map<bigint, Buffer>();
  return [...s.keys()].sort((a, b) => (a < b ? -1 : 1)).map((q) => decodeRecord(manifest, s.get(q) as Buffer));
}

/** Asserts 1..n stored exactly once apart from replays of what was never acked. */
function expectExactlyOnce(ctrl: TestController, streamId: string, n: number): void {
  expect(ctrl.missing(streamId, n)).toEqual([]);
  expect(ctrl.received(streamId)).toBe(n);
  for (const d of ctrl.duplicates) expect(d.seq).toBeGreaterThan(d.ackedAtWelcome);
}

async function startRun(ctrl: TestController, id: string, port: number): Promise<string> {
  const res = await ctrl.command({ $case: 'start', value: { commandId: `start-${id}`, probe: 'tcpstates', runId: id, args: ['--rport', String(port)] } });
  expect(res).toMatchObject({ ok: true, error: '' });
  const streamId = `${DEVICE}/tcpstates/${id}`;
  expect(JSON.parse(res.detailJson)).toMatchObject({ runId: id, streamId, source: 'dev' });
  await ctrl.waitFor(`${id} RUNNING`, () => ctrl.statuses.some((s) => s.runId === id && s.state === S.STATE_RUNNING));
  return streamId;
}

describe('AgentSession with real probes and a real gRPC link', () => {
  beforeAll(() => {
    requireRoot();
    ensureProbesBuilt();
    tmp = tempDir('session');
    tcpgen = buildTcpgen(tmp);
    manifest = JSON.parse(readFileSync(path.join(devDir, 'tcpstates.manifest.json'), 'utf8')) as Manifest;
    signer = newSigner();
  }, 600_000);
  afterAll(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('streams from seq 1, spools through a controller outage, replays after reconnect: every record exactly once', async () => {
    const ctrl = new TestController();
    await ctrl.start();
    const agent = await startAgent(path.join(tmp, 'a1'), ctrl);
    try {
      await ctrl.waitFor('Hello', () => ctrl.hellos.length === 1);
      expect(ctrl.authorizations[0]).toBe(`Bearer ${ctrl.credential}`);
      const hello = ctrl.hellos[0]!;
      expect(hello).toMatchObject({ deviceId: DEVICE, agentVersion: '0.1.0-test', spooled: [] });
      expect(hello.facts).toMatchObject({ board: 'workstation', arch: 'x86_64' });
      expect(hello.installed.map((p) => p.name)).toContain('tcpstates');

      const port = pickPort();
      const streamId = await startRun(ctrl, 'r1', port);

      // Live: contiguous sequence numbers from 1, in order.
      await runTcpgen(tcpgen, port, 10, 10, 10);
      await ctrl.waitFor('50 records', () => ctrl.received(streamId) >= 50);
      const mine = ctrl.batches.filter((b) => b.streamId === streamId);
      expect(mine[0]!.firstSeq).toBe(1n);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.firstSeq).toBe(mine[i - 1]!.firstSeq + BigInt(mine[i - 1]!.count));
      expect(mine.every((b) => b.recordSize === 88 && b.schemaId.startsWith('tcpstates@') && b.clockOffsetNs > 0n)).toBe(true);
      await ctrl.waitFor('spool emptied by acks', () => agent.spool.cursors().length === 0);

      // The controller stops acking, then dies; traffic goes on.
      ctrl.acking = false;
      await runTcpgen(tcpgen, port, 10, 10, 5);
      await ctrl.waitFor('75 records', () => ctrl.received(streamId) >= 75);
      const frozenAck = ctrl.ackSent.get(streamId)!;
      expect(frozenAck).toBe(50n);
      ctrl.stop();
      await runTcpgen(tcpgen, port, 10, 10, 10);
      await ctrl.waitFor('125 records in the spool', () => (agent.spool.cursors().find((c) => c.streamId === streamId)?.nextSeq ?? 0n) >= 126n);
      await sleep(3000);
      expect(agent.session.state).toBe('down');
      expect(ctrl.received(streamId)).toBe(75);

      // Back on the same port: Hello lists the stream from the last ack; replay fills the rest.
      ctrl.acking = true;
      await ctrl.start(ctrl.port);
      await ctrl.waitFor('second Hello', () => ctrl.hellos.length === 2, 20_000);
      expect(ctrl.hellos[1]!.spooled).toEqual([{ streamId, firstSeq: frozenAck + 1n, nextSeq: 126n }]);
      await ctrl.waitFor('125 records', () => ctrl.received(streamId) >= 125);
      expect(agent.session.sent.replayed).toBeGreaterThan(0);
      await ctrl.waitFor('live again', () => agent.session.isLive);

      // Live again after the replay.
      await runTcpgen(tcpgen, port, 10, 10, 5);
      await ctrl.waitFor('150 records', () => ctrl.received(streamId) >= 150);
      await ctrl.waitFor('all acked', () => agent.spool.cursors().length === 0);
      expectExactlyOnce(ctrl, streamId, 150);
      // Welcome said what was stored (75): nothing stored was sent twice.
      expect(ctrl.duplicates).toEqual([]);
      const recs = decodeAll(ctrl, streamId);
      expect(recs.every((r) => r.rport === port && r.comm === 'tcpgen')).toBe(true);

      // The RUNNING status was sent again after the second Welcome; stats and heartbeats flow.
      expect(ctrl.statuses.filter((s) => s.runId === 'r1' && s.state === S.STATE_RUNNING).length).toBeGreaterThanOrEqual(2);
      await ctrl.waitFor('stats with 150 records', () => ctrl.stats.some((s) => s.streamId === streamId && s.records >= 150n));
      const st = ctrl.stats.filter((s) => s.streamId === streamId).at(-1)!;
      expect(st).toMatchObject({ kernelRingbufFull: 0n, loaderLost: 0n, agentQueueDropped: 0n, spoolEvicted: 0n, spoolCorrupt: 0n });
      await ctrl.waitFor('heartbeat', () => ctrl.heartbeats.length > 0);
      expect(ctrl.heartbeats.at(-1)!.metrics?.memTotalBytes).toBeGreaterThan(0n);

      const stop = await ctrl.command({ $case: 'stop', value: { commandId: 'stop-r1', runId: 'r1' } });
      expect(stop).toMatchObject({ ok: true });
      expect(JSON.parse(stop.detailJson)).toMatchObject({ state: 'STATE_STOPPED', exitCode: 0 });
      await ctrl.waitFor('STOPPED', () => ctrl.statuses.some((s) => s.runId === 'r1' && s.state === S.STATE_STOPPED));
    } finally {
      await agent.session.stop();
      ctrl.stop();
    }
  }, 120_000);

  it('a new agent on the same data dir replays what the last one left unacknowledged', async () => {
    const ctrl = new TestController();
    ctrl.acking = false;
    await ctrl.start();
    const dataDir = path.join(tmp, 'a2');
    const first = await startAgent(dataDir, ctrl);
    const port = pickPort();
    let streamId: string;
    try {
      await ctrl.waitFor('Hello', () => ctrl.hellos.length === 1);
      streamId = await startRun(ctrl, 'r2', port);
      await runTcpgen(tcpgen, port, 10, 10, 4);
      await ctrl.waitFor('20 records', () => ctrl.received(streamId) >= 20);
      ctrl.stop();
      await runTcpgen(tcpgen, port, 10, 10, 4);
      await ctrl.waitFor('40 records in the spool', () => (first.spool.cursors()[0]?.nextSeq ?? 0n) >= 41n);
    } finally {
      await first.session.stop(); // as on SIGTERM: the run's last batches are spooled
    }
    // What the stopped agent left on disk.
    const peek = await Spool.open({ dir: path.join(dataDir, 'spool'), maxBytes: 64 << 20 });
    const left = peek.cursors();
    await peek.close();
    expect(left).toEqual([{ streamId, firstSeq: 1n, nextSeq: 41n }]);

    // Controller back (it had 1..20 but never acked), then a new agent process.
    ctrl.acking = true;
    await ctrl.start(ctrl.port);
    const second = await startAgent(dataDir, ctrl);
    try {
      await ctrl.waitFor('Hello of the new agent', () => ctrl.hellos.length === 2, 20_000);
      expect(ctrl.hellos[1]!.spooled).toEqual([{ streamId, firstSeq: 1n, nextSeq: 41n }]);
      await ctrl.waitFor('40 records', () => ctrl.received(streamId) >= 40);
      await ctrl.waitFor('spool emptied', () => second.spool.cursors().length === 0);
      expectExactlyOnce(ctrl, streamId, 40);
      expect(ctrl.duplicates).toEqual([]);
      expect(decodeAll(ctrl, streamId).every((r) => r.rport === port)).toBe(true);
    } finally {
      await second.session.stop();
      ctrl.stop();
    }
  }, 120_000);

  it('a controller that lost what it did not ack gets it again: duplicates only of unacked records', async () => {
    const ctrl = new TestController();
    ctrl.acking = false;
    ctrl.welcomeAcks = 'acked';
    await ctrl.start();
    const agent = await startAgent(path.join(tmp, 'a3'), ctrl);
    try {
      await ctrl.waitFor('Hello', () => ctrl.hellos.length === 1);
      const port = pickPort();
      const streamId = await startRun(ctrl, 'r3', port);
      await runTcpgen(tcpgen, port, 10, 10, 3);
      await ctrl.waitFor('15 records', () => ctrl.received(streamId) >= 15);
      ctrl.stop();
      // Still not acking: an ack arriving mid-replay would (rightly) cut the replay short.
      await ctrl.start(ctrl.port);
      await ctrl.waitFor('second Hello', () => ctrl.hellos.length === 2, 20_000);
      await ctrl.waitFor('replayed', () => ctrl.duplicates.length >= 15);
      expect(ctrl.duplicates.map((d) => d.seq)).toEqual(Array.from({ length: 15 }, (_, i) => BigInt(i + 1)));
      expectExactlyOnce(ctrl, streamId, 15);
      ctrl.send({ payload: { $case: 'ack', value: { streamId, ackedThrough: 15n, gapRecords: 0n } } });
      await ctrl.waitFor('spool emptied', () => agent.spool.cursors().length === 0);
    } finally {
      await agent.session.stop();
      ctrl.stop();
    }
  }, 60_000);

  it('commands: deploys verified against the pinned key, unknown probes, smoke tests and config', async () => {
    const ctrl = new TestController();
    ctrl.welcomeConfig = { $case: 'config', value: { heartbeatMs: 100, spoolMaxBytes: 0n, batchMaxRecords: 0, batchMaxBytes: 0, batchMaxDelayMs: 0 } };
    await ctrl.start();
    const dataDir = path.join(tmp, 'a4');
    const agent = await startAgent(dataDir, ctrl);
    try {
      await ctrl.waitFor('Hello', () => ctrl.hellos.length === 1);

      // Signed by some other key: refused with the installer's own words, nothing installed.
      const foreign = await builtBundle('tcpstates', 'x86_64', newSigner());
      const expected = await new BundleInstaller({ installDir: path.join(tmp, 'scratch'), pinnedKey: signer.publicKeyRaw, arch: 'x86_64' })
        .install(foreign)
        .then(() => 'installed?!', (err: Error) => err.message);
      expect(expected).toMatch(/signature/);
      const bad = await ctrl.command({ $case: 'deploy', value: { commandId: 'dep-bad', ...foreign } });
      expect(bad).toMatchObject({ ok: false, error: expected });

      // Signed by the pinned key: installed; a StartProbe right after runs the installed loader.
      const good = await builtBundle('tcpstates', 'x86_64', signer, '1.0.0-test');
      const ok = await ctrl.command({ $case: 'deploy', value: { commandId: 'dep-ok', ...good } });
      expect(ok).toMatchObject({ ok: true, error: '' });
      expect(JSON.parse(ok.detailJson)).toMatchObject({ probe: 'tcpstates', version: '1.0.0-test', changed: true });
      const port = pickPort();
      const started = await ctrl.command({ $case: 'start', value: { commandId: 'st-inst', probe: 'tcpstates', runId: 'r4', args: ['--rport', String(port)] } });
      expect(JSON.parse(started.detailJson)).toMatchObject({ source: 'installed' });
      expect(await ctrl.command({ $case: 'stop', value: { commandId: 'sp-inst', runId: 'r4' } })).toMatchObject({ ok: true });

      const unknown = await ctrl.command({ $case: 'start', value: { commandId: 'st-x', probe: 'nosuchprobe', runId: 'rx', args: [] } });
      expect(unknown.ok).toBe(false);
      expect(unknown.error).toMatch(/probe nosuchprobe is not installed/);
      const badArgs = await ctrl.command({ $case: 'start', value: { commandId: 'st-j', probe: 'tcpstates', runId: 'rj', args: ['--json'] } });
      expect(badArgs).toMatchObject({ ok: false });
      expect(badArgs.error).toMatch(/--json/);
      const noRun = await ctrl.command({ $case: 'stop', value: { commandId: 'sp-x', runId: 'nope' } });
      expect(noRun).toMatchObject({ ok: false, error: 'no active run nope on this device' });
      // The smoke test runs the installed tcpstates for real; its records reach the controller
      // like any run's, on the stream of run smoke-<command>-<probe>.
      const smoke = await ctrl.command({ $case: 'smoke', value: { commandId: 'sm', probes: ['tcpstates'], probeTimeoutMs: 0 } }, 60_000);
      expect(smoke).toMatchObject({ ok: true, error: '' });
      const report = JSON.parse(smoke.detailJson) as SmokeReport;
      expect(report.probes).toHaveLength(1);
      expect(report.probes[0]).toMatchObject({ probe: 'tcpstates', outcome: 'pass', reason: '',
        runId: 'smoke-sm-tcpstates', streamId: `${DEVICE}/tcpstates/smoke-sm-tcpstates` });
      expect(report.probes[0]!.verifiedInsns).toBeGreaterThan(0);
      await ctrl.waitFor('smoke records stored', () => (ctrl.store.get(`${DEVICE}/tcpstates/smoke-sm-tcpstates`)?.size ?? 0) > 0);

      // heartbeat_ms 100 from the Welcome's config.
      // Three within 4 s: the 5 s default would send none.
      const n = ctrl.heartbeats.length;
      await ctrl.waitFor('three more heartbeats', () => ctrl.heartbeats.length - n >= 3, 4000);
      expect(logs.some((l) => l.includes('config: heartbeat 100 ms'))).toBe(true);
    } finally {
      await agent.session.stop();
      ctrl.stop();
    }
  }, 60_000);
  it('on a full disk: batches go out unspooled while connected, are dropped and counted while not', async () => {
    const mnt = path.join(tmp, 'full');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    const ctrl = new TestController();
    await ctrl.start();
    let agent: Agent | undefined;
    try {
      agent = await startAgent(path.join(tmp, 'a5'), ctrl, path.join(mnt, 'spool'));
      await ctrl.waitFor('Hello', () => ctrl.hellos.length === 1);
      const port = pickPort();
      const streamId = await startRun(ctrl, 'r5', port);
      // Fill the file system to the last byte.
      const fd = openSync(path.join(mnt, 'filler'), 'w');
      try {
        for (const chunk = Buffer.alloc(4096); ; ) writeSync(fd, chunk);
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        closeSync(fd);
      }
      await runTcpgen(tcpgen, port, 10, 10, 4);
      await ctrl.waitFor('20 records sent unspooled', () => ctrl.received(streamId) >= 20);
      expectExactlyOnce(ctrl, streamId, 20);
      expect(logs.some((l) => /sent \d+ records of .* without spooling them .*: spool: disk full at/.test(l))).toBe(true);

      ctrl.stop();
      await ctrl.waitFor('down', () => agent!.session.state === 'down');
      await runTcpgen(tcpgen, port, 10, 10, 4);
      await ctrl.waitFor('drops logged', () => logs.some((l) => /dropped \d+ records of .* \(agent_queue_dropped now \d+\): spool: disk full at/.test(l)));
      await ctrl.start(ctrl.port);
      await ctrl.waitFor('stats with 20 dropped', () => ctrl.stats.some((s) => s.streamId === streamId && s.records >= 40n && s.agentQueueDropped === 20n), 20_000);
      expect(ctrl.received(streamId)).toBe(20);
    } finally {
      await agent?.session.stop();
      ctrl.stop();
      execFileSync('umount', [mnt]);
    }
  }, 60_000);
});
