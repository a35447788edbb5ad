// One probe run (StartProbe .. StopProbe): supervises its loader processes across crashes and
// turns their frames into batches, stats and statuses for the sink.
import { FrameKind, ProbeStatus_State, frameJson, type Frame, type ProbeStatus } from '@bpfleet/proto';
import { DeliveryQueue } from './delivery-queue.js';
import { loaderArgv } from './loader-args.js';
import { classifyExit, describeExit, statusExitCode } from './loader-exit.js';
import { LoaderProcess, type LoaderEnd, type LoaderFactory, type LoaderHandle } from './loader-process.js';
import { ZERO_COUNTERS, addCounters, parseStatsFrame, toLoaderStats, type LoaderCounters } from './loader-stats.js';
import type { LoaderManifest, ManifestCache } from './manifest-cache.js';
import { RecordBatcher } from './record-batcher.js';
import { RestartBackoff, type BackoffOptions } from './restart-backoff.js';
import { StderrTail } from './stderr-tail.js';
import type { BatchLimits, ProbeSink } from './types.js';

export interface ProbeRunOptions {
  runId: string;
  probe: string;
  streamId: string;
  args: readonly string[];
  /** Where the loader is, looked up again at every (re)start; throws when not installed. */
  resolveBin: () => string | Promise<string>;
  sink: ProbeSink;
  manifests: ManifestCache;
  batch: BatchLimits;
  backoff: BackoffOptions;
  statsIntervalMs?: number;
  stopGraceMs: number;
  /** Batches waiting for the sink before stdout is paused. */
  maxPendingBatches: number;
  /** Starts the loader (default: spawn it); the fleet simulator replays recorded output instead. */
  loaderFactory?: LoaderFactory;
  log: (line: string) => void;
}

const spawnLoader: LoaderFactory = (bin, argv, handlers) => new LoaderProcess(bin, argv, handlers);

const { STATE_UNSPECIFIED, STATE_RUNNING, STATE_STOPPED, STATE_CRASHED, STATE_FAILED } = ProbeStatus_State;

/** Per loader process: what its HELLO said and how far its counters got. */
interface ProcessState {
  proc: LoaderHandle;
  lm: LoaderManifest;
  helloJson?: string;
  clockOffsetNs: bigint;
  ready: boolean;
  runningSince?: number;
  lastInterval: number;
  counters: LoaderCounters;
  batcher: RecordBatcher;
}

export class ProbeRun {
  readonly runId: string;
  readonly probe: string;
  readonly streamId: string;
  /** Resolves with the terminal status (STOPPED or FAILED) once the sink has seen everything. */
  readonly finished: Promise<ProbeStatus>;
  private status: ProbeStatus;
  private restartCount = 0;
  private current: ProcessState | undefined;
  private stopRequested = false;
  private killedAfterGrace = false;
  private terminal = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private carried: LoaderCounters = ZERO_COUNTERS;
  private readonly tail = new StderrTail(50);
  private readonly backoff: RestartBackoff;
  private readonly queue: DeliveryQueue;
  private resolveFinished!: (s: ProbeStatus) => void;

  constructor(private readonly opts: ProbeRunOptions) {
    this.runId = opts.runId;
    this.probe = opts.probe;
    this.streamId = opts.streamId;
    this.backoff = new RestartBackoff(opts.backoff);
    this.status = this.makeStatus(STATE_UNSPECIFIED, '', 0);
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    this.queue = new DeliveryQueue(
      opts.maxPendingBatches,
      (pressured) => (pressured ? this.current?.proc.pause() : this.current?.proc.resume()),
      (err) => opts.log(`sink failed: ${err instanceof Error ? err.message : String(err)}`),
    );
    // Refuse bad args now, as a command error, rather than as a FAILED run later.
    loaderArgv(opts.args, opts.statsIntervalMs);
  }

  get state(): ProbeStatus_State {
    return this.status.state;
  }

  get restarts(): number {
    return this.restartCount;
  }

  get lastStatus(): ProbeStatus {
    return this.status;
  }

  start(): void {
    void this.spawnLoader();
  }

