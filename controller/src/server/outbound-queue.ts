// The per-session outbound queue: messages to one agent wait here, in order, and are written
// one by one honouring backpressure (write() false: wait for 'drain'). It is bounded. Droppable
// messages are dropped and counted once it is half full; acks are cumulative, so a queued ack
// for a stream is updated in place by a newer one (coalesced, counted, nothing lost); anything
// else that does not fit closes the session: an agent that does not read cannot be served, and
// it resumes from its spool when it reconnects.
import type { Ack, ControllerMessage } from '@bpfleet/proto';

export interface MessageSink {
  write(msg: ControllerMessage): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export interface OutboundQueueOptions {
  /** Messages held before the session is closed (default 1024). */
  maxMessages?: number;
  /** Bytes held before the session is closed (default 64 MiB: a few bundles). */
  maxBytes?: number;
}

export interface OutboundCounters {
  /** Messages handed to the stream. */
  sent: number;
  /** Droppable messages dropped because the queue was backed up. */
  dropped: number;
  /** Acks merged into a queued ack of the same stream. */
  coalesced: number;
  /** Times a write() returned false and the queue waited for 'drain'. */
  drainWaits: number;
  /** Messages thrown away when the session closed with them still queued. */
  discarded: number;
}

interface Entry {
  msg: ControllerMessage;
  bytes: number;
}

/** Rough wire size: what bounds memory is the bundle contents. */
function sizeOf(msg: ControllerMessage): number {
  const p = msg.payload;
  if (p?.$case === 'deploy') return 512 + p.value.files.reduce((n, f) => n + f.content.length + f.path.length + 80, 0);
  if (p?.$case === 'welcome') return 64 + p.value.acked.reduce((n, a) => n + a.streamId.length + 24, 0);
  return 128;
}

export class OutboundQueue {
  readonly counters: OutboundCounters = { sent: 0, dropped: 0, coalesced: 0, drainWaits: 0, discarded: 0 };
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private queue: Entry[] = [];
  private queuedBytes = 0;
  private readonly queuedAcks = new Map<string, Ack>();
  private waitingForDrain = false;
  private closed = false;

  constructor(private readonly sink: MessageSink, private readonly overflow: (why: string) => void, opts: OutboundQueueOptions = {}) {
    this.maxMessages = opts.maxMessages ?? 1024;
    this.maxBytes = opts.maxBytes ?? 64 << 20;
  }

  get length(): number {
    return this.queue.length;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  push(msg: ControllerMessage, opts: { droppable?: boolean } = {}): void {
    if (this.closed) return;
    const p = msg.payload;
    if (p?.$case === 'ack') {
      const queued = this.queuedAcks.get(p.value.streamId);
      if (queued) {
        if (p.value.ackedThrough > queued.ackedThrough) queued.ackedThrough = p.value.ackedThrough;
        queued.gapRecords += p.value.gapRecords;
        this.counters.coalesced++;
        return;
      }
    }
    const bytes = sizeOf(msg);
    if (opts.droppable && (this.queue.length >= this.maxMessages / 2 || this.queuedBytes + bytes > this.maxBytes / 2)) {
      this.counters.dropped++;
      return;
    }
    if (this.queue.length >= this.maxMessages || this.queuedBytes + bytes > this.maxBytes) {
      const why = `outbound queue full (${this.queue.length} messages, ${this.queuedBytes} bytes queued): the agent does ` +
        'not read what the controller sends; it should reconnect';
      this.close();
      this.overflow(why);
      return;
    }
    if (p?.$case === 'ack') {
      // Queue a copy, so coalescing never changes a message the caller still holds.
      const ack = { ...p.value };
      this.queuedAcks.set(ack.streamId, ack);
      msg = { payload: { $case: 'ack', value: ack } };
    }
    this.queue.push({ msg, bytes });
    this.queuedBytes += bytes;
    this.pump();
  }

  private pump(): void {
    while (!this.waitingForDrain && !this.closed && this.queue.length > 0) {
      const e = this.queue.shift()!;
      this.queuedBytes -= e.bytes;
      if (e.msg.payload?.$case === 'ack') this.queuedAcks.delete(e.msg.payload.value.streamId);
      this.counters.sent++;
      if (!this.sink.write(e.msg)) {
        this.waitingForDrain = true;
        this.counters.drainWaits++;
        this.sink.once('drain', () => {
          this.waitingForDrain = false;
          this.pump();
        });
      }
    }
  }

  /** Stops writing; whatever is still queued is discarded (and counted). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.counters.discarded += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedAcks.clear();
  }
}
