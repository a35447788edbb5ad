import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../store/sqlite-store.js';
import { loadTcpstates, seqBatch } from '../store/tcpstates-fixture.js';
import { aggregateStacks, StackError, storedStackProbes } from './aggregate.js';
import { findAnomalies } from './find-anomalies.js';
import { formatFolded, parseFolded } from './folded.js';
import { CLOCK_OFFSET_NS, loadBuiltManifest, stackBatch, stackManifest, type StackSample } from './stack-fixture.js';

const DEV1 = 'd-00000000000000a1', DEV2 = 'd-00000000000000a2';
const profile = stackManifest('profile', 'samples');
const offcpu = stackManifest('offcputime', 'ns');
const tcp = loadTcpstates();
const S = 1_000_000_000n;
/** Unix ns of second `s` of the synthetic run. */
const at = (s: number) => CLOCK_OFFSET_NS + BigInt(s) * S;

let store: SqliteStore;
beforeEach(async () => {
  store = SqliteStore.open(':memory:');
  for (const m of [profile, offcpu, tcp]) await store.putManifest(m.schemaId, m.manifest);
});
afterEach(async () => { await store.close(); });

async function put(dev: string, probe: typeof profile, samples: StackSample[], run = 'r1', firstSeq = 1): Promise<void> {
  await store.ingestBatch(dev, stackBatch(probe.schemaId, probe.manifest, `${dev}/${probe.manifest.probe}/${run}`, firstSeq, samples));
}

const ts = (s: number) => BigInt(s) * S; // ts_ns of second s (the batch adds the clock offset)

