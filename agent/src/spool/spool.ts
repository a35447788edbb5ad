// The agent's durable spool: every batch is appended here before it is sent, and stays until
// the controller acknowledges it or the size bound evicts it (counted, logged).
//
// Sequence numbers are per stream, contiguous, and start at 1, so that an Ack with
// acked_through = 0 (the proto3 default) means "nothing stored".
//
// Durability (`sync`), what survives a power cut (an agent crash loses nothing in any mode:
// the data is in the page cache once append() resolves):
//   'always'    fdatasync before append() resolves: nothing acknowledged by append() is lost.
//               Costs one device flush per batch (ms on eMMC) and blocks the event loop for it.
//   'interval'  fdatasync every `syncIntervalMs` (default 200) on the libuv pool: at most that
//               much is lost; the default.
//   'none'      the kernel writes back when it likes (~30 s): fastest, loses the most.
// After a power cut the log may end earlier than the sequence numbers the controller already
// stored; ack() then moves nextSeq past acked_through so that no number is reused.
//
// The state file (acknowledged positions, next sequence numbers) is saved on the libuv pool, at
// most every `stateFlushMs` and whenever segments are removed; one save at a time. A removed
// segment leaves `segments` and the size count at once, but its file is deleted only after a
// save that started after the removal has completed, so a restart never sees a deleted record's
// number as free. `flush()` waits for that.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { EventBatch, StreamCursor } from '@bpfleet/proto';
import { SpoolInputError, decodeRecordBody, encodeRecordHead, validateBatch, type SpoolBatchInput } from './record-format.js';
import { readSegment } from './segment-reader.js';
import { newSegmentSummary, noteBatch, unacknowledgedIn, type SegmentSummary } from './segment-summary.js';
import { SegmentWriter, fsyncDir, fsyncDirSync } from './segment-writer.js';
import { recoverSegments } from './spool-recovery.js';
import { SpoolFullError, type SpoolOptions, type SpoolStats, type SpoolStreamStats, type SyncPolicy } from './spool-types.js';
import {
  ensureReserve,
  isDiskFull,
  loadState,
  releaseReserve,
  removeStaleTemps,
  saveState,
  type SpoolState,
  type StreamState,
} from './spool-state.js';

interface StreamEntry extends StreamState {
  idBytes: Buffer;
  schemaId: string;
  schemaBytes: Buffer;
}

const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024;

export class Spool {
  private readonly streams = new Map<string, StreamEntry>();
  private readonly segments: SegmentSummary[];
  private writer: SegmentWriter | null = null;
  private active: SegmentSummary | null = null;
  private totalBytes = 0;
  private scratch: Buffer = Buffer.allocUnsafe(4096);
  private readonly closing = new Set<Promise<void>>();
  /** The sync/state tick, armed only while something waits for it (an idle agent sleeps). */
  private timer: NodeJS.Timeout | undefined;
  private readonly period: number;
  private stateDirty = false;
  private dirDirty = false;
  private dirSyncing = false;
  /** The state save in flight (never rejects); null when none. */
  private saving: Promise<void> | null = null;
  /** A save was asked for while one was in flight: run another as soon as it ends. */
  private saveAgain = false;
  /** Removed segments whose files wait for the next completed state save. */
  private doomed: SegmentSummary[] = [];
  private lastStateSave = 0;
  private syncErrors = 0;
  private reserveMissing = false;
  private closed = false;
  private readonly segmentBytes: number;
  private readonly sync: SyncPolicy;
  private readonly log: (line: string) => void;

  private constructor(
    private readonly opts: SpoolOptions,
    private readonly state: SpoolState,
    segments: SegmentSummary[],
    private nextIndex: number,
    private readonly tornBytes: number,
  ) {
    this.segments = segments;
    this.totalBytes = segments.reduce((n, s) => n + s.bytes, 0);
    this.segmentBytes = Math.max(4096, Math.min(opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES, Math.floor(opts.maxBytes / 4)));
    this.sync = opts.sync ?? 'interval';
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    for (const [id, s] of state.streams) this.streams.set(id, entry(id, s));
    this.period = this.sync === 'interval' ? (opts.syncIntervalMs ?? 200) : (opts.stateFlushMs ?? 1000);
  }

