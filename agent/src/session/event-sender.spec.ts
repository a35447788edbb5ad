// EventSender against a real spool and a scripted transport: replay before live, backpressure
// served from a bounded in-memory tail and past it from the spool, no batch lost, sent twice or
// reordered across the switches.
import type { AgentMessage, ControllerMessage, EventBatch } from '@bpfleet/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool } from '../spool/index.js';
import { makeBatch, removeTempDirs, tempDir } from '../spool/spool-fixtures.js';
import { TransportDownError, type Transport, type TransportEvents } from '../transport/index.js';
import { EventSender } from './event-sender.js';

/** A link whose buffer holds `capacity` messages; drain() empties it. */
class ScriptedTransport implements Transport {
  isUp = true;
  capacity = Infinity;
  buffered = 0;
  readonly sent: EventBatch[] = [];
  private waiters: { msg: AgentMessage; resolve: () => void; reject: (e: Error) => void }[] = [];

  get writable(): boolean {
    return this.isUp && this.buffered < this.capacity && this.waiters.length === 0;
  }
  // The sender only sends; the session handles connection events.
  connect(): void {
    this.isUp = true;
  }
  onMessage(_h: (m: ControllerMessage) => void): void {
    return undefined;
  }
  on<E extends keyof TransportEvents>(_e: E, _l: TransportEvents[E]): void {
    return undefined;
  }
  reconnect(): void {
    this.down();
  }
  close(): Promise<void> {
    this.down();
    return Promise.resolve();
  }

  send(msg: AgentMessage): Promise<void> {
    if (!this.isUp) return Promise.reject(new TransportDownError('down'));
    if (!this.writable) return new Promise((resolve, reject) => this.waiters.push({ msg, resolve, reject }));
    this.take(msg);
    return Promise.resolve();
  }

  private take(msg: AgentMessage): void {
    if (msg.payload?.$case === 'eventBatch') this.sent.push(msg.payload.value);
    this.buffered++;
  }

  drain(): void {
    this.buffered = 0;
    while (this.waiters.length > 0 && this.buffered < this.capacity) {
      const w = this.waiters.shift()!;
      this.take(w.msg);
      w.resolve();
    }
  }

  down(): void {
    this.isUp = false;
    for (const w of this.waiters.splice(0)) w.reject(new TransportDownError('down'));
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

/**
 * Drains the transport every 5 ms until `done` holds or 10 s have passed (the caller's expect
 * says what was missing): bounded by time, not by a count of ticks, since the spool's reads
 * take longer on a loaded machine. `each` runs after every drain.
 */
async function drainUntil(t: ScriptedTransport, done: () => boolean, each?: (i: number) => Promise<void>): Promise<void> {
  const until = Date.now() + 10_000;
  for (let i = 0; !done() && Date.now() < until; i++) {
    t.drain();
    await tick();
    await each?.(i);
  }
}

async function spoolWith(dir: string): Promise<Spool> {
  return Spool.open({ dir, maxBytes: 16 << 20, log: () => undefined });
}

async function appendAndOffer(spool: Spool, sender: EventSender, stream: string, count: number): Promise<void> {
  const b = makeBatch(count);
  const { firstSeq } = await spool.append(stream, b);
  sender.spooled({ streamId: stream, firstSeq, count, records: Buffer.from(b.records), recordSize: b.recordSize, schemaId: b.schemaId, clockOffsetNs: b.clockOffsetNs, intervalIndex: [] });
}

function seqsOf(sent: EventBatch[], stream: string): bigint[] {
  return sent.filter((b) => b.streamId === stream).flatMap((b) => Array.from({ length: b.count }, (_, i) => b.firstSeq + BigInt(i)));
}

const range = (from: number, to: number): bigint[] => Array.from({ length: to - from + 1 }, (_, i) => BigInt(from + i));

describe('EventSender', () => {
  afterEach(() => removeTempDirs());

  it('replays the spool first, then sends live, in order, with no batch twice', async () => {
    const spool = await spoolWith(tempDir('sender-replay'));
    const t = new ScriptedTransport();
    const sender = new EventSender(spool, t, () => undefined);
    for (let i = 0; i < 5; i++) await appendAndOffer(spool, sender, 's/a/1', 3); // down: spooled only
    expect(t.sent).toHaveLength(0);
    sender.start();
    // Appends racing the replay are picked up by a later pass, not sent out of order.
    for (let i = 0; i < 5; i++) {
      await appendAndOffer(spool, sender, 's/a/1', 2);
      await appendAndOffer(spool, sender, 's/b/1', 1);
    }
    await sender.idle();
    expect(sender.isLive).toBe(true);
    await appendAndOffer(spool, sender, 's/a/1', 4);
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(1, 29));
    expect(seqsOf(t.sent, 's/b/1')).toEqual(range(1, 5));
    expect(sender.counters.live).toBeGreaterThanOrEqual(1);
    await spool.close();
  });

  it('without a tail, under backpressure serves new batches from the spool once the link drains, never more than one in flight', async () => {
    const spool = await spoolWith(tempDir('sender-bp'));
    const t = new ScriptedTransport();
    t.capacity = 2;
    const sender = new EventSender(spool, t, () => undefined, 0);
    sender.start();
    await sender.idle();
    expect(sender.isLive).toBe(true);
    for (let i = 0; i < 20; i++) await appendAndOffer(spool, sender, 's/a/1', 1);
    await tick();
    // Two went out live; the rest wait in the spool, not in memory.
    expect(t.sent).toHaveLength(2);
    expect(sender.isLive).toBe(false);
    await drainUntil(t, () => t.sent.length >= 20);
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(1, 20));
    await sender.idle();
    t.drain();
    await tick();
    expect(sender.isLive).toBe(true);
    await appendAndOffer(spool, sender, 's/a/1', 1);
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(1, 21));
    await spool.close();
  });

