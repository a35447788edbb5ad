// Test fixture: the real tcpstates manifest from the probe build, and records laid out by hand
// from it (field offsets and types come from the manifest, not from this file).
import type { EventBatch, Manifest } from '@bpfleet/proto';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MANIFEST_PATH = fileURLToPath(new URL('../../../bpf/out/x86_64/tcpstates.manifest.json', import.meta.url));

export function loadTcpstates(): { schemaId: string; manifest: Manifest } {
  if (!existsSync(MANIFEST_PATH)) {
    throw new Error(`${MANIFEST_PATH} is missing: build the probes first (make -C bpf)`);
  }
  const text = readFileSync(MANIFEST_PATH, 'utf8');
  const manifest = JSON.parse(text) as Manifest;
  const schemaId = `${manifest.probe}@${manifest.version}:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
  return { schemaId, manifest };
}

export type RecordValues = Record<string, number | bigint | string>;

/** One record: numbers for integer fields, strings for comm and addr (dotted IPv4 or full IPv6). */
export function encodeRecord(m: Manifest, values: RecordValues): Buffer {
  const rec = Buffer.alloc(m.record.size);
  for (const f of m.record.fields) {
    const v = values[f.name];
    if (v === undefined) continue;
    switch (f.type) {
      case 'u8': rec.writeUInt8(Number(v), f.offset); break;
      case 'u16': rec.writeUInt16LE(Number(v), f.offset); break;
      case 'u32': rec.writeUInt32LE(Number(v), f.offset); break;
      case 's32': rec.writeInt32LE(Number(v), f.offset); break;
      case 'u64': rec.writeBigUInt64LE(BigInt(v), f.offset); break;
      case 's64': rec.writeBigInt64LE(BigInt(v), f.offset); break;
      case 'comm': rec.write(String(v), f.offset, f.size - 1, 'latin1'); break;
      case 'addr': {
        const s = String(v);
        if (s.includes(':')) s.split(':').forEach((g, i) => rec.writeUInt16BE(parseInt(g, 16), f.offset + 2 * i));
        else s.split('.').forEach((b, i) => rec.writeUInt8(Number(b), f.offset + i));
        break;
      }
    }
  }
  return rec;
}

/** A plain tcpstates record for seq `seq`: pid = 1000 + seq, ts = base + seq µs. */
export function seqRecord(m: Manifest, seq: number, tsBase = 5_000_000_000n): Buffer {
  return encodeRecord(m, {
    ts_ns: tsBase + BigInt(seq) * 1000n, skaddr: 0xffff_8880_0000_0000n + BigInt(seq), pid: 1000 + seq, comm: 'curl',
    family: 2, saddr: '127.0.0.1', lport: 40000 + (seq % 1000), daddr: '127.0.0.1', rport: 8080,
    oldstate: 2, newstate: 1, delta_us: seq,
  });
}

export function makeBatch(schemaId: string, streamId: string, records: Buffer[], firstSeq: number,
  over: Partial<EventBatch> = {}): EventBatch {
  return {
    streamId, firstSeq: BigInt(firstSeq), count: records.length, records: Buffer.concat(records),
    recordSize: records[0]?.length ?? 0, schemaId, clockOffsetNs: 1_700_000_000_000_000_000n, intervalIndex: [], ...over,
  };
}

/** Batch of `count` seqRecords from `firstSeq`. */
export function seqBatch(schemaId: string, m: Manifest, streamId: string, firstSeq: number, count: number,
  over: Partial<EventBatch> = {}): EventBatch {
  const recs = Array.from({ length: count }, (_, i) => seqRecord(m, firstSeq + i));
  return makeBatch(schemaId, streamId, recs, firstSeq, over);
}
