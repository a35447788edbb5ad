import { afterEach, describe, expect, it, vi } from 'vitest';
import { RecordBatcher, type RecordChunk } from './record-batcher.js';
import { RestartBackoff } from './restart-backoff.js';
import { StderrTail } from './stderr-tail.js';
import { schemaIdOf } from './manifest-cache.js';

const rec = (n: number, size = 8): Buffer => Buffer.alloc(size, n);

describe('record batcher', () => {
  afterEach(() => vi.useRealTimers());

  it('closes a batch at maxRecords, concatenating the records in order', () => {
    const out: RecordChunk[] = [];
    const b = new RecordBatcher({ maxRecords: 3, maxBytes: 1 << 20, maxDelayMs: 1000 }, (c) => out.push(c));
    for (let i = 0; i < 7; i++) b.add(rec(i));
    expect(out.map((c) => c.count)).toEqual([3, 3]);
    expect(out[1]!.records).toEqual(Buffer.concat([rec(3), rec(4), rec(5)]));
    b.flush();
    expect(out.map((c) => c.count)).toEqual([3, 3, 1]);
  });

  it('never exceeds maxBytes', () => {
    const out: RecordChunk[] = [];
    const b = new RecordBatcher({ maxRecords: 100, maxBytes: 20, maxDelayMs: 1000 }, (c) => out.push(c));
    for (let i = 0; i < 5; i++) b.add(rec(i));
    b.flush();
    expect(out.map((c) => c.records.length)).toEqual([16, 16, 8]);
  });

  it('flushes a partial batch after maxDelayMs', () => {
    vi.useFakeTimers();
    const out: RecordChunk[] = [];
    const b = new RecordBatcher({ maxRecords: 100, maxBytes: 1 << 20, maxDelayMs: 200 }, (c) => out.push(c));
    b.add(rec(1));
    vi.advanceTimersByTime(150);
    b.add(rec(2)); // the delay counts from the oldest record
    expect(out).toHaveLength(0);
    vi.advanceTimersByTime(60);
    expect(out.map((c) => c.count)).toEqual([2]);
  });

  it('keeps interval indexes parallel to the records', () => {
    const out: RecordChunk[] = [];
    const b = new RecordBatcher({ maxRecords: 2, maxBytes: 1 << 20, maxDelayMs: 1000 }, (c) => out.push(c));
    b.add(rec(1), 1);
    b.add(rec(2), 1);
    b.add(rec(3), 2);
    b.flush();
    expect(out.map((c) => c.intervalIndex)).toEqual([[1, 1], [2]]);
  });
});

describe('restart backoff', () => {
  it('doubles to the cap and resets after a stable run', () => {
    const b = new RestartBackoff({ initialMs: 500, maxMs: 30_000, stableMs: 60_000 });
    const d = Array.from({ length: 8 }, () => b.next(1000));
    expect(d).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    expect(b.next(60_000)).toBe(500);
    expect(b.next(10)).toBe(1000);
  });
});

describe('stderr tail', () => {
  it('joins lines split across chunks and keeps the last ones', () => {
    const t = new StderrTail(3);
    expect(t.push('a\nb')).toEqual(['a']);
    expect(t.push('c\nd\ne\n')).toEqual(['bc', 'd', 'e']);
    t.push('unterminated');
    expect(t.end()).toEqual(['unterminated']);
    expect(t.text()).toBe('d\ne\nunterminated');
  });
});

describe('schema id', () => {
  it('is probe@version:first 16 hex of sha256 of the manifest text', () => {
    // sha256("{}") = 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
    expect(schemaIdOf({ probe: 'p', version: '1.2.3' }, '{}')).toBe('p@1.2.3:44136fa355b3678a');
  });
});
