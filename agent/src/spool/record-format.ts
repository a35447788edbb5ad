/**
 * The spool's log record: one batch of one stream, as stored in a segment file.
 *
 * A segment file (`seg-<20-digit number>.log`) is a plain concatenation of log records, no file
 * header. Everything is little-endian. Version 1:
 *
 *   header (16 bytes)
 *     0  u32  magic        0x50534642, the bytes "BFSP" in file order
 *     4  u16  version      1
 *     6  u16  flags        0 (reserved; a reader rejects records with unknown flags)
 *     8  u32  bodyLength   bytes of body that follow the header
 *    12  u32  crc32        zlib CRC-32 of header bytes 0..11, then of the whole body
 *   body (bodyLength bytes)
 *     0  u64  firstSeq     sequence number of the first record (assigned by the spool, per stream)
 *     8  i64  clockOffsetNs
 *    16  u32  count        records in the batch
 *    20  u32  recordSize   bytes per record
 *    24  u32  intervalCount  0, or count (interval probes)
 *    28  u16  streamIdLength
 *    30  u16  schemaIdLength
 *    32  streamId   UTF-8, streamIdLength bytes
 *        schemaId   UTF-8, schemaIdLength bytes
 *        intervalIndex  u32 x intervalCount
 *        records    count x recordSize bytes, exactly as the loader framed them
 *
 * The CRC covers the length and the flags, so a flipped length bit is caught too. A record is
 * written with one pwritev (header+metadata from a reused buffer, then the caller's records),
 * so the only per-record work on the hot path is the CRC over the records' bytes.
 */
import { crc32 } from 'node:zlib';
import type { EventBatch } from '@bpfleet/proto';

export const RECORD_MAGIC = 0x50534642;
export const RECORD_MAGIC_BYTES = Buffer.from('BFSP', 'latin1');
export const RECORD_VERSION = 1;
export const RECORD_HEADER_BYTES = 16;
export const RECORD_META_BYTES = 32;
/** Upper bound on a body; anything larger in a header is corruption, not a batch. */
export const MAX_BODY_BYTES = 256 * 1024 * 1024;

/** What a caller hands to `Spool.append`: an EventBatch without the spool-assigned fields. */
export interface SpoolBatchInput {
  /** Number of records. */
  count: number;
  /** Bytes per record. */
  recordSize: number;
  /** count x recordSize bytes. */
  records: Uint8Array;
  /** Manifest id the records are laid out by. */
  schemaId: string;
  /** Add to a record's ktime to get Unix ns. */
  clockOffsetNs: bigint;
  /** Interval probes: the interval each record closes (length count), else empty or absent. */
  intervalIndex?: readonly number[];
}

/** Header fields of a record found in a segment. */
export interface RecordHeader {
  bodyLength: number;
  crc: number;
}

/** Thrown for a batch the spool refuses as malformed; nothing of it is written. */
export class SpoolInputError extends Error {
  override name = 'SpoolInputError';
}

/** Checks a batch before anything is written; throws SpoolInputError saying what is wrong. */
export function validateBatch(streamId: string, b: SpoolBatchInput): void {
  const bad = (why: string): never => {
    throw new SpoolInputError(`spool: batch of ${streamId} refused: ${why}`);
  };
  if (streamId.length === 0) bad('empty stream id');
  if (!Number.isInteger(b.count) || b.count < 1 || b.count > 0xffffffff) bad(`count ${b.count} is not a positive u32`);
  if (!Number.isInteger(b.recordSize) || b.recordSize < 1 || b.recordSize > 0xffffffff) {
    bad(`record size ${b.recordSize} is not a positive u32`);
  }
  if (b.records.byteLength !== b.count * b.recordSize) {
    bad(`records hold ${b.records.byteLength} bytes, count x recordSize is ${b.count * b.recordSize}`);
  }
  const intervals = b.intervalIndex?.length ?? 0;
  if (intervals !== 0 && intervals !== b.count) bad(`interval index has ${intervals} entries for ${b.count} records`);
  if (b.clockOffsetNs < -(2n ** 63n) || b.clockOffsetNs >= 2n ** 63n) bad('clock offset does not fit in i64');
}

/**
 * Writes header and metadata of one record into `scratch` (grown if needed) and returns the
 * buffer and the number of bytes used; the records follow on disk. `idBytes` and
 * `schemaBytes` are the UTF-8 encodings, cached by the caller.
 */
