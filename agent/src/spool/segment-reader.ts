// Reads the log records of one segment file in order, verifying each one's CRC. What does
// not verify is reported, never skipped quietly: a damaged record followed by good ones is
// `corrupt` (the reader resynchronises on the next record that verifies); bytes at the end
// that hold no complete record are `torn` (a crash in the middle of a write: header or body
// cut short, or the zero fill a file system leaves after a power cut) or `corrupt` (anything
// else). Used by recovery (open) and by replay.
//
// The file is read CHUNK_BYTES at a time and records are parsed out of that window: a board's
// batches are often a few hundred bytes, and two reads per record through libuv's thread pool
// made a replay about 100 times slower than reading the file.
import * as fs from 'node:fs/promises';
import {
  RECORD_HEADER_BYTES,
  RECORD_MAGIC_BYTES,
  decodeRecordMeta,
  parseRecordHeader,
  recordCrcMatches,
  type RecordMeta,
} from './record-format.js';

export type SegmentItem =
  /** A verified record; `body` is a fresh buffer owned by the caller. */
  | { kind: 'record'; offset: number; length: number; meta: RecordMeta; body: Buffer }
  /** Bytes at `offset` that are not a valid record; `tail` when nothing valid follows. */
  | { kind: 'corrupt'; offset: number; bytes: number; tail: boolean }
  /** An incomplete last record (crash mid-write). */
  | { kind: 'torn'; offset: number; bytes: number };

/** Bytes read at a time (a record larger than this is read whole). */
const CHUNK_BYTES = 256 * 1024;

/** A window of the file: the bytes of the last read, and where in the file they start. */
class ReadWindow {
  private backing = Buffer.alloc(0);
  private view = Buffer.alloc(0);
  private start = 0;

  constructor(private readonly fh: fs.FileHandle, private readonly limit: number) {}

  /** Bytes [off, off + n) of the file, off + n <= limit; valid until the next call. */
  async bytes(off: number, n: number): Promise<Buffer> {
    if (off < this.start || off + n > this.start + this.view.length) {
      const size = Math.min(Math.max(CHUNK_BYTES, n), this.limit - off);
      if (this.backing.length < size) this.backing = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, size));
      this.view = this.backing.subarray(0, size);
      this.start = off;
      await readExactly(this.fh, this.view, off);
    }
    return this.view.subarray(off - this.start, off - this.start + n);
  }
}

/**
 * Yields the items of `file` up to byte `end` (default: its size now). A file that vanished
 * (acknowledged or evicted meanwhile) yields nothing.
 */
export async function* readSegment(file: string, end?: number): AsyncGenerator<SegmentItem> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const limit = end ?? (await fh.stat()).size;
    const window = new ReadWindow(fh, limit);
    let off = 0;
    while (off < limit) {
      const item = await readRecordAt(window, off, limit);
      if (item !== null) {
        yield item;
        off += item.length;
        continue;
      }
      const next = await findNextRecord(fh, off + 1, limit);
      if (next >= 0) {
        yield { kind: 'corrupt', offset: off, bytes: next - off, tail: false };
        off = next;
        continue;
      }
      yield (await looksTorn(fh, off, limit))
        ? { kind: 'torn', offset: off, bytes: limit - off }
        : { kind: 'corrupt', offset: off, bytes: limit - off, tail: true };
      return;
    }
  } finally {
    await fh.close();
  }
}

async function readRecordAt(
  window: ReadWindow,
  off: number,
  limit: number,
): Promise<Extract<SegmentItem, { kind: 'record' }> | null> {
  if (limit - off < RECORD_HEADER_BYTES) return null;
  const header = parseRecordHeader(await window.bytes(off, RECORD_HEADER_BYTES));
  if (header === null || off + RECORD_HEADER_BYTES + header.bodyLength > limit) return null;
  // Header and body from one view (a second read could move the window); the body is copied
  // out, the caller owns it.
  const whole = await window.bytes(off, RECORD_HEADER_BYTES + header.bodyLength);
  const body = Buffer.from(whole.subarray(RECORD_HEADER_BYTES));
  if (!recordCrcMatches(whole, 0, header, body)) return null;
  const meta = decodeRecordMeta(body);
  if (meta === null) return null;
  return { kind: 'record', offset: off, length: RECORD_HEADER_BYTES + header.bodyLength, meta, body };
}

/** Offset of the next record that verifies in [from, limit), or -1. Only runs after damage. */
async function findNextRecord(fh: fs.FileHandle, from: number, limit: number): Promise<number> {
  if (from >= limit) return -1;
  const rest = Buffer.allocUnsafe(limit - from);
  await readExactly(fh, rest, from);
  for (let i = rest.indexOf(RECORD_MAGIC_BYTES); i >= 0; i = rest.indexOf(RECORD_MAGIC_BYTES, i + 1)) {
    const header = parseRecordHeader(rest, i);
    if (header === null) continue;
    const bodyStart = i + RECORD_HEADER_BYTES;
    if (bodyStart + header.bodyLength > rest.length) continue;
    const body = rest.subarray(bodyStart, bodyStart + header.bodyLength);
    if (recordCrcMatches(rest, i, header, body) && decodeRecordMeta(body) !== null) return from + i;
  }
  return -1;
}

/** A cut-short header or body, or only zero bytes: what a crash mid-write leaves. */
async function looksTorn(fh: fs.FileHandle, off: number, limit: number): Promise<boolean> {
  if (limit - off < RECORD_HEADER_BYTES) return true;
  const head = Buffer.alloc(RECORD_HEADER_BYTES);
  await readExactly(fh, head, off);
  const header = parseRecordHeader(head);
  if (header !== null && off + RECORD_HEADER_BYTES + header.bodyLength > limit) return true;
  const rest = Buffer.allocUnsafe(limit - off);
  await readExactly(fh, rest, off);
  return rest.every((b) => b === 0);
}

async function readExactly(fh: fs.FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`spool: unexpected end of segment at ${position + done}`);
    done += bytesRead;
  }
}
