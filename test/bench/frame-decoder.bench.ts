// Micro-benchmark of the agent's first step on a loader's stdout: FrameDecoder.push on 64 KiB
// chunks of tcpstates frames (88-byte records, 8-byte headers), then the batcher's one copy of
// 1000 records into a batch (Buffer.concat). "copy per frame" adds the Buffer.from(payload) the
// decoder did per frame until payloads became views into its input: the table shows what that
// copy cost, as a ratio against the decoder measured in the same run. Median of --rounds.
//
//   npx tsx test/bench/frame-decoder.bench.ts [--records 2000000] [--rounds 7]
import { parseArgs } from 'node:util';
import { FrameDecoder, FrameKind, encodeFrame } from '../lib/index.js';

const { values } = parseArgs({ options: { records: { type: 'string', default: '2000000' }, rounds: { type: 'string', default: '7' } } });
const RECORDS = Number(values.records);
const ROUNDS = Number(values.rounds);
const RECORD = 88;
const CHUNK = 64 * 1024;
const BATCH = 1000;

// One loader stdout, cut into 64 KiB chunks the way a pipe read delivers it (frames straddle chunks).
const frame = encodeFrame(FrameKind.Event, 0, Buffer.alloc(RECORD, 0x5a));
const stream = Buffer.concat(Array.from({ length: RECORDS }, () => frame));
const chunks: Buffer[] = [];
for (let off = 0; off < stream.length; off += CHUNK) chunks.push(Buffer.from(stream.subarray(off, off + CHUNK)));

function run(copyPerFrame: boolean): number {
  const dec = new FrameDecoder();
  let parts: Buffer[] = [];
  let records = 0, bytes = 0;
  const t0 = process.hrtime.bigint();
  for (const c of chunks) {
    for (const f of dec.push(c)) {
      parts.push(copyPerFrame ? Buffer.from(f.payload) : f.payload);
      if (parts.length === BATCH) {
        bytes += Buffer.concat(parts).length;
        records += parts.length;
        parts = [];
      }
    }
  }
  records += parts.length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (records !== RECORDS || bytes > RECORDS * RECORD) throw new Error(`decoded ${records} records, expected ${RECORDS}`);
  return RECORDS / s;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const view: number[] = [], copy: number[] = [];
run(false); // warm-up
run(true);
for (let i = 0; i < ROUNDS; i++) {
  view.push(run(false));
  copy.push(run(true));
}
const v = median(view), c = median(copy);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
console.log(`${fmt(RECORDS)} records of ${RECORD} bytes in ${CHUNK / 1024} KiB chunks, median of ${ROUNDS}, node ${process.version}\n`);
console.log('| decoder | records/s | ns/record | x payload views |');
console.log('|---|---:|---:|---:|');
console.log(`| payload views (now) | ${fmt(v)} | ${(1e9 / v).toFixed(0)} | 1.00 |`);
console.log(`| copy per frame (before) | ${fmt(c)} | ${(1e9 / c).toFixed(0)} | ${(c / v).toFixed(2)} |`);
