import { decodeRecord } from '@bpfleet/proto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../store/sqlite-store.js';
import type { StoredEvent } from '../store/store.js';
import { encodeRecord, loadTcpstates, makeBatch, seqBatch, type RecordValues } from '../store/tcpstates-fixture.js';
import { csvField, CsvEncoder } from './csv.js';
import { eventToJson, formatRfc3339Nano } from './event-json.js';
import { iterateEvents } from './event-pages.js';
import { escapeKey, escapeMeasurement, InfluxEncoder, quoteString } from './influx.js';
import { ExportError, prepareExport } from './exporter.js';

const { schemaId, manifest } = loadTcpstates();
const DEV = 'd-00000000000000e1';
const STREAM = `${DEV}/tcpstates/r1`;
const OFFSET = 1_700_000_000_000_000_000n; // makeBatch's clock offset: 2023-11-14T22:13:20Z

const base: RecordValues = {
  ts_ns: 5_000_000_000n, skaddr: 0xffff_8880_1234_5678n, pid: 4242, comm: 'curl', family: 2, saddr: '10.0.0.2',
  lport: 40001, daddr: '93.184.216.34', rport: 443, oldstate: 2, newstate: 1, delta_us: 1500,
};

function event(values: Partial<RecordValues>, seq = 0): StoredEvent {
  const v = { ...base, ...values } as RecordValues;
  return {
    streamId: STREAM, deviceId: DEV, probe: 'tcpstates', seq, timeUnixNs: BigInt(v.ts_ns!) + OFFSET,
    fields: decodeRecord(manifest, encodeRecord(manifest, v)),
  };
}

async function collect(gen: AsyncIterable<string>): Promise<string> {
  let s = '';
  for await (const c of gen) s += c;
  return s;
}

describe('time', () => {
  it('formats ns as RFC 3339 with nine fraction digits', () => {
    expect(formatRfc3339Nano(1_700_000_005_000_001_500n)).toBe('2023-11-14T22:13:25.000001500Z');
    expect(formatRfc3339Nano(0n)).toBe('1970-01-01T00:00:00.000000000Z');
  });
});

describe('csv', () => {
  it('quotes per RFC 4180', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a b')).toBe('a b');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('k=v')).toBe('k=v');
    expect(csvField(undefined)).toBe('');
  });

  it('writes the manifest columns and a tcpstates record exactly', () => {
    const csv = new CsvEncoder([manifest]);
    expect(csv.header()).toBe('device,probe,stream,seq,time,ts_ns,skaddr,pid,comm,family,saddr,lport,daddr,rport,oldstate,newstate,delta_us\r\n');
    expect(csv.line(event({ comm: 'my app,v="2"' }, 7))).toBe(
      `${DEV},tcpstates,${STREAM},7,2023-11-14T22:13:25.000000000Z,5000000000,0xffff888012345678,4242,"my app,v=""2""",` +
      'IPv4,10.0.0.2,40001,93.184.216.34,443,SYN_SENT,ESTABLISHED,1500\r\n');
  });
});

describe('influx line protocol', () => {
  it('escapes per the spec', () => {
    expect(escapeMeasurement('tcp states,x=1')).toBe('tcp\\ states\\,x=1');
    expect(escapeKey('a b,c=d')).toBe('a\\ b\\,c\\=d');
    expect(escapeKey('ends\\')).toBe('ends\\\\');
    expect(escapeKey('line\nbreak')).toBe('line\uFFFDbreak');
    expect(quoteString('say "hi" \\o/')).toBe('"say \\"hi\\" \\\\o/"');
  });

  it('writes a tcpstates record: tags device, comm, family, states; numeric fields; addresses as strings; wall-clock ns', () => {
    const enc = new InfluxEncoder();
    expect(enc.line(event({}, 3), manifest)).toBe(
      `tcpstates,comm=curl,device=${DEV},family=IPv4,newstate=ESTABLISHED,oldstate=SYN_SENT ` +
      'pid=4242i,lport=40001i,rport=443i,delta_us=1500i,skaddr="0xffff888012345678",saddr="10.0.0.2",daddr="93.184.216.34",seq=3i ' +
      '1700000005000000000\n');
  });

  it('escapes spaces, commas, equals signs and quotes in a comm tag', () => {
    const enc = new InfluxEncoder();
    const line = enc.line(event({ comm: 'a b,c=d"e' }), manifest);
    expect(line.startsWith(`tcpstates,comm=a\\ b\\,c\\=d"e,device=${DEV},family=IPv4,`)).toBe(true);
  });

  it('writes IPv6 addresses and omits an empty comm tag', () => {
    const enc = new InfluxEncoder();
    expect(enc.line(event({ comm: '', family: 10, saddr: '0:0:0:0:0:0:0:1', daddr: 'fe80:0:0:0:0:0:0:2' }), manifest)).toBe(
      `tcpstates,device=${DEV},family=IPv6,newstate=ESTABLISHED,oldstate=SYN_SENT ` +
      'pid=4242i,lport=40001i,rport=443i,delta_us=1500i,skaddr="0xffff888012345678",saddr="::1",daddr="fe80::2",seq=0i ' +
      '1700000005000000000\n');
  });

  it('nudges records of one series at the same ns apart so none overwrites another', () => {
    const enc = new InfluxEncoder();
    const ts = (l: string) => l.trim().split(' ').pop();
    expect(ts(enc.line(event({ pid: 1 }, 0), manifest))).toBe('1700000005000000000');
    expect(ts(enc.line(event({ pid: 2 }, 1), manifest))).toBe('1700000005000000001');
    expect(ts(enc.line(event({ pid: 3, comm: 'other' }, 2), manifest))).toBe('1700000005000000000'); // another series
  });
});

