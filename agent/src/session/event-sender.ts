// Sends spooled event batches to the controller: after each Welcome everything unacknowledged
// (replay, in log order), then each new batch as it is spooled (live). A slow controller never
// slows the probes, it only grows the spool. When the link backs up, new batches wait in a
// bounded in-memory tail (they are in the spool already) and go out from there once it drains;
// only a backlog beyond that bound, or a new connection, is read back from the spool.
//
// Why the tail: reading back costs a few async reads per batch, so at high rates a catch-up pass
// from the spool is slower than the batches arriving meanwhile. Without the tail, a pass could
// go live only if nothing was spooled while it ran, so one short stall of the link (an MQTT
// in-flight window full for a few hundred ms) left the sender replaying from disk for good.
import type { EventBatch } from '@bpfleet/proto';
import type { Spool } from '../spool/index.js';
import type { Transport } from '../transport/index.js';

type Mode = 'off' | 'catching-up' | 'live';

function lastSeq(b: Pick<EventBatch, 'firstSeq' | 'count'>): bigint {
  return b.firstSeq + BigInt(b.count) - 1n;
}

export interface EventSenderCounters {
  /** Batches sent straight after spooling, or from the in-memory tail after a short backpressure. */
  live: number;
  /** Batches read back from the spool and sent (replay after a connect, catch-up after backpressure). */
  replayed: number;
  /** Times the tail outgrew its bound and the backlog had to be read back from the spool. */
  tailOverflows: number;
}

/** Default bound of the in-memory tail: ~0.5 s of 88-byte records at 200,000/s, 32 batches at the 256 KiB batch limit. */
export const DEFAULT_TAIL_BYTES = 8 << 20;

const batchBytes = (b: EventBatch): number => b.records.length + 64;

export class EventSender {
  private mode: Mode = 'off';
  /** Per stream, the highest sequence number handed to the transport on this connection. */
  private sentThrough = new Map<string, bigint>();
  /** Something unsent is only in the spool (connect, tail overflow, a gap): a pass must read it back. */
  private needSpool = false;
  /** Batches spooled since live sending stopped (or since the running pass's snapshot), in order. */
  private tail: EventBatch[] = [];
  private tailBytes = 0;
  private pumping: Promise<void> | undefined;
  private again = false;
  private generation = 0;
  private idleWaiters: (() => void)[] = [];
  readonly counters: EventSenderCounters = { live: 0, replayed: 0, tailOverflows: 0 };

  constructor(
    private readonly spool: Spool,
    private readonly transport: Transport,
    private readonly log: (line: string) => void,
    /** Bound of the in-memory tail in record bytes; 0: every backlog is read back from the spool. */
    private readonly maxTailBytes = DEFAULT_TAIL_BYTES,
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
    this.needSpool = true;
    this.kick();
  }

  /** The link is down: send nothing until the next start(). */
  stop(): void {
    this.generation++;
    this.mode = 'off';
    this.sentThrough.clear();
    this.dropTail();
    this.wakeIdle();
  }

  /** A batch was just spooled as `batch` (with its sequence numbers). */
  spooled(batch: EventBatch): void {
    if (this.mode === 'off') return;
    if (this.mode === 'live') {
      if (this.transport.writable && this.follows(batch)) {
        this.sendDirect(batch);
        return;
      }
      this.mode = 'catching-up'; // backed up: the tail (or past its bound, the spool) holds it until the link drains
    }
    if (this.tailBytes + batchBytes(batch) > this.maxTailBytes) {
      if (!this.needSpool) this.counters.tailOverflows++;
      this.needSpool = true; // the next pass reads it back; it snapshots the spool and starts a new tail
      this.dropTail();
    } else {
      this.tail.push(batch);
      this.tailBytes += batchBytes(batch);
    }
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
        this.dropTail();
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
   * Reads the spool back when something unsent is only there, then sends the tail (what was
   * spooled after that pass's snapshot, or since live sending stopped), and goes live in the same
   * tick as finding the tail empty: no batch can slip between the last send and live sending.
   */
  private async pump(): Promise<void> {
    const gen = this.generation;
    while (this.mode === 'catching-up' && gen === this.generation) {
      this.again = false;
      if (this.needSpool) {
        this.needSpool = false;
        // replay() snapshots the log now, before its first await: whatever is spooled later joins the tail.
        this.dropTail();
        for await (const batch of this.spool.replay()) {
          if (gen !== this.generation) return;
          if (this.sent(batch)) continue;
          if (!(await this.send(batch, gen))) return;
          this.counters.replayed++;
        }
        if (gen !== this.generation) return;
      }
      while (!this.needSpool && this.tail.length > 0) {
        const batch = this.tail.shift() as EventBatch;
        this.tailBytes -= batchBytes(batch);
        if (this.sent(batch)) continue;
        if (!this.follows(batch)) {
          this.needSpool = true; // a gap before it: only the spool has what is missing
          break;
        }
        if (!(await this.send(batch, gen))) return;
        this.counters.live++;
      }
      if (gen !== this.generation) return;
      if (!this.needSpool) {
        this.mode = 'live';
        return;
      }
    }
  }

  /** Sends `batch`; false when the link went down or the connection was replaced meanwhile. */
  private async send(batch: EventBatch, gen: number): Promise<boolean> {
    try {
      await this.transport.send({ payload: { $case: 'eventBatch', value: batch } });
    } catch {
      return false; // down: the 'down' event stops us; the next connection replays
    }
    if (gen !== this.generation) return false;
    this.sentThrough.set(batch.streamId, lastSeq(batch));
    return true;
  }

  /** Did this connection send all of `batch` already? */
  private sent(batch: EventBatch): boolean {
    return lastSeq(batch) <= (this.sentThrough.get(batch.streamId) ?? 0n);
  }

  /** Does `batch` come right after what this connection sent of its stream (or is the stream new here)? */
  private follows(batch: EventBatch): boolean {
    const prev = this.sentThrough.get(batch.streamId);
    return prev === undefined || prev === batch.firstSeq - 1n;
  }

  private dropTail(): void {
    this.tail = [];
    this.tailBytes = 0;
  }

  private wakeIdle(): void {
    if (this.mode === 'catching-up' && this.pumping !== undefined) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
