import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { ControllerMessage } from '@bpfleet/proto';
import { OutboundQueue } from './outbound-queue.js';

/** A stream that takes `room` messages, then says false until drained by the test. */
class FakeSink extends EventEmitter {
  written: ControllerMessage[] = [];
  constructor(private room: number) { super(); }
  write(m: ControllerMessage): boolean {
    this.written.push(m);
    return --this.room > 0;
  }
  drain(room: number): void {
    this.room = room;
    this.emit('drain');
  }
}

const ack = (streamId: string, ackedThrough: bigint): ControllerMessage => ({ payload: { $case: 'ack', value: { streamId, ackedThrough, gapRecords: 0n } } });
const stop = (runId: string): ControllerMessage => ({ payload: { $case: 'stop', value: { commandId: `c-${runId}`, runId } } });
const cases = (s: FakeSink) => s.written.map((m) => (m.payload?.$case === 'ack' ? `ack ${m.payload.value.streamId}:${m.payload.value.ackedThrough}` : m.payload?.$case));

describe('OutboundQueue', () => {
  it('stops writing when write() says false and goes on at drain, in order', () => {
    const sink = new FakeSink(2);
    const q = new OutboundQueue(sink, () => { throw new Error('no overflow expected'); });
    q.push(stop('a'));
    q.push(stop('b'));
    q.push(stop('c'));
    q.push(ack('s', 5n));
    expect(cases(sink)).toEqual(['stop', 'stop']);
    expect(q.length).toBe(2);
    sink.drain(10);
    expect(cases(sink)).toEqual(['stop', 'stop', 'stop', 'ack s:5']);
    expect(q.counters).toMatchObject({ sent: 4, drainWaits: 1, dropped: 0 });
  });

  it('merges a newer ack into the queued ack of the same stream: nothing is lost', () => {
    const sink = new FakeSink(1);
    const q = new OutboundQueue(sink, () => undefined);
    q.push(stop('a')); // fills the sink
    q.push(ack('s', 5n));
    q.push(ack('t', 2n));
    const later = ack('s', 9n);
    q.push(later);
    sink.drain(10);
    expect(cases(sink)).toEqual(['stop', 'ack s:9', 'ack t:2']);
    expect(q.counters.coalesced).toBe(1);
    q.push(ack('s', 12n)); // nothing queued for s now: sent as is
    expect(cases(sink).at(-1)).toBe('ack s:12');
  });

  it('drops droppable messages once half full and counts them; commands and acks never', () => {
    const sink = new FakeSink(1);
    const overflows: string[] = [];
    const q = new OutboundQueue(sink, (why) => overflows.push(why), { maxMessages: 4 });
    q.push(stop('x')); // written, sink full
    q.push(stop('a'));
    q.push(stop('b'));
    q.push({ payload: { $case: 'config', value: { heartbeatMs: 1, spoolMaxBytes: 0n, batchMaxRecords: 0, batchMaxBytes: 0, batchMaxDelayMs: 0 } } },
      { droppable: true });
    expect(q.counters.dropped).toBe(1);
    q.push(ack('s', 1n));
    q.push(stop('c'));
    expect(q.length).toBe(4);
    expect(overflows).toEqual([]);
    q.push(stop('d')); // a command that does not fit: the session must close
    expect(overflows).toEqual(['outbound queue full (4 messages, 512 bytes queued): the agent does not read what the controller sends; it should reconnect']);
    expect(q.counters.discarded).toBe(4);
    sink.drain(10);
    expect(cases(sink)).toEqual(['stop']); // nothing more after closing
  });

  it('bounds bytes too: a bundle too big for the queue closes the session', () => {
    const sink = new FakeSink(1);
    const overflows: string[] = [];
    const q = new OutboundQueue(sink, (why) => overflows.push(why), { maxBytes: 10_000 });
    q.push(stop('x'));
    q.push({ payload: { $case: 'deploy', value: { commandId: 'c', probe: 'p', version: '1', arch: 'x86_64', signature: Buffer.alloc(64),
      files: [{ path: 'p', content: Buffer.alloc(20_000), sha256: '', mode: 0o755 }] } } });
    expect(overflows).toHaveLength(1);
  });
});