  /** Something became dirty: make sure a tick comes. */
  private arm(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick();
    }, this.period);
    this.timer.unref();
  }

  /** Opens (or creates) the spool in `opts.dir`, recovering what a crash left. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    if (!(opts.maxBytes > 0)) throw new Error(`spool: maxBytes must be positive, got ${opts.maxBytes}`);
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    removeStaleTemps(opts.dir);
    const state = loadState(opts.dir);
    const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const found = await recoverSegments(opts.dir, state, log);
    const spool = new Spool({ ...opts, log }, state, found.segments, found.nextIndex, found.tornBytes);
    await spool.requestSave();
    spool.reserveMissing = !ensureReserve(opts.dir);
    spool.deleteAcknowledged();
    spool.makeRoom(0);
    if (spool.saving) await spool.saving;
    return spool;
  }

  /**
   * Appends one batch of `streamId` and assigns its sequence numbers. Rejects with
   * SpoolFullError (disk full), SpoolInputError (malformed batch) or a write error; then
   * nothing was written, no sequence number was used, and the records are counted in
   * `appendErrors`.
   */
  async append(streamId: string, batch: SpoolBatchInput): Promise<{ firstSeq: bigint }> {
    return { firstSeq: this.appendNow(streamId, batch) };
  }

  /**
   * Assigns `count` sequence numbers of `streamId` without storing anything, for a batch that
   * append() refused (disk full) and the agent sends once, directly: numbers stay unique and
   * the controller sees a gap if it never arrives. Unacknowledged, they count as missing
   * (`corrupt`) at the next open, like any record the log lost.
   */
  assignUnspooled(streamId: string, count: number): bigint {
    if (this.closed) throw new Error('spool: assignUnspooled after close');
    if (!Number.isInteger(count) || count <= 0) throw new SpoolInputError(`spool: cannot assign ${count} sequence numbers`);
    const st = this.stream(streamId);
    const firstSeq = st.nextSeq;
    st.nextSeq += BigInt(count);
    this.stateDirty = true;
    this.arm();
    return firstSeq;
  }

  /** The controller stored `streamId` through `ackedThrough` (inclusive). */
  ack(streamId: string, ackedThrough: bigint): void {
    if (ackedThrough <= 0n) return;
    const st = this.stream(streamId);
    if (ackedThrough >= st.nextSeq) {
      this.log(
        `spool: ${streamId}: controller holds through ${ackedThrough} but the spool assigned only up to ` +
          `${st.nextSeq - 1n} (state lost, power cut?); continuing at ${ackedThrough + 1n} so no number is reused`,
      );
      st.nextSeq = ackedThrough + 1n;
    }
    if (ackedThrough < st.firstSeq) return;
    st.firstSeq = ackedThrough + 1n;
    this.stateDirty = true;
    this.arm();
    this.deleteAcknowledged();
  }

  /**
   * Unacknowledged batches in log order (per stream in sequence order), as they stood when
   * called: for each stream, every batch with a record after its acknowledged position (or
   * at/after `fromSeq`). A batch that straddles that position comes whole, with records the
   * controller already has: it dedups by sequence number. Batches appended after the call are
   * not included (the caller sends those live). Acks and evictions during the iteration are
   * honoured.
   */
  async *replay(opts: { streamId?: string; fromSeq?: bigint } = {}): AsyncGenerator<EventBatch> {
    const snapshot = this.segments.map((s) => ({ seg: s, end: s.bytes }));
    const limit = new Map<string, bigint>();
    for (const [id, s] of this.streams) limit.set(id, s.nextSeq);
    const from = (id: string): bigint => {
      const first = this.streams.get(id)?.firstSeq ?? 0n;
      return opts.fromSeq !== undefined && opts.fromSeq > first ? opts.fromSeq : first;
    };
    const wanted = (id: string): boolean => opts.streamId === undefined || opts.streamId === id;
    for (const { seg, end } of snapshot) {
      if (this.closed) return;
      if (![...seg.streams].some(([id, r]) => wanted(id) && r.hi >= from(id))) continue;
      for await (const item of readSegment(seg.file, end)) {
        if (item.kind !== 'record') {
          this.noteDamage(seg, item.offset, item.bytes);
          continue;
        }
        const { streamId, firstSeq, count } = item.meta;
        if (!wanted(streamId) || firstSeq >= (limit.get(streamId) ?? 0n)) continue;
        if (firstSeq + BigInt(count - 1) < from(streamId)) continue;
        const batch = decodeRecordBody(item.body);
        if (batch !== null) yield batch;
      }
    }
  }

  /** Where each stream holding data stands, for Hello.spooled. */
  cursors(): StreamCursor[] {
    const out: StreamCursor[] = [];
    for (const [streamId, s] of this.streams) {
      if (s.firstSeq < s.nextSeq) out.push({ streamId, firstSeq: s.firstSeq, nextSeq: s.nextSeq });
    }
    return out;
  }

  stats(): SpoolStats {
    const streams: SpoolStreamStats[] = [];
    let evicted = 0;
    let appendErrors = 0;
    for (const [streamId, s] of this.streams) {
      const { firstSeq, nextSeq, corrupt } = s;
      streams.push({ streamId, firstSeq, nextSeq, evicted: s.evicted, corrupt, appendErrors: s.appendErrors });
      evicted += s.evicted;
      appendErrors += s.appendErrors;
    }
    return {
      bytes: this.totalBytes,
      segments: this.segments.length,
      corrupt: this.state.corruptBatches,
      tornBytes: this.tornBytes,
      syncErrors: this.syncErrors,
      evicted,
      appendErrors,
      streams,
    };
  }

  /** Changes the size bound (AgentConfig.spool_max_bytes); evicts now if needed. */
  setMaxBytes(maxBytes: number): void {
    if (!(maxBytes > 0)) throw new Error(`spool: maxBytes must be positive, got ${maxBytes}`);
    this.opts.maxBytes = maxBytes;
    this.makeRoom(0);
  }

  /** Drops a finished stream that holds nothing any more; false if it still holds records. */
  forget(streamId: string): boolean {
    const s = this.streams.get(streamId);
    if (s === undefined) return true;
    if (s.firstSeq < s.nextSeq) return false;
    this.streams.delete(streamId);
    this.state.streams.delete(streamId);
    this.stateDirty = true;
    this.arm();
    return true;
  }

  /**
   * Resolves once the state as it stands now is durable and the files of segments removed so
   * far (acknowledged, evicted) are deleted.
   */
  async flush(): Promise<void> {
    await this.requestSave();
  }

  /** Flushes, closes the open segment and writes the state file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.writer) this.retireWriter();
    await Promise.all([...this.closing]);
    await this.requestSave();
  }

  private appendNow(streamId: string, batch: SpoolBatchInput): bigint {
    if (this.closed) throw new Error('spool: append after close');
    const st = this.stream(streamId);
    let head: Buffer;
    let headLength: number;
    try {
      validateBatch(streamId, batch);
      if (batch.schemaId !== st.schemaId) {
        st.schemaId = batch.schemaId;
        st.schemaBytes = Buffer.from(batch.schemaId, 'utf8');
      }
      ({ head, headLength } = encodeRecordHead(this.scratch, st.nextSeq, st.idBytes, st.schemaBytes, batch));
      this.scratch = head;
      if (headLength + batch.records.byteLength > this.opts.maxBytes) {
        throw new SpoolInputError(
          `spool: batch of ${streamId} (${headLength + batch.records.byteLength} bytes) is larger than ` +
            `spool_max_bytes (${this.opts.maxBytes})`,
        );
      }
    } catch (err) {
      st.appendErrors += Number.isInteger(batch.count) && batch.count > 0 ? batch.count : 0;
      throw err;
    }
    const length = headLength + batch.records.byteLength;
    const firstSeq = st.nextSeq;
    try {
      this.makeRoom(length);
      const { writer, seg } = this.writerFor(length);
      const start = writer.size;
      writer.append([head.subarray(0, headLength), batch.records], length);
      if (this.sync === 'always') writer.syncSync(start);
      seg.bytes = writer.size;
      this.totalBytes += length;
      noteBatch(seg, streamId, firstSeq, batch.count);
    } catch (err) {
      st.appendErrors += batch.count;
      this.stateDirty = true;
      this.arm();
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (isDiskFull(err)) throw new SpoolFullError(this.opts.dir, code, streamId, batch.count);
      throw new Error(
        `spool: write to ${this.opts.dir} failed (${code || (err as Error).message}): ` +
          `${batch.count} records of ${streamId} not spooled`,
        { cause: err },
      );
    }
    st.nextSeq = firstSeq + BigInt(batch.count);
    this.stateDirty = true;
    this.arm();
    return firstSeq;
  }

  private writerFor(length: number): { writer: SegmentWriter; seg: SegmentSummary } {
    if (this.writer && this.writer.size > 0 && this.writer.size + length > this.segmentBytes) this.retireWriter();
    if (this.writer && this.active) return { writer: this.writer, seg: this.active };
    const writer = SegmentWriter.create(this.opts.dir, this.nextIndex);
    const seg = newSegmentSummary(this.nextIndex++, writer.file);
    this.writer = writer;
    this.active = seg;
    this.segments.push(seg);
    // 'always': the new file's directory entry is durable before a record in it is.
    if (this.sync === 'always') fsyncDirSync(this.opts.dir);
    else {
      this.dirDirty = true;
      this.arm();
    }
    return { writer, seg };
  }

  /** Closes the open segment (after a last fdatasync unless sync is 'none'). */
  private retireWriter(): void {
    const w = this.writer;
    if (!w) return;
    this.writer = null;
    this.active = null;
    const done = w
      .close(this.sync !== 'none')
      .catch((err: unknown) => this.syncFailed(w.file, err))
      .finally(() => this.closing.delete(done));
    this.closing.add(done);
    this.deleteAcknowledged();
  }

  /** Evicts the oldest segments until `incoming` more bytes fit under maxBytes. */
  private makeRoom(incoming: number): void {
    while (this.totalBytes + incoming > this.opts.maxBytes && this.segments.length > 0) {
      const oldest = this.segments[0] as SegmentSummary;
      if (oldest === this.active) {
        if (oldest.bytes === 0) return;
        this.retireWriter();
        if (!this.segments.includes(oldest)) continue;
      }
      const lost: string[] = [];
      for (const [id, r] of oldest.streams) {
        const st = this.stream(id);
        const n = unacknowledgedIn(r, st.firstSeq);
        if (n > 0) {
          lost.push(`${n} records of ${id} (${st.firstSeq > r.lo ? st.firstSeq : r.lo}..${r.hi})`);
          st.evicted += n;
        }
        if (st.firstSeq <= r.hi) st.firstSeq = r.hi + 1n;
      }
      this.log(
        `spool: size bound ${this.opts.maxBytes} bytes reached: evicted ${oldest.file} (${oldest.bytes} bytes): ` +
          (lost.length > 0 ? `${lost.join(', ')} lost unsent` : 'all of it acknowledged'),
      );
      this.removeSegments([oldest]);
    }
  }

  /** Deletes closed segments whose every record is acknowledged. */
  private deleteAcknowledged(): void {
    const done = this.segments.filter(
      (seg) => seg !== this.active && [...seg.streams].every(([id, r]) => r.hi < (this.streams.get(id)?.firstSeq ?? 0n)),
    );
    if (done.length > 0) this.removeSegments(done);
  }

  /**
   * Drops `segs` from the spool now; their files go once a state save that starts after this
   * completes (saveOnce), so a restart never assigns a sequence number of a deleted record
   * again.
   */
  private removeSegments(segs: SegmentSummary[]): void {
    for (const seg of segs) {
      this.totalBytes -= seg.bytes;
      this.segments.splice(this.segments.indexOf(seg), 1);
      this.doomed.push(seg);
    }
    this.stateDirty = true;
    this.arm();
    void this.requestSave();
  }

  /** Starts a save, or asks the one in flight for another after it; resolves when both are done. */
  private requestSave(): Promise<void> {
    if (this.saving) {
      this.saveAgain = true;
      return this.saving;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          this.saveAgain = false;
          await this.saveOnce();
        } while (this.saveAgain);
      } finally {
        // In the same synchronous step as the last check of saveAgain: a request after this
        // starts a new run instead of joining one that has finished.
        this.saving = null;
      }
    };
    this.saving = run();
    return this.saving;
  }

  /**
   * One state save, then the deletion of the segments removed before it started. On a full
   * disk the state may not be writable until space is freed: then the segments go anyway and
   * the state is written again right after (a crash in between may replay what was
   * acknowledged; the controller dedups).
   */
  private async saveOnce(): Promise<void> {
    const removing = this.doomed.splice(0);
    const saved = await this.writeState();
    if (removing.length === 0) return;
    for (const seg of removing) {
      try {
        await fsp.rm(seg.file, { force: true });
      } catch (err) {
        this.log(`spool: could not delete ${seg.file}: ${(err as Error).message}`);
      }
      this.state.damaged.delete(path.basename(seg.file));
    }
    if (!saved) this.saveAgain = true;
    if (this.reserveMissing) this.reserveMissing = !ensureReserve(this.opts.dir);
  }

  /** Writes the state file; on a full disk, with the reserved space if it is still there. */
  private async writeState(): Promise<boolean> {
    for (;;) {
      this.lastStateSave = Date.now();
      this.stateDirty = false;
      try {
        await saveState(this.opts.dir, this.state);
        return true;
      } catch (err) {
        this.stateDirty = true;
        this.arm();
        if (isDiskFull(err) && releaseReserve(this.opts.dir)) {
          this.reserveMissing = true;
          this.log(`spool: disk full at ${this.opts.dir}: writing the state file with the space kept in reserve for it`);
          continue;
        }
        this.log(`spool: could not write the state file in ${this.opts.dir}: ${(err as Error).message}`);
        return false;
      }
    }
  }

  private tick(): void {
    if (this.sync === 'interval' && this.writer?.dirty) {
      const w = this.writer;
      w.syncAsync().catch((err: unknown) => this.syncFailed(w.file, err));
    }
    if (this.dirDirty && !this.dirSyncing && this.sync !== 'none') {
      this.dirDirty = false;
      this.dirSyncing = true;
      fsyncDir(this.opts.dir)
        .catch((err: unknown) => this.syncFailed(this.opts.dir, err))
        .finally(() => (this.dirSyncing = false));
    }
    // Dirtied during a save: the next tick after stateFlushMs saves again.
    if (this.stateDirty && !this.saving && Date.now() - this.lastStateSave >= (this.opts.stateFlushMs ?? 1000)) {
      void this.requestSave();
    }
    // Tick again only while something still waits; an idle spool schedules nothing (a failed
    // background fdatasync re-marks its writer dirty and is retried with the next append's tick).
    if (this.stateDirty || this.dirDirty || (this.sync === 'interval' && this.writer?.dirty)) this.arm();
  }

  private syncFailed(file: string, err: unknown): void {
    this.syncErrors += 1;
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    this.log(`spool: fsync of ${file} failed (${why}): recent batches may not survive a power cut`);
  }

  /** Damage found during replay that the open did not see: counted once, logged once. */
  private noteDamage(seg: SegmentSummary, offset: number, bytes: number): void {
    if (seg.knownCorrupt.has(offset)) return;
    seg.knownCorrupt.add(offset);
    this.state.damaged.set(path.basename(seg.file), seg.knownCorrupt);
    this.state.corruptBatches += 1;
    this.stateDirty = true;
    this.arm();
    this.log(`spool: ${seg.file}: ${bytes} bytes at offset ${offset} fail their checksum on replay; skipped, counted as corrupt`);
  }

  private stream(streamId: string): StreamEntry {
    let st = this.streams.get(streamId);
    if (st === undefined) {
      const s: StreamState = { firstSeq: 1n, nextSeq: 1n, checkedSeq: 1n, evicted: 0, corrupt: 0, appendErrors: 0 };
      this.state.streams.set(streamId, s);
      st = entry(streamId, s);
      this.streams.set(streamId, st);
    }
    return st;
  }
}

/**
 * A stream's live entry: the very StreamState object of `state.streams` with the cached UTF-8
 * encodings added, so the state file always sees the current numbers without a copy.
 */
function entry(id: string, s: StreamState): StreamEntry {
  return Object.assign(s, { idBytes: Buffer.from(id, 'utf8'), schemaId: '', schemaBytes: Buffer.alloc(0) }) as StreamEntry;
}