export function encodeRecordHead(
  scratch: Buffer,
  firstSeq: bigint,
  idBytes: Buffer,
  schemaBytes: Buffer,
  b: SpoolBatchInput,
): { head: Buffer; headLength: number } {
  const intervals = b.intervalIndex?.length ?? 0;
  const headLength = RECORD_HEADER_BYTES + RECORD_META_BYTES + idBytes.length + schemaBytes.length + 4 * intervals;
  if (idBytes.length > 0xffff || schemaBytes.length > 0xffff) {
    throw new SpoolInputError('spool: stream id or schema id longer than 65535 bytes');
  }
  const bodyLength = headLength - RECORD_HEADER_BYTES + b.records.byteLength;
  if (bodyLength > MAX_BODY_BYTES) {
    throw new SpoolInputError(`spool: batch of ${bodyLength} bytes exceeds the ${MAX_BODY_BYTES}-byte record limit`);
  }
  const head = scratch.length >= headLength ? scratch : Buffer.allocUnsafe(Math.max(headLength, scratch.length * 2));
  head.writeUInt32LE(RECORD_MAGIC, 0);
  head.writeUInt16LE(RECORD_VERSION, 4);
  head.writeUInt16LE(0, 6);
  head.writeUInt32LE(bodyLength, 8);
  head.writeBigUInt64LE(firstSeq, 16);
  head.writeBigInt64LE(b.clockOffsetNs, 24);
  head.writeUInt32LE(b.count, 32);
  head.writeUInt32LE(b.recordSize, 36);
  head.writeUInt32LE(intervals, 40);
  head.writeUInt16LE(idBytes.length, 44);
  head.writeUInt16LE(schemaBytes.length, 46);
  let off = RECORD_HEADER_BYTES + RECORD_META_BYTES;
  off += idBytes.copy(head, off);
  off += schemaBytes.copy(head, off);
  if (intervals > 0) {
    const idx = b.intervalIndex as readonly number[];
    for (let i = 0; i < intervals; i++, off += 4) head.writeUInt32LE((idx[i] as number) >>> 0, off);
  }
  let crc = crc32(head.subarray(0, 12));
  crc = crc32(head.subarray(RECORD_HEADER_BYTES, headLength), crc);
  crc = crc32(b.records, crc);
  head.writeUInt32LE(crc >>> 0, 12);
  return { head, headLength };
}

/**
 * Parses a record header. Returns null when the bytes cannot be the start of a record
 * (magic, version, flags or length implausible): the reader then looks for the next one.
 */
export function parseRecordHeader(buf: Buffer, off = 0): RecordHeader | null {
  if (buf.length - off < RECORD_HEADER_BYTES) return null;
  if (buf.readUInt32LE(off) !== RECORD_MAGIC) return null;
  if (buf.readUInt16LE(off + 4) !== RECORD_VERSION || buf.readUInt16LE(off + 6) !== 0) return null;
  const bodyLength = buf.readUInt32LE(off + 8);
  if (bodyLength < RECORD_META_BYTES || bodyLength > MAX_BODY_BYTES) return null;
  return { bodyLength, crc: buf.readUInt32LE(off + 12) };
}

/** True when `body` matches the CRC of `header` (header bytes 0..11 are at `headerBuf[off..]`). */
export function recordCrcMatches(headerBuf: Buffer, off: number, header: RecordHeader, body: Buffer): boolean {
  const crc = crc32(body, crc32(headerBuf.subarray(off, off + 12)));
  return crc >>> 0 === header.crc;
}

/** The fields needed to index a record without copying its records. */
export interface RecordMeta {
  streamId: string;
  firstSeq: bigint;
  count: number;
}

/** Reads stream id, first sequence and count of a verified body; null when inconsistent. */
export function decodeRecordMeta(body: Buffer): RecordMeta | null {
  const layout = bodyLayout(body);
  if (layout === null) return null;
  return {
    streamId: body.toString('utf8', RECORD_META_BYTES, RECORD_META_BYTES + layout.idLength),
    firstSeq: body.readBigUInt64LE(0),
    count: layout.count,
  };
}

/** Decodes a verified body into an EventBatch; `records` is a view into `body`. */
export function decodeRecordBody(body: Buffer): EventBatch | null {
  const layout = bodyLayout(body);
  if (layout === null) return null;
  const { count, idLength, schemaLength, intervals } = layout;
  let off = RECORD_META_BYTES;
  const streamId = body.toString('utf8', off, off + idLength);
  off += idLength;
  const schemaId = body.toString('utf8', off, off + schemaLength);
  off += schemaLength;
  const intervalIndex: number[] = new Array<number>(intervals);
  for (let i = 0; i < intervals; i++, off += 4) intervalIndex[i] = body.readUInt32LE(off);
  return {
    streamId,
    firstSeq: body.readBigUInt64LE(0),
    count,
    records: body.subarray(off),
    recordSize: body.readUInt32LE(20),
    schemaId,
    clockOffsetNs: body.readBigInt64LE(8),
    intervalIndex,
  };
}

function bodyLayout(body: Buffer): { count: number; idLength: number; schemaLength: number; intervals: number } | null {
  if (body.length < RECORD_META_BYTES) return null;
  const count = body.readUInt32LE(16);
  const recordSize = body.readUInt32LE(20);
  const intervals = body.readUInt32LE(24);
  const idLength = body.readUInt16LE(28);
  const schemaLength = body.readUInt16LE(30);
  const expected = RECORD_META_BYTES + idLength + schemaLength + 4 * intervals + count * recordSize;
  if (count === 0 || (intervals !== 0 && intervals !== count) || expected !== body.length) return null;
  return { count, idLength, schemaLength, intervals };
}