  it('serves a short backpressure from the in-memory tail: in order, nothing read back from the spool', async () => {
    const spool = await spoolWith(tempDir('sender-tail'));
    const t = new ScriptedTransport();
    t.capacity = 2;
    const sender = new EventSender(spool, t, () => undefined);
    sender.start();
    await sender.idle();
    for (let i = 0; i < 20; i++) await appendAndOffer(spool, sender, 's/a/1', 1);
    await tick();
    expect(t.sent).toHaveLength(2);
    expect(sender.isLive).toBe(false);
    await drainUntil(t, () => sender.isLive);
    expect(sender.isLive).toBe(true);
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(1, 20));
    expect(sender.counters).toMatchObject({ replayed: 0, tailOverflows: 0, live: 20 });
    t.drain();
    await appendAndOffer(spool, sender, 's/a/1', 1);
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(1, 21));
    await spool.close();
  });

  it('reads a backlog beyond the tail\'s bound back from the spool, then goes live again', async () => {
    const spool = await spoolWith(tempDir('sender-overflow'));
    const t = new ScriptedTransport();
    t.capacity = 2;
    // Room for three 10-record batches (880 bytes of records each) in memory.
    const sender = new EventSender(spool, t, () => undefined, 3 * (880 + 64));
    sender.start();
    await sender.idle();
    for (let i = 0; i < 20; i++) {
      await appendAndOffer(spool, sender, 's/a/1', 10);
      await appendAndOffer(spool, sender, 's/b/1', 10);
    }
    expect(sender.counters.tailOverflows).toBe(1);
    // Keep spooling while it catches up: later batches join a new tail.
    await drainUntil(t, () => sender.isLive, async (i) => {
      if (i < 5) await appendAndOffer(spool, sender, 's/a/1', 10);
    });
    expect(sender.isLive).toBe(true);
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(1, 250));
    expect(seqsOf(t.sent, 's/b/1')).toEqual(range(1, 200));
    expect(sender.counters.replayed).toBeGreaterThan(0);
    await spool.close();
  });

  it('goes live after a catch-up although batches keep being spooled faster than a pass reads them back', async () => {
    const spool = await spoolWith(tempDir('sender-steady'));
    const t = new ScriptedTransport();
    const sender = new EventSender(spool, t, () => undefined);
    for (let i = 0; i < 300; i++) await appendAndOffer(spool, sender, 's/a/1', 50); // spooled while down
    sender.start();
    // A batch every millisecond, as a busy probe spools them, for up to 5 s.
    let appended = 300;
    let liveWhileSpooling = false;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (sender.isLive || appended >= 5300) {
          liveWhileSpooling = sender.isLive;
          clearInterval(timer);
          resolve();
          return;
        }
        appended++;
        void appendAndOffer(spool, sender, 's/a/1', 50);
      }, 1);
    });
    expect(liveWhileSpooling).toBe(true);
    await sender.idle();
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(1, appended * 50));
    await spool.close();
  });

  it('stops at a loss and starts over from the spool (minus acks) on the next connection', async () => {
    const spool = await spoolWith(tempDir('sender-down'));
    const t = new ScriptedTransport();
    t.capacity = 1;
    const sender = new EventSender(spool, t, () => undefined);
    for (let i = 0; i < 6; i++) await appendAndOffer(spool, sender, 's/a/1', 2);
    sender.start();
    await tick();
    t.down();
    sender.stop();
    await sender.idle();
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(1, 2));
    spool.ack('s/a/1', 2n);
    for (let i = 0; i < 2; i++) await appendAndOffer(spool, sender, 's/a/1', 2); // while down
    t.isUp = true;
    t.capacity = Infinity;
    t.sent.length = 0;
    sender.start();
    await sender.idle();
    expect(seqsOf(t.sent, 's/a/1')).toEqual(range(3, 16));
    await spool.close();
  });
});
