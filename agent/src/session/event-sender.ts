// Sends spooled event batches to the controller: after each Welcome everything unacknowledged
// (replay, in log order), then each new batch as it is spooled (live). The spool is the only
// buffer: when the link backs up, new batches are not queued in memory but read back from the
// spool once it drains, so a slow controller never slows the probes, it only grows the spool.
import type { EventBatch } from '@bpfleet/proto';
import type { Spool } from '../spool/index.js';
import type { Transport } from '../transport/index.js';

type Mode = 'off' | 'catching-up' | 'live';

function lastSeq(b: Pick<EventBatch, 'firstSeq' | 'count'>): bigint {
  return b.firstSeq + BigInt(b.count) - 1n;
}

export interface EventSenderCounters {
  /** Batches sent straight after spooling. */
  live: number;
  /** Batches read back from the spool and sent (replay after a connect, catch-up after backpressure). */
  replayed: number;
}

export class EventSender {
  private mode: Mode = 'off';
  /** Per stream, the highest sequence number handed to the transport on this connection. */
  private sentThrough = new Map<string, bigint>();
  /** A batch was spooled since the current catch-up pass took its snapshot. */
  private dirty = false;
  private pumping: Promise<void> | undefined;
  private again = false;
  private generation = 0;
  private idleWaiters: (() => void)[] = [];
  readonly counters: EventSenderCounters = { live: 0, replayed: 0 };

  constructor(
    private readonly spool: Spool,
    private readonly transport: Transport,
    private readonly log: (line: string) => void,
  ) {}

  /** True once everything spooled has been handed to the transport on this connection. */
  get isLive(): boolean {
    return this.mode === 'live';
  }

  /** The controller welcomed us (its acks applied to the spool): replay, then go live. */
  start(): void {
    this.generation++;
    this.sentThrough.clear();
    this.mode = 'catching-up';
    this.dirty = true;
    this.kick();
  }

  /** The link is down: send nothing until the next start(). */
  stop(): void {
    this.generation++;
    this.mode = 'off';
    this.sentThrough.clear();
    this.wakeIdle();
  }

  /** A batch was just spooled as `batch` (with its sequence numbers). */
  spooled(batch: EventBatch): void {
    if (this.mode === 'off') return;
    if (this.mode === 'live') {
      const prev = this.sentThrough.get(batch.streamId);
      if (this.transport.writable && (prev === undefined || prev === batch.firstSeq - 1n)) {
        this.sendDirect(batch);
        return;
      }
      this.mode = 'catching-up'; // backed up: the spool holds it until the link drains
    }
    this.dirty = true;
    this.kick();
  }

  /** Can a batch the spool refused be sent now, right away? */
  get canSendUnspooled(): boolean {
    return this.mode === 'live' && this.transport.writable;
  }

  /** Sends a batch now without the spool (it refused it); it is lost if this send fails. */
  sendDirect(batch: EventBatch): void {
    this.sentThrough.set(batch.streamId, lastSeq(batch));
    this.counters.live++;
    this.transport.send({ payload: { $case: 'eventBatch', value: batch } }).catch(() => undefined);
  }

  /** Resolves when everything spooled so far was handed to the transport, or it went down. */
  idle(): Promise<void> {
    if (this.mode !== 'catching-up') return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private kick(): void {
    if (this.pumping !== undefined) {
      this.again = true;
      return;
    }
    this.pumping = this.pump()
      .catch((err: unknown) => {
        this.log(`session: replay from the spool failed: ${(err as Error).message}; retrying on the next connection`);
        if (this.mode === 'catching-up') this.mode = 'off';
      })
      .finally(() => {
        this.pumping = undefined;
        if (this.again && this.mode === 'catching-up') {
          this.again = false;
          this.kick();
        } else {
          this.wakeIdle();
        }
      });
  }

  /**
   * Passes over the spool until one finds nothing spooled after its snapshot, then goes live in
   * the same tick as that check: no batch can slip between the last pass and live sending.
   */
  private async pump(): Promise<void> {
    const gen = this.generation;
    while (this.mode === 'catching-up' && gen === this.generation) {
      this.again = false;
      this.dirty = false;
      // replay() snapshots the log now, before its first await: anything later sets dirty.
      for await (const batch of this.spool.replay()) {
        if (gen !== this.generation) return;
        if (lastSeq(batch) <= (this.sentThrough.get(batch.streamId) ?? 0n)) continue;
        try {
          await this.transport.send({ payload: { $case: 'eventBatch', value: batch } });
        } catch {
          return; // down: the 'down' event stops us; the next connection replays
        }
        if (gen !== this.generation) return;
        this.sentThrough.set(batch.streamId, lastSeq(batch));
        this.counters.replayed++;
      }
      if (gen !== this.generation) return;
      if (!this.dirty) {
        this.mode = 'live';
        return;
      }
    }
  }

  private wakeIdle(): void {
    if (this.mode === 'catching-up' && this.pumping !== undefined) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
