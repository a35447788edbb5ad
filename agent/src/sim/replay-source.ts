// A loader stand-in for the fleet simulator: replays recorded `<probe> --machine` output (its
// HELLO and EVENT frames) at a fixed rate, with fresh timestamps, through the same handlers a
// real LoaderProcess feeds (ProbeRun: batcher, delivery queue, the session's spool). It behaves
// like a loader where the pipeline can tell: STATS frames with cumulative counts on the
// --stats-interval the agent asked for, a `ready` line, pause/resume as the pipe filling up, and
// a bounded "kernel ring buffer" while paused whose overflow is counted as ringbuf_full, never
// silently dropped.
import { readFileSync } from 'node:fs';
import { FrameKind, readFrames, type Frame, type Manifest } from '@bpfleet/proto';
import type { LoaderEnd, LoaderFactory, LoaderHandle, LoaderProcessHandlers } from '../probes/index.js';

export interface Recording {
  probe: string;
  recordSize: number;
  /** The recorded HELLO, parsed (clock_offset_ns is replaced at replay). */
  hello: Record<string, unknown>;
  /** Recorded EVENT payloads, each recordSize bytes. */
  records: Buffer[];
  /** Offset of the u64 ktime_ns field rewritten to the replay time. */
  tsOffset: number;
}

/** Reads a `--machine` capture (HELLO then EVENT frames) and the probe's manifest. */
export function loadRecording(captureFile: string, manifest: Manifest): Recording {
  return parseRecording(readFileSync(captureFile), manifest);
}

export function parseRecording(data: Buffer, manifest: Manifest): Recording {
  const frames = readFrames(data);
  const hello = frames.find((f) => f.kind === FrameKind.Hello);
  if (hello === undefined) throw new Error('recording has no HELLO frame');
  const helloJson = JSON.parse(hello.payload.toString('utf8')) as Record<string, unknown>;
  const size = manifest.record.size;
  if (helloJson['record_size'] !== size) throw new Error(`recording has record_size ${String(helloJson['record_size'])}, manifest says ${size}`);
  const records = frames.filter((f) => f.kind === FrameKind.Event).map((f) => Buffer.from(f.payload));
  if (records.length === 0) throw new Error('recording has no EVENT frames');
  if (records.some((r) => r.length !== size)) throw new Error(`recording holds records that are not ${size} bytes`);
  const ts = manifest.record.fields.find((f) => f.format === 'ktime_ns' && f.size === 8);
  if (ts === undefined) throw new Error(`manifest of ${manifest.probe} has no 8-byte ktime_ns field to stamp`);
  return { probe: manifest.probe, recordSize: size, hello: helloJson, records, tsOffset: ts.offset };
}

/** Counters shared by every replay of one worker (the sim's own loss accounting). */
export interface ReplayCounters {
  /** Records generated (what the "kernel" produced). */
  generated: number;
  /** Records written to the agent (the loader's `records`). */
  written: number;
  /** Generated while the ring was full: the kernel stage's loss (ringbuf_full). */
  ringbufFull: number;
  /** Replays started and ended. */
  started: number;
  ended: number;
}

export const newReplayCounters = (): ReplayCounters => ({ generated: 0, written: 0, ringbufFull: 0, started: 0, ended: 0 });

export interface ReplayOptions {
  recording: Recording;
  /** Events per second. */
  rate: number;
  /** Stop generating after this long and exit 0 like a loader run with --duration; default: until signalled. */
  durationMs?: number;
  /**
   * Generation (and the durationMs clock) starts when this resolves; HELLO and `ready` come at
   * once. The sim opens it for every device together, after the deploy reached them all.
   */
  gate?: Promise<void>;
  /**
   * Generation tick. Default: 100 ms, shortened at high rates so one tick never makes more than a
   * quarter of the ring (a kernel produces continuously; a 100 ms burst of 20,000 records at
   * 200,000/s would overflow a 256 KiB ring that the real loader drains as it fills).
   */
  tickMs?: number;
  /** Records the "ring buffer" holds while the agent does not read (default: 256 KiB worth). */
  ringRecords?: number;
  counters?: ReplayCounters;
}

