// Checks of an EventBatch against itself, its sender and its manifest, before anything is
// written. Backend-neutral: every store implementation refuses the same batches the same way.
import type { EventBatch, Manifest } from '@bpfleet/proto';
import { BatchRejectedError, StoreConflictError } from './errors.js';

/** Seqs are kept as JS numbers: 2^53 records is centuries at 200,000 records/s. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/**
 * The agent's spool numbers each stream's records from 1, so acked_through = 0 (the proto3
 * default) means "nothing stored".
 */
export const FIRST_SEQ = 1;

export interface StreamKey {
  deviceId: string;
  probe: string;
  runId: string;
}

/** "<device>/<probe>/<run>", three non-empty parts. */
export function parseStreamId(streamId: string): StreamKey | undefined {
  const parts = streamId.split('/');
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) return undefined;
  return { deviceId: parts[0]!, probe: parts[1]!, runId: parts[2]! };
}

/** A manifest with what ingest needs from it precomputed. */
export interface Schema {
  schemaId: string;
  manifest: Manifest;
  recordSize: number;
  /** Offset of the u64 ts_ns field every record carries (monotonic ns). */
  tsOffset: number;
}

/** Throws StoreConflictError if the manifest cannot serve as the schema `schemaId`. */
export function toSchema(schemaId: string, manifest: Manifest): Schema {
  const prefix = `${manifest.probe}@${manifest.version}:`;
  if (!schemaId.startsWith(prefix) || schemaId.length === prefix.length) {
    throw new StoreConflictError(
      `schema id "${schemaId}" does not match manifest ${manifest.probe} ${manifest.version}: ` +
        `expected "${prefix}<sha256 of the manifest, hex, first 16>"`,
    );
  }
  const ts = manifest.record.fields.find((f) => f.name === 'ts_ns');
  if (!ts || ts.type !== 'u64' || ts.offset + 8 > manifest.record.size) {
    throw new StoreConflictError(
      `manifest ${schemaId} has no u64 ts_ns field inside its ${manifest.record.size}-byte record: ` +
        'the store orders and filters events by it; fix the probe\'s field table',
    );
  }
  return { schemaId, manifest, recordSize: manifest.record.size, tsOffset: ts.offset };
}

export interface CheckedBatch {
  key: StreamKey;
  /** First seq, and one past the last. */
  lo: number;
  hi: number;
}

/**
 * Throws BatchRejectedError unless the batch is well formed, comes from the device its stream id
 * names, and matches `schema` (undefined: the controller has no manifest for its schema_id).
 */
export function checkBatch(deviceId: string, batch: EventBatch, schema: Schema | undefined): CheckedBatch {
  const reject = (code: BatchRejectedError['code'], why: string): never => {
    throw new BatchRejectedError(code, `batch of stream "${batch.streamId}" from device ${deviceId} rejected: ${why}`,
      deviceId, batch.streamId, batch.count);
  };
  const key = parseStreamId(batch.streamId);
  if (!key) reject('malformed', 'stream id must be "<device>/<probe>/<run>"; fix the agent');
  if (key!.deviceId !== deviceId) {
    reject('wrong_device', `the stream id names device ${key!.deviceId}; a device may only send its own streams`);
  }
  if (batch.count <= 0) reject('malformed', 'count is 0; an agent sends no empty batches');
  const lo = batch.firstSeq;
  if (lo < BigInt(FIRST_SEQ)) {
    reject('malformed', `first_seq ${lo}: streams number records from ${FIRST_SEQ}; fix the agent's spool`);
  }
  if (lo + BigInt(batch.count) > BigInt(MAX_SEQ)) {
    reject('malformed', `first_seq ${lo} + count ${batch.count} is beyond 2^53`);
  }
  if (batch.records.length !== batch.count * batch.recordSize) {
    reject('malformed', `records are ${batch.records.length} bytes, count ${batch.count} x record_size ` +
      `${batch.recordSize} = ${batch.count * batch.recordSize}; the agent framed the batch wrongly`);
  }
  if (batch.intervalIndex.length !== 0 && batch.intervalIndex.length !== batch.count) {
    reject('malformed', `${batch.intervalIndex.length} interval indexes for ${batch.count} records`);
  }
  if (!schema) {
    reject('unknown_schema', `no manifest for schema "${batch.schemaId}"; register it (putManifest, e.g. from the ` +
      'probe bundle) and the agent\'s resend will be stored: nothing was acked');
  }
  if (batch.recordSize !== schema!.recordSize) {
    reject('schema_mismatch', `record_size ${batch.recordSize} but manifest ${batch.schemaId} says ` +
      `${schema!.recordSize}; agent and manifest disagree on the probe version`);
  }
  if (schema!.manifest.probe !== key!.probe) {
    reject('schema_mismatch', `schema ${batch.schemaId} is probe ${schema!.manifest.probe}, the stream is ${key!.probe}`);
  }
  return { key: key!, lo: Number(lo), hi: Number(lo) + batch.count };
}

/** Smallest and largest ts_ns of `count` records, read as two u32 halves to stay exact. */
export function tsRange(records: Buffer, recordSize: number, tsOffset: number): { min: bigint; max: bigint } {
  let minHi = Infinity, minLo = 0, maxHi = -1, maxLo = 0;
  for (let at = tsOffset; at < records.length; at += recordSize) {
    const lo = records.readUInt32LE(at);
    const hi = records.readUInt32LE(at + 4);
    if (hi < minHi || (hi === minHi && lo < minLo)) { minHi = hi; minLo = lo; }
    if (hi > maxHi || (hi === maxHi && lo > maxLo)) { maxHi = hi; maxLo = lo; }
  }
  return { min: (BigInt(minHi) << 32n) | BigInt(minLo), max: (BigInt(maxHi) << 32n) | BigInt(maxLo) };
}