  /** SIGINT, then SIGKILL after the grace period; resolves with the final status. */
  async stop(graceMs = this.opts.stopGraceMs): Promise<ProbeStatus> {
    if (this.terminal) return this.finished;
    this.stopRequested = true;
    if (this.restartTimer !== undefined) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.finish(STATE_STOPPED, 'stopped on request while waiting to restart', this.status.exitCode);
      return this.finished;
    }
    const proc = this.current?.proc;
    if (proc !== undefined && !proc.hasExited) {
      proc.signal('SIGINT');
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
      if ((await Promise.race([proc.exited, graceOver])) === 'timeout') {
        this.killedAfterGrace = true;
        proc.signal('SIGKILL');
      }
      clearTimeout(timer);
    }
    return this.finished;
  }

  private async spawnLoader(): Promise<void> {
    let bin: string;
    let lm: LoaderManifest;
    try {
      bin = await this.opts.resolveBin();
      lm = await this.opts.manifests.get(bin);
    } catch (err) {
      this.finish(STATE_FAILED, (err as Error).message, -1);
      return;
    }
    if (this.stopRequested) {
      this.finish(STATE_STOPPED, 'stopped on request before the loader started', 0);
      return;
    }
    this.tail.clear();
    const ps: ProcessState = {
      lm,
      clockOffsetNs: 0n,
      ready: false,
      lastInterval: 0,
      counters: ZERO_COUNTERS,
      batcher: new RecordBatcher(this.opts.batch, (chunk) => {
        const batch = {
          streamId: this.streamId,
          runId: this.runId,
          probe: this.probe,
          count: chunk.count,
          records: chunk.records,
          recordSize: lm.manifest.record.size,
          schemaId: lm.schemaId,
          clockOffsetNs: ps.clockOffsetNs,
          intervalIndex: chunk.intervalIndex,
        };
        this.queue.push(() => this.opts.sink.batch(batch), true);
      }),
      proc: (this.opts.loaderFactory ?? spawnLoader)(bin, loaderArgv(this.opts.args, this.opts.statsIntervalMs), {
        frames: (frames) => this.onFrames(ps, frames),
        stderrChunk: (text) => this.tail.push(text).forEach((l) => this.onStderrLine(ps, l)),
      }),
    };
    this.current = ps;
    const proc = ps.proc;
    if (this.queue.isPressured) proc.pause();
    this.onEnd(ps, await proc.ended);
  }

  private onFrames(ps: ProcessState, frames: Frame[]): void {
    const size = ps.lm.manifest.record.size;
    const interval = ps.lm.manifest.kind === 'interval';
    for (const f of frames) {
      switch (f.kind) {
        case FrameKind.Event:
          if (ps.helloJson === undefined) throw new Error('loader sent a record before its HELLO frame');
          if (f.payload.length !== size) throw new Error(`record of ${f.payload.length} bytes, manifest says ${size}`);
          // Interval numbers are consecutive from 1: records before INTERVAL n belong to n.
          ps.batcher.add(f.payload, interval ? ps.lastInterval + 1 : undefined);
          break;
        case FrameKind.Hello:
          this.onHello(ps, f);
          break;
        case FrameKind.Stats: {
          ps.counters = parseStatsFrame(frameJson(f));
          ps.batcher.flush(); // the sink sees records before the stats that count them
          const stats = toLoaderStats(addCounters(this.carried, ps.counters), this.streamId, this.runId);
          this.queue.push(() => this.opts.sink.stats?.(stats));
          break;
        }
        case FrameKind.Interval:
          ps.lastInterval = Number(frameJson<{ interval: number }>(f).interval);
          ps.batcher.flush();
          break;
        default:
          break; // newer frame kinds: not ours to interpret
      }
    }
  }

  private onHello(ps: ProcessState, f: Frame): void {
    const hello = frameJson<{ record_size?: number }>(f);
    if (hello.record_size !== ps.lm.manifest.record.size) {
      throw new Error(`HELLO says record_size ${hello.record_size}, manifest says ${ps.lm.manifest.record.size}`);
    }
    ps.helloJson = f.payload.toString('utf8');
    // Exact: ~1.7e18 does not survive JSON.parse as a number.
    const m = /"clock_offset_ns"\s*:\s*(-?\d+)/.exec(ps.helloJson);
    ps.clockOffsetNs = m?.[1] !== undefined ? BigInt(m[1]) : 0n;
    this.maybeRunning(ps);
  }

  private onStderrLine(ps: ProcessState, line: string): void {
    this.opts.log(line);
    if (!ps.ready && /\bready\b/.test(line)) {
      ps.ready = true;
      this.maybeRunning(ps);
    }
  }

  /** RUNNING needs both the stderr `ready` line and the HELLO frame (two pipes, any order). */
  private maybeRunning(ps: ProcessState): void {
    if (!ps.ready || ps.helloJson === undefined || ps.runningSince !== undefined) return;
    ps.runningSince = Date.now();
    this.publish(this.makeStatus(STATE_RUNNING, '', 0));
  }

  private onEnd(ps: ProcessState, end: LoaderEnd): void {
    this.tail.end().forEach((l) => this.opts.log(l));
    ps.batcher.flush(); // a crashed loader's last records still count
    this.carried = addCounters(this.carried, ps.counters);
    const exitCode = statusExitCode(end);
    if (end.spawnError !== undefined) {
      this.finish(STATE_FAILED, `cannot start loader: ${end.spawnError.message}`, -1);
      return;
    }
    const protocol = end.protocolError ? `protocol error: ${end.protocolError.message}\n` : '';
    const verdict = end.protocolError && !this.stopRequested ? 'crashed' : classifyExit(end, this.stopRequested);
    if (verdict === 'stopped') {
      const why = this.stopRequested
        ? `stopped on request${this.killedAfterGrace ? ` (no exit within ${this.opts.stopGraceMs} ms of SIGINT: SIGKILL)` : ''}`
        : 'loader ended on its own';
      this.finish(STATE_STOPPED, why, exitCode);
    } else if (verdict === 'failed') {
      this.finish(STATE_FAILED, this.tail.text() || describeExit(end), exitCode);
    } else {
      const delay = this.backoff.next(ps.runningSince === undefined ? 0 : Date.now() - ps.runningSince);
      const last = this.tail.text(10);
      this.publish(this.makeStatus(STATE_CRASHED, `${protocol}loader ${describeExit(end)}${last ? `:\n${last}` : ''}`, exitCode));
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        this.restartCount++;
        void this.spawnLoader();
      }, delay);
    }
  }

  private finish(state: ProbeStatus_State, reason: string, exitCode: number): void {
    if (this.terminal) return;
    this.terminal = true;
    const status = this.makeStatus(state, reason, exitCode);
    this.publish(status);
    void this.queue.idle().then(() => this.resolveFinished(status));
  }

  private publish(status: ProbeStatus): void {
    this.status = status;
    this.queue.push(() => this.opts.sink.status?.(status));
  }

  private makeStatus(state: ProbeStatus_State, reason: string, exitCode: number): ProbeStatus {
    return {
      runId: this.runId,
      probe: this.probe,
      state,
      reason,
      exitCode,
      restarts: this.restartCount,
      loaderHelloJson: this.current?.helloJson ?? '',
      streamId: this.streamId,
    };
  }
}