function statsInterval(argv: string[]): number {
  const i = argv.indexOf('--stats-interval');
  const v = i >= 0 ? Number(argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : 1000;
}

const monoNs = (): bigint => process.hrtime.bigint();

let nextPseudoPid = 1 << 22;

export class ReplayLoader implements LoaderHandle {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly ended: Promise<LoaderEnd>;
  readonly pid = nextPseudoPid++;
  private exitedFlag = false;
  private paused = false;
  private stopping = false;
  private readonly ring: Buffer[] = [];
  private readonly ringMax: number;
  private startedAt = Date.now();
  private cursor = 0;
  private generated = 0;
  private written = 0;
  private ringbufFull = 0;
  private tick: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private resolveExit!: (e: { code: number | null; signal: NodeJS.Signals | null }) => void;
  private resolveEnd!: (e: LoaderEnd) => void;
  private readonly counters: ReplayCounters;

  constructor(argv: string[], private readonly handlers: LoaderProcessHandlers, private readonly opts: ReplayOptions) {
    this.counters = opts.counters ?? newReplayCounters();
    this.counters.started++;
    this.ringMax = opts.ringRecords ?? Math.max(1, Math.floor((256 * 1024) / opts.recording.recordSize));
    this.exited = new Promise((r) => (this.resolveExit = r));
    this.ended = new Promise((r) => (this.resolveEnd = r));
    setImmediate(() => this.begin(statsInterval(argv)));
  }

  get hasExited(): boolean {
    return this.exitedFlag;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.drainRing();
    if (this.stopping) this.maybeEnd();
  }

  /** Stop generating now and exit 0 once the ring is handed over (like reaching --duration). */
  end(): void {
    if (!this.exitedFlag) this.stopGenerating();
  }

  /** SIGINT/SIGTERM: stop generating, hand over what the ring holds, exit 0; SIGKILL: at once. */
  signal(sig: NodeJS.Signals): void {
    if (this.exitedFlag) return;
    if (sig === 'SIGKILL') {
      this.finish(null, 'SIGKILL');
      return;
    }
    this.stopGenerating();
  }

  private begin(statsMs: number): void {
    if (this.exitedFlag) return;
    const offset = BigInt(Date.now()) * 1_000_000n - monoNs();
    // clock_offset_ns must stay exact (ProbeRun reads it with a regex, not JSON.parse).
    const { clock_offset_ns: _old, ...rest } = this.opts.recording.hello;
    const hello = JSON.stringify({ ...rest, replay: true }).replace(/}$/, `,"clock_offset_ns":${offset}}`);
    if (!this.deliver([{ kind: FrameKind.Hello, flags: 0, payload: Buffer.from(hello) }])) return;
    this.handlers.stderrChunk(`${this.opts.recording.probe}: ready (replay of recorded output at ${this.opts.rate} events/s)\n`);
    this.statsTimer = setInterval(() => this.sendStats(), statsMs);
    const go = (): void => {
      if (this.exitedFlag || this.stopping) return;
      this.startedAt = Date.now();
      const tickMs = this.opts.tickMs ?? Math.min(100, Math.max(1, Math.floor((1000 * this.ringMax) / 4 / Math.max(1, this.opts.rate))));
      // Each device ticks at its own phase: real boards are not in step, and a thousand replays
      // released by one gate would otherwise make their records (and then their batches) in the
      // same millisecond. The first tick makes what came due since startedAt, so the rate holds.
      setTimeout(() => {
        if (this.exitedFlag || this.stopping) return;
        this.tick = setInterval(() => this.generate(), tickMs);
      }, Math.floor(Math.random() * tickMs));
    };
    if (this.opts.gate) void this.opts.gate.then(go);
    else go();
  }

  private generate(): void {
    const elapsed = Date.now() - this.startedAt;
    const limit = this.opts.durationMs;
    const due = Math.floor((this.opts.rate * Math.min(elapsed, limit ?? elapsed)) / 1000) - this.generated;
    if (due > 0) {
      this.generated += due;
      this.counters.generated += due;
      const now = monoNs();
      // Records are made as they are taken: what the agent reads, then what fits in the ring. The
      // rest is lost (ringbuf_full) without being made: making them all would cost a tick CPU in
      // proportion to how late it ran, and a CPU-starved sim would then fall further behind each tick.
      let left = due;
      // The agent pauses from inside frames() (delivery queue full): hand over in slices.
      while (left > 0 && !this.paused && this.ring.length === 0) {
        const part = this.make(Math.min(64, left), now);
        left -= part.length;
        if (!this.deliver(part)) return;
        this.written += part.length;
        this.counters.written += part.length;
      }
      const kept = Math.max(0, Math.min(left, this.ringMax - this.ring.length));
      this.toRing(this.make(kept, now).map((f) => f.payload));
      const lost = left - kept;
      this.cursor = (this.cursor + lost) % this.opts.recording.records.length;
      this.ringbufFull += lost;
      this.counters.ringbufFull += lost;
    }
    if (limit !== undefined && elapsed >= limit) this.stopGenerating();
  }

  /** The next `n` recorded events, stamped `now`. */
  private make(n: number, now: bigint): Frame[] {
    const { records, recordSize, tsOffset } = this.opts.recording;
    const block = Buffer.allocUnsafe(n * recordSize);
    const out: Frame[] = [];
    for (let i = 0; i < n; i++) {
      const rec = block.subarray(i * recordSize, (i + 1) * recordSize);
      records[this.cursor]!.copy(rec);
      this.cursor = (this.cursor + 1) % records.length;
      rec.writeBigUInt64LE(now, tsOffset);
      out.push({ kind: FrameKind.Event, flags: 0, payload: rec });
    }
    return out;
  }

  private toRing(payloads: Buffer[]): void {
    for (const p of payloads) {
      if (this.ring.length < this.ringMax) this.ring.push(p);
      else {
        this.ringbufFull++;
        this.counters.ringbufFull++;
      }
    }
  }

  private drainRing(): void {
    while (this.ring.length > 0 && !this.paused && !this.exitedFlag) {
      const part = this.ring.splice(0, 64);
      if (!this.deliver(part.map((payload) => ({ kind: FrameKind.Event, flags: 0, payload })))) return;
      this.written += part.length;
      this.counters.written += part.length;
    }
  }

  private sendStats(): void {
    const stats = {
      ts_ns: Number(monoNs()),
      records: this.written,
      intervals: 0,
      kernel: { ringbuf_full: this.ringbufFull, map_full: 0, sampled_out: 0, read_failed: 0 },
      loader: { lost: 0, truncated: 0 },
    };
    this.deliver([{ kind: FrameKind.Stats, flags: 0, payload: Buffer.from(JSON.stringify(stats)) }]);
  }

  private stopGenerating(): void {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.tick);
    this.tick = undefined;
    this.drainRing();
    this.maybeEnd();
  }

  private maybeEnd(): void {
    if (this.exitedFlag || this.ring.length > 0) return;
    this.sendStats();
    this.finish(0, null);
  }

  /** False when the agent refused the frames (protocol error): the run ends as a crash. */
  private deliver(frames: Frame[]): boolean {
    try {
      this.handlers.frames(frames);
      return true;
    } catch (err) {
      this.finish(null, 'SIGKILL', err instanceof Error ? err : new Error(String(err)));
      return false;
    }
  }

  private finish(code: number | null, signal: NodeJS.Signals | null, protocolError?: Error): void {
    if (this.exitedFlag) return;
    this.exitedFlag = true;
    clearInterval(this.tick);
    clearInterval(this.statsTimer);
    this.counters.ended++;
    if (this.ring.length > 0) {
      // Killed with records still in the ring: the kernel stage lost them; counted there.
      this.ringbufFull += this.ring.length;
      this.counters.ringbufFull += this.ring.length;
      this.ring.length = 0;
    }
    const exit = { code, signal };
    this.resolveExit(exit);
    // Like 'close' after 'exit': the frames already handed over are all there is.
    setImmediate(() => this.resolveEnd({ ...exit, ...(protocolError ? { protocolError } : {}) }));
  }
}

/**
 * A ProbeRunner loaderFactory that replays `recording` for every run, whatever the binary.
 * `endAll()` ends every live replay like a loader reaching its --duration (the sim's common end).
 */
export function replayLoaderFactory(opts: ReplayOptions): LoaderFactory & { endAll(): void } {
  const live = new Set<ReplayLoader>();
  const factory = (_bin: string, argv: string[], handlers: LoaderProcessHandlers): ReplayLoader => {
    const l = new ReplayLoader(argv, handlers, opts);
    live.add(l);
    void l.exited.then(() => live.delete(l));
    return l;
  };
  return Object.assign(factory, { endAll: () => live.forEach((l) => l.end()) });
}
