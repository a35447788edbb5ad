// The behaviour every Store implementation must show. A backend's spec calls storeContract()
// with a function that opens a fresh, empty store.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProbeStatus_State, type PipelineStats } from '@bpfleet/proto';
import { BatchRejectedError, EnrollmentError, StoreConflictError } from './errors.js';
import type { Store } from './store.js';
import { encodeRecord, loadTcpstates, makeBatch, seqBatch } from './tcpstates-fixture.js';

export type OpenFreshStore = (opts: { now: () => number }) => Promise<Store>;

const { schemaId, manifest } = loadTcpstates();
const DEV = 'd-0000000000000001';
const STREAM = `${DEV}/tcpstates/r1`;

export function storeContract(name: string, openFresh: OpenFreshStore): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let nowMs = 1_750_000_000_000;
    const batch = (first: number, count: number, stream = STREAM) => seqBatch(schemaId, manifest, stream, first, count);
    const seqs = async (streamId = STREAM) => (await store.events({ streamId, limit: 100_000 })).map((e) => e.seq);
    const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

    beforeEach(async () => {
      store = await openFresh({ now: () => nowMs });
      await store.putManifest(schemaId, manifest);
    });
    afterEach(async () => { await store.close(); });

    describe('exactly-once ingest', () => {
      it('stores a batch replayed twice once', async () => {
        const first = await store.ingestBatch(DEV, batch(1, 10));
        const again = await store.ingestBatch(DEV, batch(1, 10));
        expect(first).toMatchObject({ stored: 10, duplicate: 0, gapRecords: 0, ackedThrough: 10n });
        expect(again).toMatchObject({ stored: 0, duplicate: 10, gapRecords: 0, ackedThrough: 10n });
        expect(await seqs()).toEqual(range(1, 11));
        expect((await store.streams())[0]).toMatchObject({ storedRecords: 10, duplicateRecords: 10, nextSeq: 11n });
      });

      it('numbers a stream from 1: nothing stored is ackedThrough 0, and seq 0 is refused', async () => {
        expect(await store.cursor(STREAM)).toBeUndefined();
        // The agent holds everything from seq 1: nothing is lost, nothing is acked yet.
        expect(await store.declareLost(DEV, STREAM, 1n)).toEqual({ streamId: STREAM, ackedThrough: 0n, nextSeq: 1n, gapRecords: 0 });
        expect(await store.gaps(STREAM)).toEqual([]);
        const err = await store.ingestBatch(DEV, batch(0, 3)).then(() => undefined, (e: unknown) => e);
        expect(err).toMatchObject({ code: 'malformed', message: expect.stringMatching(/first_seq 0: streams number records from 1/) });
        expect(await store.cursor(STREAM)).toMatchObject({ ackedThrough: 0n, nextSeq: 1n });
        expect(await store.ingestBatch(DEV, batch(1, 1))).toMatchObject({ stored: 1, gapRecords: 0, ackedThrough: 1n });
      });

      it('stores only the new tail of an overlapping batch', async () => {
        await store.ingestBatch(DEV, batch(1, 10));
        const r = await store.ingestBatch(DEV, batch(6, 10));
        expect(r).toMatchObject({ stored: 5, duplicate: 5, ackedThrough: 15n });
        const events = await store.events({ streamId: STREAM, limit: 1000 });
        expect(events.map((e) => e.seq)).toEqual(range(1, 16));
        // Each record is the one of its seq: the tail was sliced at the right byte offset.
        expect(events.map((e) => e.fields['pid'])).toEqual(range(1001, 1016));
      });

      it('records a gap for an out-of-order batch, fills it when the missing range arrives, acks only contiguous data', async () => {
        await store.ingestBatch(DEV, batch(1, 9));
        const ahead = await store.ingestBatch(DEV, batch(20, 10));
        expect(ahead).toMatchObject({ stored: 10, gapRecords: 10, ackedThrough: 9n });
        expect(await store.gaps(STREAM)).toMatchObject([{ fromSeq: 10, toSeq: 20, state: 'open' }]);

        const part = await store.ingestBatch(DEV, batch(12, 3));
        expect(part).toMatchObject({ stored: 3, filled: 3, duplicate: 0, ackedThrough: 9n });
        expect(await store.gaps(STREAM)).toMatchObject([{ fromSeq: 10, toSeq: 12 }, { fromSeq: 15, toSeq: 20 }]);

        const overlap = await store.ingestBatch(DEV, batch(8, 5)); // 8, 9 and 12 are stored already
        expect(overlap).toMatchObject({ stored: 2, filled: 2, duplicate: 3, ackedThrough: 14n });

        const rest = await store.ingestBatch(DEV, batch(15, 5));
        expect(rest).toMatchObject({ stored: 5, filled: 5, ackedThrough: 29n });
        expect(await store.gaps(STREAM)).toEqual([]);
        const events = await store.events({ streamId: STREAM, limit: 1000 });
        expect(events.map((e) => e.seq)).toEqual(range(1, 30));
        expect(events.map((e) => e.fields['pid'])).toEqual(range(1001, 1030));
        expect((await store.pipelineStats())[0]).toMatchObject({ storedRecords: 29, gapRecords: 0, duplicateRecords: 3 });
      });

      it('treats the start of a stream seen first at seq 100 as an open gap', async () => {
        const r = await store.ingestBatch(DEV, batch(100, 5));
        expect(r).toMatchObject({ stored: 5, gapRecords: 99, ackedThrough: 0n });
        expect(await store.cursor(STREAM)).toMatchObject({ ackedThrough: 0n, nextSeq: 105n, gapRecords: 99 });
        expect(await store.gaps(STREAM)).toMatchObject([{ fromSeq: 1, toSeq: 100, state: 'open' }]);
      });

      it('acks past a gap once the agent declares it lost, and still stores it if it turns up', async () => {
        await store.ingestBatch(DEV, batch(1, 9));
        await store.ingestBatch(DEV, batch(20, 10));
        const c = await store.declareLost(DEV, STREAM, 15n);
        expect(c).toMatchObject({ ackedThrough: 14n, nextSeq: 30n, gapRecords: 10 });
        expect(await store.gaps(STREAM)).toMatchObject([
          { fromSeq: 10, toSeq: 15, state: 'lost' }, { fromSeq: 15, toSeq: 20, state: 'open' }]);
        const late = await store.ingestBatch(DEV, batch(10, 10));
        expect(late).toMatchObject({ stored: 10, filled: 10, ackedThrough: 29n });
        expect((await store.streams())[0]).toMatchObject({ openGapRecords: 0, lostGapRecords: 0 });
      });

      it('moves next_seq when the agent holds nothing before a seq the store never saw', async () => {
        await store.ingestBatch(DEV, batch(1, 9));
        const c = await store.declareLost(DEV, STREAM, 40n);
        expect(c).toMatchObject({ ackedThrough: 39n, nextSeq: 40n, gapRecords: 30 });
        const r = await store.ingestBatch(DEV, batch(40, 5));
        expect(r).toMatchObject({ stored: 5, gapRecords: 0, ackedThrough: 44n });
        expect((await store.pipelineStats())[0]).toMatchObject({ gapRecords: 30, openGapRecords: 0 });
      });

      it('group-commits many batches, a rejected one not stopping the rest', async () => {
        const bad = { ...batch(10, 10), records: Buffer.alloc(7) };
        const out = await store.ingestMany([
          { deviceId: DEV, batch: batch(1, 9) }, { deviceId: DEV, batch: bad }, { deviceId: DEV, batch: batch(10, 10) },
          { deviceId: DEV, batch: batch(10, 10) }]);
        expect(out.map((o) => o.ok)).toEqual([true, false, true, true]);
        expect(out[3]).toMatchObject({ ok: true, stored: 0, duplicate: 10 });
        expect(await seqs()).toEqual(range(1, 20));
        expect((await store.pipelineStats())[0]).toMatchObject({ rejectedBatches: 1, rejectedRecords: 10 });
      });
    });

    describe('decoding', () => {
      it('returns records decoded with the stream manifest, wall-clock time exact beyond 2^53', async () => {
        const ts = 9_007_199_254_740_993n; // 2^53 + 1: a board up for 104 days
        const offset = 1_699_999_000_000_000_000n;
        const v4 = encodeRecord(manifest, { ts_ns: ts, skaddr: 0xffff888012345678n, pid: 4242, comm: 'nginx', family: 2,
          saddr: '10.1.2.3', lport: 443, daddr: '192.168.7.9', rport: 51000, oldstate: 3, newstate: 1, delta_us: 1234 });
        const v6 = encodeRecord(manifest, { ts_ns: ts + 5n, skaddr: 1n, pid: 7, comm: 'sshd', family: 10,
          saddr: '2001:db8:0:0:0:0:0:1', lport: 22, daddr: '0:0:0:0:0:0:0:1', rport: 6000, oldstate: 1, newstate: 4, delta_us: 0 });
        await store.ingestBatch(DEV, makeBatch(schemaId, STREAM, [v4, v6], 1, { clockOffsetNs: offset }));
        const [a, b] = await store.events({ streamId: STREAM });
        expect(a).toMatchObject({ streamId: STREAM, deviceId: DEV, probe: 'tcpstates', seq: 1, timeUnixNs: ts + offset });
        expect(a!.fields).toMatchObject({ skaddr: '0xffff888012345678', pid: 4242, comm: 'nginx', family: 'IPv4',
          saddr: '10.1.2.3', lport: 443, daddr: '192.168.7.9', rport: 51000, oldstate: 'SYN_RECV', newstate: 'ESTABLISHED',
          delta_us: 1234 });
        expect(b).toMatchObject({ seq: 2, timeUnixNs: ts + 5n + offset });
        expect(b!.fields).toMatchObject({ family: 'IPv6', saddr: '2001:db8::1', daddr: '::1', comm: 'sshd', newstate: 'FIN_WAIT1' });
      });

      it('filters by device, probe, stream and time, and orders by time across streams', async () => {
        const other = `${DEV}/tcpstates/r2`;
        await store.ingestBatch(DEV, batch(1, 5)); // ts base + seq µs
        // r2's records fall between r1's: base + 1 µs, shifted by 500 ns.
        await store.ingestBatch(DEV, makeBatch(schemaId, other,
          Array.from({ length: 5 }, (_, i) => encodeRecord(manifest, { ts_ns: 5_000_001_500n + BigInt(i) * 1000n, pid: 2000 + i })), 1));
        const all = await store.events();
        expect(all.map((e) => e.fields['pid'])).toEqual([1001, 2000, 1002, 2001, 1003, 2002, 1004, 2003, 1005, 2004]);
        const t2 = all[4]!.timeUnixNs;
        const since = await store.events({ sinceUnixNs: t2, limit: 3 });
        expect(since.map((e) => e.fields['pid'])).toEqual([1003, 2002, 1004]);
        expect((await store.events({ streamId: other })).map((e) => e.seq)).toEqual(range(1, 6));
        expect(await store.events({ probe: 'tcplife' })).toEqual([]);
        expect(await store.events({ deviceId: 'd-other' })).toEqual([]);
        expect((await store.events({ deviceId: DEV, probe: 'tcpstates', limit: 4 })).length).toBe(4);
      });
    });

    describe('following in commit order (eventsAfter)', () => {
      const R2 = `${DEV}/tcpstates/r2`;
      const keys = (evs: { streamId: string; seq: number }[]) => evs.map((e) => `${e.streamId === STREAM ? 'r1' : 'r2'}:${e.seq}`);

      it('answers each batch committed after the cursor once, in commit order, a late gap fill included', async () => {
        await store.ingestBatch(DEV, batch(1, 5));
        const head = await store.eventsHead();
        expect(await store.eventsAfter(head)).toEqual({ events: [], cursor: expect.any(String), more: false });
        await store.ingestBatch(DEV, batch(10, 3)); // 6..9 missing
        await store.ingestBatch(DEV, batch(1, 2, R2));
        await store.ingestBatch(DEV, batch(4, 8)); // 4, 5 and 10..11 stored already: the fill 6..9 is new
        const r = await store.eventsAfter(head);
        expect(keys(r.events)).toEqual(['r1:10', 'r1:11', 'r1:12', 'r2:1', 'r2:2', 'r1:6', 'r1:7', 'r1:8', 'r1:9']);
        expect(r.more).toBe(false);
        // The same records, times and fields as the read by time.
        const byTime = await store.events({ limit: 100 });
        const bySeq = (evs: typeof byTime) => [...evs].sort((a, b) => a.streamId.localeCompare(b.streamId) || a.seq - b.seq);
        expect(bySeq(r.events)).toEqual(bySeq(byTime.filter((e) => e.streamId === R2 || e.seq >= 6)));
        await store.ingestBatch(DEV, batch(1, 12)); // a replay: nothing stored, nothing new
        expect((await store.eventsAfter(r.cursor)).events).toEqual([]);
        await store.ingestBatch(DEV, batch(13, 1));
        const next = await store.eventsAfter(r.cursor);
        expect(keys(next.events)).toEqual(['r1:13']);
        expect((await store.eventsAfter(next.cursor)).events).toEqual([]);
      });

      it('filters by device and probe, and cuts at the limit between whole batches', async () => {
        const start = await store.eventsHead();
        for (const first of [1, 5, 9]) await store.ingestBatch(DEV, batch(first, 4));
        await store.ingestBatch(DEV, batch(1, 4, R2));
        expect(await store.eventsAfter(start, { probe: 'tcplife' })).toMatchObject({ events: [], more: false });
        expect(await store.eventsAfter(start, { deviceId: 'd-other' })).toMatchObject({ events: [], more: false });
        // A cursor that skipped other probes' batches has moved past them all the same.
        const skipped = await store.eventsAfter(start, { probe: 'tcplife' });
        expect((await store.eventsAfter(skipped.cursor)).events).toEqual([]);

        const first = await store.eventsAfter(start, { deviceId: DEV, probe: 'tcpstates', limit: 5 });
        expect(keys(first.events)).toEqual(['r1:1', 'r1:2', 'r1:3', 'r1:4', 'r1:5', 'r1:6', 'r1:7', 'r1:8']);
        expect(first.more).toBe(true);
        await store.ingestBatch(DEV, batch(13, 2)); // committed while paging: comes after the rest
        const rest = await store.eventsAfter(first.cursor, { limit: 5 });
        expect(keys(rest.events)).toEqual(['r1:9', 'r1:10', 'r1:11', 'r1:12', 'r2:1', 'r2:2', 'r2:3', 'r2:4']);
        let all = [...rest.events];
        for (let c = rest; c.more;) { c = await store.eventsAfter(c.cursor, { limit: 5 }); all = [...all, ...c.events]; }
        expect(keys(all).slice(8)).toEqual(['r1:13', 'r1:14']);
      });

      it('refuses a cursor it did not make, and a bad limit', async () => {
        await expect(store.eventsAfter('not-a-cursor')).rejects.toThrow(RangeError);
        await expect(store.eventsAfter(await store.eventsHead(), { limit: 0 })).rejects.toThrow(/limit must be an integer/);
      });
    });

    describe('rejected input: counted, nothing stored', () => {
      const cases: [string, () => ReturnType<typeof batch>, string, RegExp][] = [
        ['records length != count x record_size', () => ({ ...batch(1, 3), records: Buffer.alloc(88 * 3 - 1) }), 'malformed', /263 bytes, count 3 x record_size 88/],
        ['unknown schema', () => ({ ...batch(1, 3), schemaId: 'tcpstates@9.9.9:0000000000000000' }), 'unknown_schema', /no manifest for schema "tcpstates@9\.9\.9/],
        ['record size differs from the manifest', () => seqBatch(schemaId, manifest, STREAM, 1, 2, { recordSize: 80, records: Buffer.alloc(160) }), 'schema_mismatch', /record_size 80 but manifest .* says 88/],
        ['stream of another device', () => batch(1, 3, 'd-someoneelse/tcpstates/r1'), 'wrong_device', /names device d-someoneelse/],
        ['stream id without three parts', () => batch(1, 3, 'tcpstates-r1'), 'malformed', /stream id must be/],
        ['probe of the stream differs from the manifest', () => batch(1, 3, `${DEV}/tcplife/r1`), 'schema_mismatch', /is probe tcpstates, the stream is tcplife/],
      ];
      for (const [what, make, code, message] of cases) {
        it(`rejects ${what}`, async () => {
          const b = make();
          const err = await store.ingestBatch(DEV, b).then(() => undefined, (e: unknown) => e);
          expect(err).toBeInstanceOf(BatchRejectedError);
          expect(err).toMatchObject({ code, streamId: b.streamId });
          expect((err as Error).message).toMatch(message);
          expect(await store.events()).toEqual([]);
          expect(await store.streams()).toEqual([]);
          expect(await store.rejections()).toMatchObject([{ deviceId: DEV, streamId: b.streamId, code, batches: 1, records: b.count }]);
        });
      }

      it('rejects a batch whose schema differs from the one its stream started with, leaving the cursor alone', async () => {
        const m2 = { ...manifest, version: '1.0.1' };
        await store.putManifest('tcpstates@1.0.1:00000000000000aa', m2);
        await store.ingestBatch(DEV, batch(1, 4));
        const err = await store.ingestBatch(DEV, seqBatch('tcpstates@1.0.1:00000000000000aa', manifest, STREAM, 5, 4))
          .then(() => undefined, (e: unknown) => e);
        expect(err).toMatchObject({ code: 'schema_mismatch' });
        expect(await store.cursor(STREAM)).toMatchObject({ ackedThrough: 4n, nextSeq: 5n });
        expect((await store.pipelineStats())[0]).toMatchObject({ storedRecords: 4, rejectedBatches: 1 });
      });

      it('refuses a manifest that does not fit its schema id or changes under the same id', async () => {
        await expect(store.putManifest('tcplife@1.0.0:0123456789abcdef', manifest)).rejects.toThrow(/does not match manifest tcpstates/);
        await expect(store.putManifest(schemaId, { ...manifest, kind: 'interval' })).rejects.toBeInstanceOf(StoreConflictError);
        expect(await store.manifest(schemaId)).toEqual(manifest);
      });
    });

    describe('pipeline stats', () => {
      it('puts every stage\'s loss next to the store\'s own counters, keeping the newest sample', async () => {
        const stats = (t: bigint, ringbuf: bigint): PipelineStats => ({ streamId: STREAM, records: 100n, kernelRingbufFull: ringbuf,
          kernelMapFull: 2n, kernelSampledOut: 3n, kernelReadFailed: 4n, loaderLost: 5n, agentQueueDropped: 6n, spoolEvicted: 7n,
          spoolCorrupt: 8n, timeUnixNs: t });
        await store.recordPipelineStats(DEV, stats(2000n, 11n));
        await store.recordPipelineStats(DEV, stats(1000n, 1n)); // older sample arriving late: ignored as latest
        await store.ingestBatch(DEV, batch(1, 5));
        await store.ingestBatch(DEV, batch(1, 5));
        await store.ingestBatch(DEV, batch(9, 2)); // 6, 7, 8 missing
        expect(await store.pipelineStats()).toEqual([{
          streamId: STREAM, deviceId: DEV, sampleUnixNs: 2000n, records: 100n, kernelRingbufFull: 11n, kernelMapFull: 2n,
          kernelSampledOut: 3n, kernelReadFailed: 4n, loaderLost: 5n, agentQueueDropped: 6n, spoolEvicted: 7n, spoolCorrupt: 8n,
          storedRecords: 7, duplicateRecords: 5, gapRecords: 3, openGapRecords: 3, rejectedBatches: 0, rejectedRecords: 0,
        }]);
        await expect(store.recordPipelineStats('d-other', stats(3000n, 0n))).rejects.toBeInstanceOf(StoreConflictError);
      });
    });

    describe('registry', () => {
      it('enrolls with a one-time token and authenticates with the credential', async () => {
        const { token } = await store.createEnrollmentToken({ ttlMs: 60_000, labels: { board: 'dayu200' } });
        const e = await store.enroll({ token, deviceName: 'bench-1', transport: 'grpc' });
        expect(e.labels).toEqual({ board: 'dayu200' });
        expect(e.credential).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(await store.authenticate(e.deviceId, e.credential)).toMatchObject({ id: e.deviceId, name: 'bench-1', labels: { board: 'dayu200' } });
        expect(await store.authenticate(e.deviceId, e.credential.slice(1) + 'x')).toBeUndefined();
        expect(await store.deviceByCredential(e.credential)).toMatchObject({ id: e.deviceId, name: 'bench-1' });
        expect(await store.deviceByCredential(e.credential.slice(1) + 'x')).toBeUndefined();
        await expect(store.enroll({ token, deviceName: 'bench-2' })).rejects.toThrow(/already used/);
      });

      it('refuses expired tokens and taken names, and re-enrolls a device with a token made for its name', async () => {
        const { token: t1 } = await store.createEnrollmentToken({ ttlMs: 1000 });
        nowMs += 1001;
        await expect(store.enroll({ token: t1, deviceName: 'b' })).rejects.toThrow(/expired/);
        const { token: t2 } = await store.createEnrollmentToken({ ttlMs: 1000 });
        const first = await store.enroll({ token: t2, deviceName: 'b' });
        const { token: t3 } = await store.createEnrollmentToken({ ttlMs: 1000 });
        await expect(store.enroll({ token: t3, deviceName: 'b' })).rejects.toBeInstanceOf(EnrollmentError);
        const { token: t4 } = await store.createEnrollmentToken({ ttlMs: 1000, deviceName: 'b' });
        const again = await store.enroll({ token: t4, deviceName: 'b' });
        expect(again.deviceId).toBe(first.deviceId);
        expect(await store.authenticate(first.deviceId, first.credential)).toBeUndefined();
        expect(await store.authenticate(first.deviceId, again.credential)).toBeDefined();
        expect(await store.deviceByCredential(first.credential)).toBeUndefined(); // re-enrolled: the old credential is void
        expect(await store.deviceByCredential(again.credential)).toMatchObject({ id: first.deviceId });
        await expect(store.enroll({ token: 'nope', deviceName: 'c' })).rejects.toThrow(/unknown enrollment token/);
      });

      it('keeps facts, heartbeats, bundles, deployments and probe runs', async () => {
        const { token } = await store.createEnrollmentToken({ ttlMs: 1000 });
        const { deviceId } = await store.enroll({ token, deviceName: 'b1' });
        await store.markSeen(deviceId, { online: true, transport: 'mqtt', facts: { board: 'dayu200', arch: 'arm64',
          kernelRelease: '5.10.0', libc: 'musl', caps: undefined, memoryBytes: 2n ** 31n, cpus: 4, hostname: 'b1' } });
        nowMs += 5;
        await store.recordHeartbeat(deviceId, { timeUnixNs: 77n, spoolBytes: 9n, metrics: { cpuBusy: 0.5, load1: 1, load5: 2,
          load15: 3, memAvailableBytes: 10n, memTotalBytes: 20n, agentCpuNs: 30n, agentRssBytes: 40n, netRxBytes: 50n, netTxBytes: 60n } });
        expect((await store.devices())[0]).toMatchObject({ online: true, transport: 'mqtt', lastSeenMs: nowMs,
          facts: { arch: 'arm64', memoryBytes: 2 ** 31 } });
        expect(await store.heartbeats(deviceId)).toMatchObject([{ timeUnixNs: 77n, cpuBusy: 0.5, load15: 3, agentRssBytes: 40n, spoolBytes: 9n }]);

        const bundleId = await store.putBundle({ probe: 'tcpstates', version: '1.0.0', arch: 'arm64', sha256: 'ab', signature: Buffer.from([1]) });
        expect(await store.putBundle({ probe: 'tcpstates', version: '1.0.0', arch: 'arm64', sha256: 'ab', signature: Buffer.from([1]) })).toBe(bundleId);
        await expect(store.putBundle({ probe: 'tcpstates', version: '1.0.0', arch: 'arm64', sha256: 'cd', signature: Buffer.from([1]) }))
          .rejects.toThrow(/bump the version/);
        await store.setDeployment(deviceId, bundleId, 'pending');
        await store.setDeployment(deviceId, bundleId, 'failed', 'signature does not verify');
        expect(await store.deployments(deviceId)).toMatchObject([{ probe: 'tcpstates', arch: 'arm64', state: 'failed', reason: 'signature does not verify' }]);

        await store.startRun({ runId: 'r1', deviceId, probe: 'tcpstates', args: ['--rport', '443'] });
        await store.recordProbeStatus(deviceId, { runId: 'r1', probe: 'tcpstates', state: ProbeStatus_State.STATE_RUNNING, reason: '',
          exitCode: 0, restarts: 0, loaderHelloJson: '{"btf_source":"kernel"}', streamId: `${deviceId}/tcpstates/r1` });
        await store.recordProbeStatus(deviceId, { runId: 'r1', probe: 'tcpstates', state: ProbeStatus_State.STATE_CRASHED,
          reason: 'ring buffer error', exitCode: 1, restarts: 2, loaderHelloJson: '', streamId: '' });
        expect(await store.runs({ deviceId })).toMatchObject([{ runId: 'r1', args: ['--rport', '443'], state: 'crashed', exitCode: 1,
          restarts: 2, reason: 'ring buffer error', loaderHello: { btf_source: 'kernel' }, streamId: `${deviceId}/tcpstates/r1` }]);
        await expect(store.recordProbeStatus('d-other', { runId: 'r1', probe: 'tcpstates', state: 1, reason: '', exitCode: 0,
          restarts: 0, loaderHelloJson: '', streamId: '' })).rejects.toThrow(/another device/);
      });
    });
  });
}
