// The agent's session with the controller. It owns the probe runner's sink: every batch goes
// to the spool first (durable), then to the controller if the link is up (event-sender.ts).
// Per connection: Hello → Welcome (acks applied to the spool) → replay of everything
// unacknowledged → live. Commands, statuses, stats and heartbeats travel the same link.
import { randomBytes } from 'node:crypto';
import {
  ProbeStatus_State,
  type AgentConfig,
  type AgentMessage,
  type CommandResult,
  type ControllerMessage,
  type DeviceFacts,
  type EventBatch,
  type InstalledProbe,
  type ProbeStatus,
  type SystemMetrics,
  type Welcome,
} from '@bpfleet/proto';
import type { BundleInstaller } from '../bundles/index.js';
import {
  DEFAULT_BATCH_LIMITS,
  ProbeRunner,
  type BatchLimits,
  type LoaderStats,
  type ProbeBatch,
  type ProbeRegistry,
  type ProbeRunnerOptions,
} from '../probes/index.js';
import { SmokeTester } from '../smoke/index.js';
import { SpoolFullError, type Spool } from '../spool/index.js';
import type { Transport } from '../transport/index.js';
import { deployBundle, runSmokeTest, startProbe, stopProbe, type CommandDeps } from './commands.js';
import { EventSender } from './event-sender.js';
import { PipelineStatsBook } from './pipeline-stats.js';

export interface AgentSessionOptions {
  deviceId: string;
  /** Semver of this agent, for Hello. */
  agentVersion: string;
  transport: Transport;
  /** Opened by the caller; the session closes it in stop(). */
  spool: Spool;
  installer: BundleInstaller;
  registry: ProbeRegistry;
  /** Facts for each Hello, measured at that time (detectDeviceFacts). */
  facts: () => Promise<DeviceFacts>;
  /** SystemMetricsSampler; without it heartbeats carry no metrics. */
  metrics?: { sample(): Promise<SystemMetrics> };
  /** Heartbeat period until the controller's AgentConfig says otherwise (default 5 s). */
  heartbeatMs?: number;
  /** PipelineStats period (default 5 s). */
  statsIntervalMs?: number;
  /** --stats-interval of the loaders (default 1 s). */
  loaderStatsIntervalMs?: number;
  /** Reconnect when no Welcome arrives this long after Hello (default 30 s). */
  welcomeTimeoutMs?: number;
  /** On stop, how long to try to send what the stopped probes wrote last (default 3 s). */
  shutdownFlushMs?: number;
  batch?: Partial<BatchLimits>;
  runner?: Pick<ProbeRunnerOptions, 'backoff' | 'stopGraceMs' | 'maxPendingBatches' | 'loaderFactory' | 'manifests'>;
  log?: (line: string) => void;
}

export type SessionPhase = 'idle' | 'down' | 'hello' | 'ready' | 'stopping' | 'stopped';

const TERMINAL = new Set([ProbeStatus_State.STATE_STOPPED, ProbeStatus_State.STATE_FAILED]);
const MAX_PENDING_RESULTS = 256;
const DROP_LOG_EVERY_MS = 10_000;

function toEventBatch(b: ProbeBatch, firstSeq: bigint): EventBatch {
  return {
    streamId: b.streamId,
    firstSeq,
    count: b.count,
    records: b.records,
    recordSize: b.recordSize,
    schemaId: b.schemaId,
    clockOffsetNs: b.clockOffsetNs,
    intervalIndex: b.intervalIndex,
  };
}

const firstLine = (s: string): string => s.split('\n', 1)[0] ?? '';

export class AgentSession {
  readonly runner: ProbeRunner;
  /**
   * Hello.agent_instance: random per agent process, the same on every reconnect, so the
   * controller can tell this agent reconnecting from another one presenting its credential.
   */
  readonly instance: string = randomBytes(8).toString('hex');
  /** Smoke runs: their own runner, feeding the same sink (spool, then stream) as every run. */
  readonly smoke: SmokeTester;
  private readonly sender: EventSender;
  private readonly statsBook = new PipelineStatsBook();
  private readonly batchLimits: BatchLimits;
  private readonly log: (line: string) => void;
  private readonly deps: CommandDeps;
  private phase: SessionPhase = 'idle';
  /** Between Welcome and the link going down, also while stopping: statuses etc. can be sent. */
  private welcomed = false;
  /** Latest status per run, sent again after every Welcome; terminal ones until delivered. */
  private readonly statuses = new Map<string, ProbeStatus>();
  private readonly pendingResults: CommandResult[] = [];
  private commands: Promise<void> = Promise.resolve();
  private heartbeatMs: number;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;
  private connection = 0;
  private readonly dropLogAt = new Map<string, { at: number; since: number }>();

