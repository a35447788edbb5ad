// Group commit: batches from every session wait at most `intervalMs`, or until `maxBytes` of
// records are pending, and are then stored in one transaction (Store.ingestMany). One commit
// (and its fsync, when there is one) serves many batches, which is what lets one controller keep
// up with a fleet. The cap is bytes, not batches: a commit's cost is the bytes it writes.
import type { EventBatch } from '@bpfleet/proto';
import type { Quantiles } from '../metrics/exposition.js';
import { WindowHistogram } from '../metrics/window-histogram.js';
import type { IngestOutcome, Store } from '../store/store.js';

export interface GroupCommitOptions {
  /** Longest a batch waits for its commit (default 20 ms). */
  intervalMs?: number;
  /** Commit as soon as this many record bytes are pending; also the most one commit takes (default 2 MiB). */
  maxBytes?: number;
  /** Beyond this many bytes pending or being committed, add() waits: sessions stop reading (default 16 MiB). */
  maxPendingBytes?: number;
}

export interface CommitEntry<C> {
  deviceId: string;
  batch: EventBatch;
  /** What the caller needs to answer once the commit is done (the session). */
  context: C;
  bytes: number;
  addedAtMs: number;
}

export interface CommitSink<C> {
  /** The commit went through: one outcome per entry, in order. */
  committed(entries: CommitEntry<C>[], outcomes: IngestOutcome[]): void;
  /** The transaction failed as a whole (disk full, database locked): nothing of it was stored. */
  failed(entries: CommitEntry<C>[], error: unknown): void;
}

export interface GroupCommitCounters {
  /** Batches handed to add(). */
  batches: number;
  /** Transactions committed. */
  commits: number;
  /** Transactions that failed, and the batches they held. */
  failedCommits: number;
  failedBatches: number;
  /** Record bytes committed. */
  bytes: number;
  /** Times add() made a session wait because too much was pending. */
  waits: number;
}

/** Bytes an entry counts for: its records plus a little for the rest of the message. */
const entryBytes = (b: EventBatch) => b.records.length + 64 + b.intervalIndex.length * 4;

export class GroupCommit<C> {
  readonly counters: GroupCommitCounters = { batches: 0, commits: 0, failedCommits: 0, failedBatches: 0, bytes: 0, waits: 0 };
  private readonly intervalMs: number;
  private readonly maxBytes: number;
  private readonly maxPendingBytes: number;
  private pending: CommitEntry<C>[] = [];
  private pendingBytes = 0;
  private committingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The next commit when a full one is already waiting: after the event loop had a turn. */
  private immediate: NodeJS.Immediate | undefined;
  private running: Promise<void> | undefined;
  private roomWaiters: (() => void)[] = [];
  /** How long each store transaction took (SQLite: the main thread is held that long). */
  private readonly commitTimes = new WindowHistogram();

  constructor(private readonly store: Pick<Store, 'ingestMany'>, private readonly sink: CommitSink<C>,
    opts: GroupCommitOptions = {}, private readonly now: () => number = Date.now) {
    this.intervalMs = opts.intervalMs ?? 20;
    this.maxBytes = opts.maxBytes ?? 2 << 20;
    this.maxPendingBytes = Math.max(opts.maxPendingBytes ?? 16 << 20, this.maxBytes);
  }

  /** Queues a batch; resolves at once, or once there is room again when too much is pending. */
  add(deviceId: string, batch: EventBatch, context: C): Promise<void> {
    const bytes = entryBytes(batch);
    this.pending.push({ deviceId, batch, context, bytes, addedAtMs: this.now() });
    this.pendingBytes += bytes;
    this.counters.batches++;
    if (this.pendingBytes >= this.maxBytes) this.kick();
    else this.arm();
    if (this.pendingBytes + this.committingBytes <= this.maxPendingBytes) return Promise.resolve();
    this.counters.waits++;
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Commit durations over the last 60 to 90 s, seconds: p50, p99 and the longest. */
  commitSeconds(): Quantiles {
    return this.commitTimes.quantiles();
  }

  /** Bytes waiting for, or in, a commit. */
  get backlogBytes(): number {
    return this.pendingBytes + this.committingBytes;
  }

  /** Commits everything pending now; resolves when it is stored (or failed). */
  async flush(): Promise<void> {
    while (this.pending.length > 0 || this.running) {
      this.kick();
      await this.running;
    }
  }

  private arm(): void {
    if (this.timer || this.immediate || this.running || this.pending.length === 0) return;
    const age = this.now() - this.pending[0]!.addedAtMs;
    this.timer = setTimeout(() => { this.timer = undefined; this.kick(); }, Math.max(0, this.intervalMs - age));
  }

  private kick(): void {
    if (this.running) return;
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.immediate) { clearImmediate(this.immediate); this.immediate = undefined; }
    this.running = this.commitOnce().finally(() => {
      this.running = undefined;
      this.wakeWaiters();
      // A full commit is waiting already: take it after the event loop's next turn, not at once.
      // A synchronous store (SQLite) holds the loop for each transaction; chained in microtasks,
      // a backlog of several commits held it for over a second (measured at 1,000 devices),
      // and no ack, keepalive ping or incoming batch was handled in between.
      if (this.pendingBytes >= this.maxBytes) this.immediate = setImmediate(() => { this.immediate = undefined; this.kick(); });
      else this.arm();
    });
  }

  private async commitOnce(): Promise<void> {
    // Take up to maxBytes (always at least one entry: a single batch may be larger).
    let n = 0, bytes = 0;
    while (n < this.pending.length && (n === 0 || bytes + this.pending[n]!.bytes <= this.maxBytes)) bytes += this.pending[n++]!.bytes;
    const entries = this.pending.splice(0, n);
    this.pendingBytes -= bytes;
    this.committingBytes += bytes;
    try {
      let outcomes: IngestOutcome[];
      const t0 = performance.now();
      try {
        outcomes = await this.store.ingestMany(entries.map((e) => ({ deviceId: e.deviceId, batch: e.batch })));
        this.commitTimes.record((performance.now() - t0) * 1e6);
      } catch (err) {
        this.counters.failedCommits++;
        this.counters.failedBatches += entries.length;
        this.sink.failed(entries, err);
        return;
      }
      this.counters.commits++;
      this.counters.bytes += bytes;
      this.sink.committed(entries, outcomes);
    } finally {
      this.committingBytes -= bytes;
    }
  }

  private wakeWaiters(): void {
    if (this.pendingBytes + this.committingBytes > this.maxPendingBytes) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w();
  }

  /** Commits what is pending and stops the timer. */
  async close(): Promise<void> {
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.commitTimes.close();
    this.wakeWaiters();
  }
}