describe('exports from a SqliteStore', () => {
  let store: SqliteStore;
  beforeEach(async () => {
    store = SqliteStore.open(':memory:');
    await store.putManifest(schemaId, manifest);
  });
  afterEach(async () => { await store.close(); });

  it('pages through every record once, also across a run of equal timestamps', async () => {
    await store.ingestBatch(DEV, seqBatch(schemaId, manifest, STREAM, 1, 25));
    // 12 records at one instant on another stream
    const same = Array.from({ length: 12 }, (_, i) => encodeRecord(manifest, { ...base, ts_ns: 5_000_010_000n, pid: 7000 + i }));
    await store.ingestBatch(DEV, makeBatch(schemaId, `${DEV}/tcpstates/r2`, same, 1));
    const all = await store.events({ limit: 1000 });
    const paged: StoredEvent[] = [];
    for await (const ev of iterateEvents(store, {}, { pageSize: 4 })) paged.push(ev);
    expect(paged.map((e) => `${e.streamId}#${e.seq}`).sort()).toEqual(all.map((e) => `${e.streamId}#${e.seq}`).sort());
    expect(paged).toHaveLength(37);
    const max: StoredEvent[] = [];
    for await (const ev of iterateEvents(store, {}, { pageSize: 4, max: 6 })) max.push(ev);
    expect(max.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('streams jsonl, csv and influx matching the store', async () => {
    await store.ingestBatch(DEV, seqBatch(schemaId, manifest, STREAM, 1, 30));
    const events = await store.events({ limit: 1000 });

    const jsonl = await collect((await prepareExport(store, 'jsonl', {}, { pageSize: 7, chunkBytes: 100 })).chunks());
    expect(jsonl.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual(events.map((e) => JSON.parse(JSON.stringify(eventToJson(e))) as unknown));

    const csvText = await collect((await prepareExport(store, 'csv', { probe: 'tcpstates' }, { pageSize: 7 })).chunks());
    const csvLines = csvText.split('\r\n');
    expect(csvLines[0]).toBe(new CsvEncoder([manifest]).header().trimEnd());
    expect(csvLines.slice(1, -1)).toEqual(events.map((e) => new CsvEncoder([manifest]).line(e).trimEnd()));

    const influx = await collect((await prepareExport(store, 'influx', { sinceUnixNs: events[20]!.timeUnixNs })).chunks());
    expect(influx.trimEnd().split('\n')).toHaveLength(10);
    expect(influx).toContain('seq=30i');
  });

  it('refuses a csv over several probes and an unknown format', async () => {
    await store.ingestBatch(DEV, seqBatch(schemaId, manifest, STREAM, 1, 1));
    const other = { ...manifest, probe: 'tcpother' };
    const otherId = schemaId.replace('tcpstates@', 'tcpother@');
    await store.putManifest(otherId, other);
    await store.ingestBatch(DEV, seqBatch(otherId, other, `${DEV}/tcpother/r1`, 1, 1));
    await expect(prepareExport(store, 'csv')).rejects.toThrow(/csv export needs one probe.*tcpother, tcpstates/);
    await expect(prepareExport(store, 'xml')).rejects.toBeInstanceOf(ExportError);
  });
});