describe('aggregating stored stack records', () => {
  beforeEach(async () => {
    await put(DEV1, profile, [
      { tsNs: ts(10), stack: 'main;run;hash', value: 5, comm: 'busy' },
      { tsNs: ts(11), stack: 'main;run;hash', value: 7, comm: 'busy' },
      { tsNs: ts(12), stack: 'main;run;parse', value: 3, comm: 'busy' },
      { tsNs: ts(13), stack: 'main;run;hash', value: 2, comm: 'other;x' },
      { tsNs: ts(14), stack: '', value: 1, comm: '' },
      { tsNs: ts(20), stack: 'start_kernel_[k];do_idle_[k]', value: 10, comm: 'swapper/0' },
    ]);
    await put(DEV2, profile, [{ tsNs: ts(11), stack: 'main;run;hash', value: 100, comm: 'busy' }]);
    await store.ingestBatch(DEV1, seqBatch(tcp.schemaId, tcp.manifest, `${DEV1}/tcpstates/r1`, 1, 3));
  });

  it('sums values per stack for one device, across pages', async () => {
    const a = await aggregateStacks(store, { probe: 'profile', deviceIds: [DEV1] }, { pageSize: 2 });
    expect(formatFolded(a.folded)).toBe('[unknown] 1\nmain;run;hash 14\nmain;run;parse 3\nstart_kernel_[k];do_idle_[k] 10\n');
    expect([a.total, a.records, a.unit, a.deviceIds]).toEqual([28, 6, 'samples', [DEV1]]);
    expect(parseFolded(formatFolded(a.folded))).toEqual(a.folded);
  });

  it('keeps to the window: since inclusive, until exclusive', async () => {
    const a = await aggregateStacks(store, { probe: 'profile', deviceIds: [DEV1], sinceUnixNs: at(11), untilUnixNs: at(14) });
    expect([...a.folded]).toEqual([['main;run;hash', 9], ['main;run;parse', 3]]);
  });

  it('roots stacks by process on request, and sums devices of a selector', async () => {
    const a = await aggregateStacks(store, { probe: 'profile', deviceIds: [DEV1], perProcess: true, untilUnixNs: at(15) });
    expect(formatFolded(a.folded)).toBe('[unknown];[unknown] 1\nbusy;main;run;hash 12\nbusy;main;run;parse 3\nother:x;main;run;hash 2\n');
    const both = await aggregateStacks(store, { probe: 'profile', deviceIds: [DEV1, DEV2] });
    expect(both.folded.get('main;run;hash')).toBe(114);
    expect(both.deviceIds).toEqual([DEV1, DEV2]);
    const all = await aggregateStacks(store, { probe: 'profile' });
    expect(all.total).toBe(128);
  });

  it('says when a probe has no stack field, and which probes do', async () => {
    await put(DEV1, offcpu, [{ tsNs: ts(10), stack: 'read;schedule_[k]', value: 2_000_000 }]);
    const err = await aggregateStacks(store, { probe: 'tcpstates' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackError);
    expect((err as StackError).status).toBe(400);
    expect((err as Error).message).toMatch(/^probe tcpstates has no "stack" field \(its fields: ts_ns, skaddr, .*\): flame graphs and stack anomalies need a stack probe/);
    const none = await aggregateStacks(store, { probe: 'memleak', deviceIds: [DEV1] }).catch((e: unknown) => e);
    expect([(none as StackError).status, (none as Error).message]).toEqual([404, 'no stored memleak records on this device: stack probes with stored records: offcputime, profile']);
    expect(await storedStackProbes(store, [DEV2])).toEqual(['profile']);
    expect((await aggregateStacks(store, { probe: 'offcputime' })).unit).toBe('ns');
  });
});

describe('records of the built stack probes', () => {
  it('reads profile records (interval kind, 2048-byte UTF-8 stack) and skips loadmon state records', async () => {
    const real = loadBuiltManifest('profile');
    expect(real.manifest.record.fields.find((f) => f.name === 'stack')).toMatchObject({ type: 'str' });
    const loadmon = loadBuiltManifest('loadmon');
    for (const m of [real, loadmon]) await store.putManifest(m.schemaId, m.manifest);
    const deep = ['main', ...Array.from({ length: 60 }, (_, i) => `level_${i}`), '…'].join(';');
    await put(DEV1, real, [
      { tsNs: ts(1), stack: 'main;größe_berechnen;计算', value: 3, comm: 'app' },
      { tsNs: ts(2), stack: deep, value: 2, comm: 'app' },
      { tsNs: ts(3), stack: 'main;[missing user stack];do_idle_[k]', value: 1, comm: 'app' },
    ]);
    await put(DEV1, loadmon, [
      { tsNs: ts(1), stack: '', value: 0, extra: { kind: 1, load1_milli: 3000, threshold_milli: 2000 } },
      { tsNs: ts(2), stack: 'worker;schedule_[k]', value: 9, extra: { kind: 0, load1_milli: 3100, threshold_milli: 2000 } },
      { tsNs: ts(3), stack: '', value: 0, extra: { kind: 2, load1_milli: 1000, threshold_milli: 2000 } },
    ]);
    const a = await aggregateStacks(store, { probe: 'profile', deviceIds: [DEV1] });
    expect([...a.folded]).toEqual([['main;größe_berechnen;计算', 3], [deep, 2], ['main;[missing user stack];do_idle_[k]', 1]]);
    expect(a.unit).toBe('samples');
    const l = await aggregateStacks(store, { probe: 'loadmon', deviceIds: [DEV1] });
    expect([[...l.folded], l.records]).toEqual([[['worker;schedule_[k]', 9]], 1]);
  });
});

describe('anomalies from stored records', () => {
  const A = 'main;run;compress';
  it('flags the window where a stack jumps, on the device where it jumps', async () => {
    // 12 one-minute windows from minute 0 (at(0) is a whole minute: 1_700_000_000 s = 28_333_333 min + 20 s)
    const t0 = 40; // seconds: at(40) = a minute boundary
    const samples = (dev: string, jumpAt: number | null): StackSample[] => {
      const out: StackSample[] = [];
      for (let w = 0; w < 12; w++) {
        const s = t0 + w * 60 + 5;
        const a = jumpAt !== null && w >= jumpAt ? 40 : 2;
        out.push({ tsNs: ts(s), stack: 'main;run;work', value: 98 - a, comm: 'app' }, { tsNs: ts(s + 1), stack: A, value: a, comm: 'app' });
      }
      return out;
    };
    await put(DEV1, profile, samples(DEV1, 8));
    await put(DEV2, profile, samples(DEV2, null));
    expect((at(t0) / S) % 60n).toBe(0n);
    const report = await findAnomalies(store, { probe: 'profile', sinceUnixNs: at(t0), untilUnixNs: at(t0 + 12 * 60), windowNs: 60n * S });
    expect(report.windows).toBe(12);
    expect(report.series.map((s) => [s.deviceId, s.windowsWithData, s.records])).toEqual([[DEV1, 12, 24], [DEV2, 12, 24]]);
    expect(report.anomalies.map((a) => [a.deviceId, a.kind, a.stack, a.windowStartUnixNs, a.share])).toEqual([
      [DEV1, 'jump', `app;${A}`, at(t0 + 8 * 60), 40 / 98]]);
    const notPerProcess = await findAnomalies(store, { probe: 'profile', sinceUnixNs: at(t0), untilUnixNs: at(t0 + 12 * 60), windowNs: 60n * S, perProcess: false });
    expect(notPerProcess.anomalies.map((a) => a.stack)).toEqual([A]);
    await expect(findAnomalies(store, { sinceUnixNs: at(t0), untilUnixNs: at(t0 + 30), windowNs: 60n * S })).rejects.toThrow(/no whole window of 60s fits/);
  });
});