  constructor(private readonly opts: AgentSessionOptions) {
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.heartbeatMs = opts.heartbeatMs ?? 5000;
    // Mutable on purpose: AgentConfig changes the limits of runs started afterwards.
    this.batchLimits = { ...DEFAULT_BATCH_LIMITS, ...opts.batch };
    this.runner = new ProbeRunner({
      registry: opts.registry,
      deviceId: opts.deviceId,
      batch: this.batchLimits,
      statsIntervalMs: opts.loaderStatsIntervalMs ?? 1000,
      ...opts.runner,
      sink: {
        batch: (b) => this.onBatch(b),
        stats: (s) => this.onLoaderStats(s),
        status: (s) => this.onStatus(s),
      },
      log: (runId, line) => this.log(`probe ${runId}: ${line}`),
    });
    this.smoke = new SmokeTester({
      registry: opts.registry,
      manifests: this.runner.manifests,
      deviceId: opts.deviceId,
      batch: this.batchLimits,
      statsIntervalMs: opts.loaderStatsIntervalMs ?? 1000,
      sink: {
        batch: (b) => this.onBatch(b),
        stats: (s) => this.onLoaderStats(s),
        status: (s) => this.onStatus(s),
      },
      installed: async () => (await this.installedProbes()).map((p) => p.name),
      log: this.log,
    });
    this.sender = new EventSender(opts.spool, opts.transport, this.log);
    this.deps = { installer: opts.installer, registry: opts.registry, runner: this.runner, log: this.log };
    opts.transport.on('up', () => void this.onUp());
    opts.transport.on('down', (reason) => this.onDown(reason));
    opts.transport.onMessage((m) => this.onMessage(m));
  }

  get state(): SessionPhase {
    return this.phase;
  }

  /** True once the spool's backlog went out on this connection and batches are sent as they come. */
  get isLive(): boolean {
    return this.phase === 'ready' && this.sender.isLive;
  }

  get sent(): Readonly<{ live: number; replayed: number }> {
    return this.sender.counters;
  }

  /** Connects (and keeps reconnecting) and starts the periodic stats. */
  start(): void {
    if (this.phase !== 'idle') return;
    this.phase = 'down';
    this.statsTimer = setInterval(() => void this.sendStats(), this.opts.statsIntervalMs ?? 5000);
    this.restartHeartbeat();
    this.opts.transport.connect();
  }

