// Rebuilds the spool's state at open: reads every segment oldest first, verifying every
// record, and merges what it finds with the state file.
//
// - A torn tail (crash mid-write) and a damaged tail are cut off (truncate), logged with file
//   and offset; a damaged tail and damaged records in the middle are counted as `corrupt`
//   batches. Damaged bytes in the middle stay in place: segments are only ever deleted whole.
// - Per stream, sequence numbers the state file says were held but that no valid record
//   carries (damaged records, a lost tail, a removed file) are counted as that stream's
//   `corrupt` records, with one log line per gap.
// - Per stream, nextSeq is the higher of the state file's and the log's, so a sequence number
//   is never assigned twice.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSegment } from './segment-reader.js';
import { newSegmentSummary, noteBatch, type SegmentSummary } from './segment-summary.js';
import { segmentFileName, listSegmentIndexes } from './segment-writer.js';
import type { SpoolState, StreamState } from './spool-state.js';

export interface Recovered {
  segments: SegmentSummary[];
  nextIndex: number;
  /** Bytes cut off as torn tails during this open. */
  tornBytes: number;
  /** Damaged bytes found during this open. */
  corruptBytes: number;
}

/** Reads all segments of `dir`, fixes their tails and updates `state` in place. */
export async function recoverSegments(dir: string, state: SpoolState, log: (line: string) => void): Promise<Recovered> {
  const indexes = listSegmentIndexes(dir);
  const out: Recovered = { segments: [], nextIndex: (indexes.at(-1) ?? 0) + 1, tornBytes: 0, corruptBytes: 0 };
  // Per stream: the next sequence number expected in log order, and the first one held.
  const expect = new Map<string, bigint>();
  const firstHeld = new Map<string, bigint>();
  for (const [id, s] of state.streams) expect.set(id, s.firstSeq);

  for (const index of indexes) {
    const file = path.join(dir, segmentFileName(index));
    const seg = newSegmentSummary(index, file);
    seg.knownCorrupt = state.damaged.get(path.basename(file)) ?? seg.knownCorrupt;
    let validEnd = 0;
    for await (const item of readSegment(file)) {
      if (item.kind === 'record') {
        const { streamId, firstSeq, count } = item.meta;
        noteBatch(seg, streamId, firstSeq, count);
        const last = firstSeq + BigInt(count - 1);
        const want = expect.get(streamId);
        if (want === undefined || last >= want) {
          if (!firstHeld.has(streamId)) firstHeld.set(streamId, firstSeq);
          if (want !== undefined && firstSeq > want) {
            countGap(state, streamId, want, firstSeq, `before ${file} offset ${item.offset}`, log);
          }
          expect.set(streamId, last + 1n);
        }
        validEnd = item.offset + item.length;
      } else if (item.kind === 'corrupt') {
        if (!item.tail) validEnd = item.offset + item.bytes;
        if (seg.knownCorrupt.has(item.offset)) continue; // counted and logged by an earlier open
        if (!item.tail) seg.knownCorrupt.add(item.offset);
        state.corruptBatches += 1;
        out.corruptBytes += item.bytes;
        log(
          `spool: ${file}: ${item.bytes} bytes at offset ${item.offset} fail their checksum` +
            (item.tail ? ', cut off (end of segment)' : ', skipped') +
            '; counted as corrupt',
        );
      } else {
        out.tornBytes += item.bytes;
        log(`spool: ${file}: incomplete record at offset ${item.offset} (${item.bytes} bytes, crash mid-write), cut off`);
      }
    }
    if (fs.statSync(file).size !== validEnd) fs.truncateSync(file, validEnd);
    seg.bytes = validEnd;
    if (validEnd === 0) fs.rmSync(file, { force: true });
    else out.segments.push(seg);
    if (seg.knownCorrupt.size > 0 && validEnd > 0) state.damaged.set(path.basename(file), seg.knownCorrupt);
  }
  const present = new Set(out.segments.map((s) => path.basename(s.file)));
  for (const name of state.damaged.keys()) if (!present.has(name)) state.damaged.delete(name);

  for (const [id, next] of expect) {
    const s = stream(state, id);
    if (s.nextSeq > next) countGap(state, id, next, s.nextSeq, 'at the end of the log', log);
    if (next > s.nextSeq) s.nextSeq = next;
    const held = firstHeld.get(id) ?? s.nextSeq;
    if (held > s.firstSeq) s.firstSeq = held;
    s.checkedSeq = s.nextSeq;
  }
  return out;
}

/** Counts the part of a gap no earlier open counted. */
function countGap(state: SpoolState, id: string, gapFrom: bigint, to: bigint, where: string, log: (line: string) => void): void {
  const checked = stream(state, id).checkedSeq;
  const from = gapFrom > checked ? gapFrom : checked;
  if (to <= from) return;
  const n = Number(to - from);
  stream(state, id).corrupt += n;
  log(`spool: ${id}: records ${from}..${to - 1n} (${n}) missing ${where} (damaged or removed); counted as corrupt`);
}

function stream(state: SpoolState, id: string): StreamState {
  let s = state.streams.get(id);
  if (s === undefined) {
    s = { firstSeq: 0n, nextSeq: 0n, checkedSeq: 0n, evicted: 0, corrupt: 0, appendErrors: 0 };
    state.streams.set(id, s);
  }
  return s;
}