  /**
   * Shutdown: stops every probe (their last batches are spooled), tries for a moment to send
   * them, closes the link and the spool. Data not acknowledged stays for the next start.
   */
  async stop(): Promise<void> {
    if (this.phase === 'stopping' || this.phase === 'stopped') return;
    this.phase = 'stopping';
    clearInterval(this.statsTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.welcomeTimer);
    const [finals] = await Promise.all([this.runner.stopAll(), this.smoke.stop()]);
    await this.commands.catch(() => undefined);
    if (this.welcomed) {
      const flushMs = this.opts.shutdownFlushMs ?? 3000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.sender.idle(), new Promise((r) => (timer = setTimeout(r, flushMs)))]);
      clearTimeout(timer);
      await this.sendStats();
    }
    await this.opts.transport.close();
    this.sender.stop();
    await this.opts.spool.close();
    this.phase = 'stopped';
    this.log(`session: stopped (${finals.length} probe runs ended, ${this.opts.spool.stats().bytes} bytes left in the spool)`);
  }

  // ------------------------------------------------------------------ connection

  private async onUp(): Promise<void> {
    if (this.phase !== 'down') return;
    const conn = ++this.connection;
    this.phase = 'hello';
    let hello: AgentMessage;
    try {
      const [facts, installed] = await Promise.all([this.opts.facts(), this.installedProbes()]);
      hello = {
        payload: {
          $case: 'hello',
          value: { deviceId: this.opts.deviceId, facts, agentVersion: this.opts.agentVersion, installed, spooled: this.opts.spool.cursors(),
            agentInstance: this.instance },
        },
      };
    } catch (err) {
      this.log(`session: cannot build Hello: ${(err as Error).message}`);
      this.opts.transport.reconnect('Hello could not be built');
      return;
    }
    if (conn !== this.connection || this.phase !== 'hello') return;
    const spooled = hello.payload?.$case === 'hello' ? hello.payload.value.spooled : [];
    this.opts.transport.send(hello).catch(() => undefined);
    this.log(`session: connected as ${this.opts.deviceId}; Hello sent (${spooled.length} streams with unacknowledged data)`);
    const timeoutMs = this.opts.welcomeTimeoutMs ?? 30_000;
    this.welcomeTimer = setTimeout(() => this.opts.transport.reconnect(`no Welcome within ${timeoutMs} ms of Hello`), timeoutMs);
  }

  private onDown(reason: string): void {
    clearTimeout(this.welcomeTimer);
    this.welcomed = false;
    this.sender.stop();
    this.connection++;
    if (this.phase === 'hello' || this.phase === 'ready') {
      this.phase = 'down';
      this.log(`session: disconnected (${reason}); probes keep running, their batches stay in the spool`);
    }
  }

  private onWelcome(w: Welcome): void {
    if (this.phase !== 'hello') {
      this.log(`session: ignoring a Welcome while ${this.phase}`);
      return;
    }
    clearTimeout(this.welcomeTimer);
    for (const a of w.acked) this.onAck(a.streamId, a.ackedThrough, a.gapRecords);
    if (w.config !== undefined) this.applyConfig(w.config);
    this.phase = 'ready';
    this.welcomed = true;
    const backlog = this.opts.spool.cursors().reduce((n, c) => n + (c.nextSeq - c.firstSeq), 0n);
    this.log(`session: welcomed${backlog > 0n ? `; replaying ${backlog} unacknowledged records from the spool` : ''}`);
    this.sender.start();
    for (const s of this.statuses.values()) this.sendStatus(s);
    for (const r of this.pendingResults.splice(0)) this.sendResult(r);
  }

  private onAck(streamId: string, ackedThrough: bigint, gapRecords: bigint): void {
    if (this.phase === 'stopped') return;
    this.opts.spool.ack(streamId, ackedThrough);
    if (gapRecords > 0n) this.log(`session: controller reports ${gapRecords} records of ${streamId} it will never get (evicted here)`);
  }

  private async installedProbes(): Promise<InstalledProbe[]> {
    const installed = await this.opts.installer.list();
    // Development loaders (--dev-probes) can start too: announce those not installed.
    const names = new Set(installed.map((p) => p.name));
    const all = await this.opts.registry.list(this.runner.manifests);
    return [...installed, ...all.filter((p) => !names.has(p.name))];
  }

  // ------------------------------------------------------------------ controller messages

  private onMessage(m: ControllerMessage): void {
    const p = m.payload;
    switch (p?.$case) {
      case 'welcome':
        return this.onWelcome(p.value);
      case 'ack':
        return this.onAck(p.value.streamId, p.value.ackedThrough, p.value.gapRecords);
      case 'config':
        return this.applyConfig(p.value);
      case 'deploy': {
        const cmd = p.value;
        return this.command(() => deployBundle(this.deps, cmd));
      }
      case 'start': {
        const cmd = p.value;
        return this.command(() => startProbe(this.deps, cmd));
      }
      case 'stop': {
        const cmd = p.value;
        return this.command(() => stopProbe(this.deps, cmd));
      }
      case 'smoke': {
        const cmd = p.value;
        return this.command(() => runSmokeTest(this.smoke, this.deps, cmd));
      }
      default:
        this.log('session: ignoring a controller message this agent does not know');
    }
  }

  /** Commands run one at a time in arrival order: a StartProbe after a deploy sees the new loader. */
  private command(run: () => Promise<CommandResult>): void {
    this.commands = this.commands.then(async () => {
      if (this.phase === 'stopping' || this.phase === 'stopped') return;
      this.sendResult(await run());
    });
  }

  private applyConfig(c: AgentConfig): void {
    const changes: string[] = [];
    if (c.heartbeatMs > 0 && c.heartbeatMs !== this.heartbeatMs) {
      this.heartbeatMs = c.heartbeatMs;
      this.restartHeartbeat();
      changes.push(`heartbeat ${c.heartbeatMs} ms`);
    }
    if (c.spoolMaxBytes > 0n) {
      try {
        this.opts.spool.setMaxBytes(Number(c.spoolMaxBytes));
      } catch (err) {
        this.log(`session: spool_max_bytes ${c.spoolMaxBytes} not applied: ${(err as Error).message}`);
      }
    }
    const limits: [keyof BatchLimits, number][] = [
      ['maxRecords', c.batchMaxRecords],
      ['maxBytes', c.batchMaxBytes],
      ['maxDelayMs', c.batchMaxDelayMs],
    ];
    for (const [k, v] of limits) {
      if (v > 0 && this.batchLimits[k] !== v) {
        this.batchLimits[k] = v;
        changes.push(`batch ${k} ${v}`);
      }
    }
    if (changes.length > 0) this.log(`session: config: ${changes.join(', ')} (batch limits apply to runs started from now)`);
  }

  // ------------------------------------------------------------------ probe sink

  private async onBatch(b: ProbeBatch): Promise<void> {
    const input = {
      count: b.count,
      recordSize: b.recordSize,
      records: b.records,
      schemaId: b.schemaId,
      clockOffsetNs: b.clockOffsetNs,
      intervalIndex: b.intervalIndex,
    };
    let firstSeq: bigint;
    try {
      // Durable first; awaiting it is the backpressure the loader feels.
      ({ firstSeq } = await this.opts.spool.append(b.streamId, input));
    } catch (err) {
      this.appendFailed(b, err);
      return;
    }
    this.sender.spooled(toEventBatch(b, firstSeq));
  }

  /** The spool refused the batch: send it once without the spool if we can, else drop and count. */
  private appendFailed(b: ProbeBatch, err: unknown): void {
    const why = (err as Error).message;
    if (err instanceof SpoolFullError && this.welcomed && this.sender.canSendUnspooled) {
      const firstSeq = this.opts.spool.assignUnspooled(b.streamId, b.count);
      this.sender.sendDirect(toEventBatch(b, firstSeq));
      this.throttledLog(`unspooled ${b.streamId}`, b.count, `sent ${b.count} records of ${b.streamId} without spooling them (not replayable): ${why}`);
      return;
    }
    const total = this.statsBook.dropped(b.streamId, b.count);
    this.throttledLog(`dropped ${b.streamId}`, b.count, `dropped ${b.count} records of ${b.streamId} (agent_queue_dropped now ${total}): ${why}`);
  }

  /** A full disk fails every batch: one line per stream and outcome at first, then one per 10 s. */
  private throttledLog(key: string, records: number, line: string): void {
    const now = Date.now();
    const last = this.dropLogAt.get(key);
    if (last !== undefined && now - last.at < DROP_LOG_EVERY_MS) {
      last.since += records;
      return;
    }
    const more = last !== undefined && last.since > 0 ? ` (and ${last.since} more records since the last such line)` : '';
    this.dropLogAt.set(key, { at: now, since: 0 });
    this.log(`session: ${line}${more}`);
  }

  private onLoaderStats(s: LoaderStats): void {
    this.statsBook.loader(s);
  }

  private onStatus(s: ProbeStatus): void {
    this.statuses.set(s.runId, s);
    if (TERMINAL.has(s.state)) this.statsBook.finished(s.streamId);
    const reason = s.reason ? `: ${firstLine(s.reason)}` : '';
    this.log(`probe ${s.runId}: ${s.probe} ${ProbeStatus_State[s.state].replace('STATE_', '').toLowerCase()}${reason}`);
    if (this.welcomed) this.sendStatus(s);
  }

  // ------------------------------------------------------------------ sending

  private sendStatus(s: ProbeStatus): void {
    this.opts.transport
      .send({ payload: { $case: 'probeStatus', value: s } })
      .then(() => {
        if (TERMINAL.has(s.state) && this.statuses.get(s.runId) === s) this.statuses.delete(s.runId);
      })
      .catch(() => undefined); // kept; sent again after the next Welcome
  }

  private sendResult(r: CommandResult): void {
    const keep = (): void => {
      if (this.pendingResults.length < MAX_PENDING_RESULTS) this.pendingResults.push(r);
    };
    if (!this.welcomed) return keep();
    this.opts.transport.send({ payload: { $case: 'commandResult', value: r } }).catch(keep);
  }

  private async sendStats(): Promise<void> {
    if (!this.welcomed) return;
    const now = BigInt(Date.now()) * 1_000_000n;
    for (const s of this.statsBook.sample(this.opts.spool.stats(), now)) {
      await this.opts.transport.send({ payload: { $case: 'stats', value: s } }).catch(() => undefined);
    }
  }

  private restartHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    if (this.phase === 'idle' || this.phase === 'stopping' || this.phase === 'stopped') return;
    this.heartbeatTimer = setInterval(() => void this.sendHeartbeat(), this.heartbeatMs);
  }

  private async sendHeartbeat(): Promise<void> {
    if (this.phase !== 'ready') return;
    let metrics: SystemMetrics | undefined;
    try {
      metrics = await this.opts.metrics?.sample();
    } catch (err) {
      this.log(`session: system metrics unavailable: ${(err as Error).message}`);
    }
    if (this.phase !== 'ready') return;
    const value = { timeUnixNs: BigInt(Date.now()) * 1_000_000n, metrics, spoolBytes: BigInt(this.opts.spool.stats().bytes) };
    await this.opts.transport.send({ payload: { $case: 'heartbeat', value } }).catch(() => undefined);
  }
}
