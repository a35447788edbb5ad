// The fleet core: the live agent sessions (one per device), ingest with group commit and acks,
// commands and their answers, and events for the admin API and dashboard. Transport-independent:
// the gRPC server (server/) drives it now, an MQTT bridge will drive it the same way.
import { EventEmitter } from 'node:events';
import {
  ProbeStatus_State, type AgentConfig, type AgentMessage, type CommandResult, type ControllerMessage, type DeviceFacts,
  type EnrollRequest, type EnrollResponse, type Hello,
} from '@bpfleet/proto';
import type { BundleSigningKey } from '../bundles/signing-key.js';
import type { Quantiles } from '../metrics/exposition.js';
import { parseStreamId } from '../store/batch-check.js';
import { BatchRejectedError, EnrollmentError, StoreConflictError } from '../store/errors.js';
import type { DeviceRow, IngestOutcome, RunState, Store } from '../store/store.js';
import {
  FleetCommander, type CommandOutcome, type DeployOptions, type PendingCommand, type SmokeOptions, type StartOutcome,
} from './fleet-commander.js';
import { FleetError } from './fleet-error.js';
import type { FleetEvent, FleetEventMap } from './fleet-events.js';
import { GroupCommit, type CommitEntry, type GroupCommitCounters, type GroupCommitOptions } from './group-commit.js';
import { DeployLimiter } from './deploy-limiter.js';
import { CommandError, PendingCommands } from './pending-commands.js';
import { matchesSelector, toSelector, type DeviceSelector } from './selector.js';
import { AgentSession, type SessionHost, type SessionLink } from './session.js';

export interface FleetLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export const stderrLog: FleetLog = {
  info: (m) => process.stderr.write(`fleet: ${m}\n`),
  warn: (m) => process.stderr.write(`fleet: warning: ${m}\n`),
  error: (m) => process.stderr.write(`fleet: error: ${m}\n`),
};

export interface FleetOptions {
  store: Store;
  /** Signs bundles; its public half goes to every enrolling device. */
  signingKey: BundleSigningKey;
  /** bpf/out: loaders and manifests per arch, what deploy bundles. */
  bpfOutDir: string;
  log?: FleetLog;
  groupCommit?: GroupCommitOptions;
  /** Sent in every Welcome; absent: agents keep their own settings. */
  agentConfig?: AgentConfig;
  /** How long a deploy waits for the device's CommandResult (default 120 s: bundles are MBs). */
  deployTimeoutMs?: number;
  /** How long start, stop and other commands wait (default 30 s). */
  commandTimeoutMs?: number;
  /**
   * Deploys in flight (sent, not yet answered) at once across all deploy requests (default 32);
   * more wait their turn. Bounds the memory and link load of deploying to a large fleet.
   */
  deployConcurrency?: number;
  now?: () => number;
}

export interface SessionInfo {
  deviceId: string;
  name: string;
  transport: string;
  peer: string;
  connectedAtMs: number;
  agentVersion: string;
  facts: DeviceFacts | undefined;
  installed: { name: string; version: string; sha256: string }[];
  counters: AgentSession['counters'];
}

export interface FleetIngestCounters extends GroupCommitCounters {
  /** Batches the store refused (nothing stored or acked), and the records they claimed. */
  rejectedBatches: number;
  rejectedRecords: number;
  /** Bytes waiting for or in a commit. */
  backlogBytes: number;
  /** Store transactions of the ingest over the last 60 to 90 s, seconds. */
  commitSeconds: Quantiles;
}

const RUN_STATES: Record<number, RunState> = {
  [ProbeStatus_State.STATE_RUNNING]: 'running',
  [ProbeStatus_State.STATE_STOPPED]: 'stopped',
  [ProbeStatus_State.STATE_CRASHED]: 'crashed',
  [ProbeStatus_State.STATE_FAILED]: 'failed',
};

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Fleet extends EventEmitter<FleetEventMap> implements SessionHost {
  readonly store: Store;
  readonly log: FleetLog;
  readonly commands = new PendingCommands();
  readonly deployLimiter: DeployLimiter;
  private readonly now: () => number;
  private readonly sessions = new Map<string, AgentSession>();
  private readonly commit: GroupCommit<AgentSession>;
  private readonly commander: FleetCommander;
  private readonly agentConfig: AgentConfig | undefined;
  private readonly rejectionsLogged = new Set<string>();
  private readonly rejectedCounters = { rejectedBatches: 0, rejectedRecords: 0 };
  private closing = false;

  constructor(private readonly opts: FleetOptions) {
    super();
    this.store = opts.store;
    this.log = opts.log ?? stderrLog;
    this.now = opts.now ?? Date.now;
    this.agentConfig = opts.agentConfig;
    this.deployLimiter = new DeployLimiter(opts.deployConcurrency);
    this.commit = new GroupCommit<AgentSession>(opts.store, {
      committed: (entries, outcomes) => this.committed(entries, outcomes),
      failed: (entries, err) => this.commitFailed(entries, err),
    }, opts.groupCommit, this.now);
    this.commander = new FleetCommander({
      store: opts.store, log: this.log, signingKey: opts.signingKey, bpfOutDir: opts.bpfOutDir,
      deployTimeoutMs: opts.deployTimeoutMs ?? 120_000, commandTimeoutMs: opts.commandTimeoutMs ?? 30_000,
      deployLimiter: this.deployLimiter,
      select: (sel) => this.select(sel),
      factsOf: (d) => this.factsOf(d),
      online: (id) => this.sessions.has(id),
      command: (id, what, build, timeoutMs) => this.command(id, what, build, timeoutMs),
    });
  }

  // ------------------------------------------------------------------ transport side

  /** Trades a one-time token for a device identity. Throws FleetError (unauthenticated, invalid_argument). */
  async enroll(req: EnrollRequest, from: { transport: string; peer: string }): Promise<EnrollResponse> {
    if (!req.token) {
      throw new FleetError('unauthenticated', 'enrollment needs a token: create one with `bpfleet token create` and give it to the agent');
    }
    if (!req.deviceName) throw new FleetError('invalid_argument', 'enrollment needs a device_name (the agent uses its hostname by default)');
    let e;
    try {
      e = await this.store.enroll({ token: req.token, deviceName: req.deviceName, ...(req.facts ? { facts: req.facts } : {}),
        transport: from.transport });
    } catch (err) {
      if (err instanceof EnrollmentError) throw new FleetError('unauthenticated', err.message, { cause: err });
      throw err;
    }
    this.log.info(`enrolled device ${e.deviceId} (${req.deviceName}) over ${from.transport} from ${from.peer}`);
    return { deviceId: e.deviceId, credential: e.credential, bundleSigningKey: this.opts.signingKey.publicKeyRaw, labels: e.labels };
  }

  /** The device a session credential belongs to. Throws FleetError('unauthenticated'). */
  async authenticate(credential: string): Promise<DeviceRow> {
    const device = credential ? await this.store.deviceByCredential(credential) : undefined;
    if (!device) {
      throw new FleetError('unauthenticated', 'unknown device credential: the device was re-enrolled elsewhere or never ' +
        'enrolled; enroll it again with a new token (bpfleet token create)');
    }
    return device;
  }

  /**
   * Starts a session for an authenticated device with its Hello: stores the facts, settles the
   * spooled streams' positions (recording gaps the agent can no longer fill as lost), queues the
   * Welcome and replaces any older session of the device.
   */
  async openSession(device: DeviceRow, hello: Hello, link: SessionLink): Promise<AgentSession> {
    if (this.closing) throw new FleetError('unavailable', 'the controller is shutting down; reconnect later');
    if (hello.deviceId !== device.id) {
      throw new FleetError('permission_denied', `credential belongs to device ${device.id}, hello says ` +
        `${hello.deviceId || '(empty)'}: the agent must use the device id and credential it got together at enrollment`);
    }
    this.refuseSecondAgent(device, hello, link);
    for (const c of hello.spooled) {
      if (parseStreamId(c.streamId)?.deviceId !== device.id) {
        throw new FleetError('invalid_argument', `Hello.spooled names stream "${c.streamId}", not a stream of device ${device.id}`);
      }
      if (c.firstSeq > c.nextSeq) {
        throw new FleetError('invalid_argument', `Hello.spooled: stream ${c.streamId} first_seq ${c.firstSeq} > next_seq ${c.nextSeq}`);
      }
    }
    await this.store.markSeen(device.id, { online: true, transport: link.transport, ...(hello.facts ? { facts: hello.facts } : {}) });
    const acked = [];
    for (const c of hello.spooled) {
      let cur = await this.store.cursor(c.streamId);
      if (c.firstSeq > (cur?.ackedThrough ?? 0n) + 1n) {
        // The agent no longer holds what comes before first_seq (evicted): record it as lost so acks can move on.
        const before = cur?.ackedThrough ?? 0n;
        cur = await this.store.declareLost(device.id, c.streamId, c.firstSeq);
        this.log.warn(`device ${device.id} (${device.name}): stream ${c.streamId} resumes at ${c.firstSeq} but the store ` +
          `holds through ${before}; seqs the agent no longer has are recorded as lost (${cur.gapRecords} missing in all)`);
      }
      acked.push({ streamId: c.streamId, ackedThrough: cur?.ackedThrough ?? 0n, gapRecords: BigInt(cur?.gapRecords ?? 0) });
    }
    if (this.closing) throw new FleetError('unavailable', 'the controller is shutting down; reconnect later');
    this.refuseSecondAgent(device, hello, link); // again: another session may have opened while this one awaited the store

    const session = new AgentSession(this, link, device.id, device.name, hello.facts, hello.agentVersion, hello.installed, this.now(),
      hello.agentInstance);
    session.send({ payload: { $case: 'welcome', value: { acked, config: this.agentConfig } } });
    const old = this.sessions.get(device.id);
    this.sessions.set(device.id, session);
    if (old) {
      // An adopted session (adoptSession: no Hello seen, agentVersion '') of the same device and link is the normal
      // MQTT start: the retained status arrived before the Hello.
      if (old.agentVersion === '' && old.link.peer === link.peer) this.log.info(`device ${device.id} (${device.name}) welcomed over ${link.transport}`);
      else this.log.warn(`device ${device.id} (${device.name}): new session from ${link.peer} replaces the one from ${old.link.peer}`);
      old.close(new FleetError('aborted', `replaced by a newer session of device ${device.id} from ${link.peer}`));
    } else {
      this.log.info(`device ${device.id} (${device.name}) online over ${link.transport} from ${link.peer}`);
    }
    this.publish({ type: 'online', deviceId: device.id, name: device.name, transport: link.transport, peer: link.peer,
      agentVersion: hello.agentVersion, replaced: old !== undefined });
    return session;
  }

  /**
   * One credential, one agent: while a device's session is live, a Hello from another agent
   * process (another Hello.agent_instance) presenting the same credential is refused, and the
   * live session goes on. The same instance reconnecting (its old connection not yet noticed as
   * dead) replaces its session, as does any agent that sends no instance (older agents).
   */
  private refuseSecondAgent(device: DeviceRow, hello: Hello, link: SessionLink): void {
    const live = this.sessions.get(device.id);
    if (!live || live.closed || !live.agentInstance || !hello.agentInstance || live.agentInstance === hello.agentInstance) return;
    throw new FleetError('permission_denied', `device ${device.id} (${device.name}) is already connected from ${live.link.peer} ` +
      `(agent instance ${live.agentInstance}, since ${new Date(live.connectedAtMs).toISOString()}); refusing a second agent ` +
      `(instance ${hello.agentInstance}) from ${link.peer} that presents the same device credential. Two agents must not share ` +
      `one identity.json: on a cloned board remove it and enroll with a token of its own (bpfleet token create); if the other ` +
      `agent is gone, its session ends when the controller notices (keepalive, within 30 s) and this agent gets in on a retry`);
  }

  /**
   * A session for a device whose Hello this controller did not see: over MQTT with several
   * controllers the Hello went to another one (shared subscription), or to this one before it
   * restarted while the broker kept the device connected. No Welcome (the agent got one); facts
   * are the stored ones. Used by the MQTT bridge only.
   */
  async adoptSession(device: DeviceRow, link: SessionLink): Promise<AgentSession> {
    if (this.closing) throw new FleetError('unavailable', 'the controller is shutting down');
    await this.store.markSeen(device.id, { online: true, transport: link.transport });
    const session = new AgentSession(this, link, device.id, device.name, undefined, '', [], this.now());
    const old = this.sessions.get(device.id);
    this.sessions.set(device.id, session);
    old?.close(new FleetError('aborted', `replaced by a session of device ${device.id} from ${link.peer}`));
    this.log.info(`device ${device.id} (${device.name}) online over ${link.transport} (welcomed before or elsewhere)`);
    this.publish({ type: 'online', deviceId: device.id, name: device.name, transport: link.transport, peer: link.peer,
      agentVersion: '', replaced: old !== undefined });
    return session;
  }

  /** SessionHost: one message of a live session. */
  async handle(session: AgentSession, msg: AgentMessage): Promise<void> {
    const p = msg.payload;
    const dev = session.deviceId;
    switch (p?.$case) {
      case 'eventBatch':
        session.counters.batches++;
        return this.commit.add(dev, p.value, session);
      case 'heartbeat':
        await this.guard(session, 'heartbeat', () => this.store.recordHeartbeat(dev, p.value));
        this.publish({ type: 'heartbeat', deviceId: dev, heartbeat: p.value });
        return;
      case 'probeStatus': {
        const st = p.value;
        await this.guard(session, `status of run ${st.runId}`, () => this.store.recordProbeStatus(dev, st));
        this.publish({ type: 'status', deviceId: dev, runId: st.runId, probe: st.probe, state: RUN_STATES[st.state] ?? 'unknown',
          reason: st.reason, streamId: st.streamId, exitCode: st.exitCode, restarts: st.restarts });
        return;
      }
      case 'stats':
        await this.guard(session, `pipeline stats of ${p.value.streamId}`, () => this.store.recordPipelineStats(dev, p.value));
        this.publish({ type: 'stats', deviceId: dev, stats: p.value });
        return;
      case 'commandResult': {
        const r = p.value;
        if (!this.commands.settle(dev, r)) {
          this.log.warn(`device ${dev}: result for command ${r.commandId || '(no id)'} that is not pending (timed out?); ignored`);
        }
        this.publish({ type: 'commandResult', deviceId: dev, commandId: r.commandId, ok: r.ok, error: r.error });
        return;
      }
      case 'hello':
        throw new FleetError('invalid_argument', 'Hello is only allowed as the first message of a session; reconnect to say Hello again');
      case undefined:
        // A payload this controller does not know (newer agent): proto3 evolution says ignore it.
        if (session.counters.unknown++ === 0) {
          this.log.warn(`device ${dev}: message of a kind this controller does not know (newer agent?); ignored and counted`);
        }
        return;
    }
  }

  /** SessionHost: the session is over (closed by either side or replaced). */
  ended(session: AgentSession, reason: string): void {
    this.commands.sessionEnded(session, reason);
    if (this.sessions.get(session.deviceId) !== session) return; // replaced: the newer session keeps it online
    this.sessions.delete(session.deviceId);
    this.log.info(`device ${session.deviceId} (${session.deviceName}) offline: ${reason}`);
    this.store.markSeen(session.deviceId, { online: false }).catch((err: unknown) => {
      this.log.error(`device ${session.deviceId}: cannot record it offline: ${message(err)}`);
    });
    this.publish({ type: 'offline', deviceId: session.deviceId, reason });
  }

  // ------------------------------------------------------------------ ingest

  private committed(entries: CommitEntry<AgentSession>[], outcomes: IngestOutcome[]): void {
    const streams = new Map<string, FleetEvent & { type: 'stored' }>();
    entries.forEach((e, i) => {
      const o = outcomes[i]!;
      if (!o.ok) return this.rejected(e, o.error);
      const key = `${e.deviceId}\0${e.batch.streamId}`;
      const s = streams.get(key) ?? { type: 'stored', deviceId: e.deviceId, streamId: e.batch.streamId, records: 0,
        duplicate: 0, gapRecords: 0, filled: 0, ackedThrough: 0n };
      s.records += o.stored;
      s.duplicate += o.duplicate;
      s.gapRecords += o.gapRecords;
      s.filled += o.filled;
      s.ackedThrough = o.ackedThrough; // commits run in order: the last is the highest
      streams.set(key, s);
    });
    for (const s of streams.values()) {
      // Acks are cumulative: they go to the device's current session, whichever session sent the batch.
      this.sessions.get(s.deviceId)?.send({ payload: { $case: 'ack', value: { streamId: s.streamId, ackedThrough: s.ackedThrough,
        gapRecords: BigInt(s.gapRecords) } } });
      this.publish(s);
    }
  }

  private rejected(e: CommitEntry<AgentSession>, err: BatchRejectedError): void {
    this.rejectedCounters.rejectedBatches++;
    this.rejectedCounters.rejectedRecords += e.batch.count;
    const key = `${e.deviceId}\0${e.batch.streamId}\0${err.code}`;
    if (!this.rejectionsLogged.has(key)) {
      this.rejectionsLogged.add(key);
      this.log.error(`${err.message} (further ${err.code} rejections of this stream are only counted: bpfleet stats)`);
    }
    this.publish({ type: 'rejected', deviceId: e.deviceId, streamId: e.batch.streamId, code: err.code, records: e.batch.count,
      error: err.message });
  }

  private commitFailed(entries: CommitEntry<AgentSession>[], err: unknown): void {
    const sessions = new Set(entries.map((e) => e.context));
    this.log.error(`storing ${entries.length} batches failed, nothing of them stored: ${message(err)}; closing the ` +
      `${sessions.size} sessions that sent them so their agents resend`);
    for (const s of sessions) {
      s.close(new FleetError('unavailable', `the controller could not store your batches (${message(err)}); reconnect and resend`));
    }
  }

  /** Commits every batch received so far; resolves when stored and acked. */
  flush(): Promise<void> {
    return this.commit.flush();
  }

  private readonly metricsSources: (() => string)[] = [];

  /** A transport adds its own Prometheus families to /metrics (the MQTT broker's ACL refusals). */
  addMetricsSource(render: () => string): void {
    this.metricsSources.push(render);
  }

  /** Prometheus text of every transport's families. */
  transportMetrics(): string {
    return this.metricsSources.map((r) => r()).join('');
  }

  ingestCounters(): FleetIngestCounters {
    return { ...this.commit.counters, ...this.rejectedCounters, backlogBytes: this.commit.backlogBytes, commitSeconds: this.commit.commitSeconds() };
  }

  // ------------------------------------------------------------------ admin side

  /** Ids of devices with a live session. */
  devicesOnline(): ReadonlySet<string> {
    return new Set(this.sessions.keys());
  }

  sessionOf(deviceId: string): AgentSession | undefined {
    return this.sessions.get(deviceId);
  }

  sessionsInfo(): SessionInfo[] {
    return [...this.sessions.values()].map((s) => ({
      deviceId: s.deviceId, name: s.deviceName, transport: s.link.transport, peer: s.link.peer, connectedAtMs: s.connectedAtMs,
      agentVersion: s.agentVersion, facts: s.facts, installed: s.installed, counters: { ...s.counters },
    }));
  }

  /** Enrolled devices the selector matches (online or not); facts of live sessions take precedence. */
  async select(selector: string | DeviceSelector): Promise<DeviceRow[]> {
    const sel = toSelector(selector);
    return (await this.store.devices()).filter((d) => matchesSelector(sel, { ...d, facts: this.factsOf(d) }));
  }

  /**
   * Sends a command to a connected device and resolves with its CommandResult. Rejects with
   * CommandError: offline, timeout (default commandTimeoutMs), or the session ended first.
   */
  command(deviceId: string, what: string, build: (commandId: string) => NonNullable<ControllerMessage['payload']>,
    timeoutMs = this.opts.commandTimeoutMs ?? 30_000): Promise<CommandResult> {
    const s = this.sessions.get(deviceId);
    if (!s) return Promise.reject(new CommandError('offline', `${what}: device ${deviceId} is not connected`));
    const id = this.commands.newId();
    const result = this.commands.wait(id, deviceId, s, what, timeoutMs);
    s.counters.commands++;
    s.send({ payload: build(id) });
    return result;
  }

  /**
   * Sends the signed bundle of `probe`, built for each device's arch, to the selected devices.
   * Devices that cannot run it (arch not built, kernel lacks every hook kind of a hook group)
   * get nothing and a result saying why. Resolves once everything is refused or queued: at most
   * deployConcurrency deploys are in flight, the others are sent as answers come in (`sent`).
   */
  deploy(selector: string | DeviceSelector, probe: string, opts?: DeployOptions): Promise<PendingCommand[]> {
    return this.commander.deploy(selector, probe, opts);
  }

  /** Starts a new run of `probe` (a fresh run id each) on the selected connected devices. */
  start(selector: string | DeviceSelector, probe: string, args: string[] = [], opts?: { timeoutMs?: number }):
    Promise<PendingCommand<StartOutcome>[]> {
    return this.commander.start(selector, probe, args, opts);
  }

  /** Stops a run on the device running it. Never rejects: the outcome says what happened. */
  stop(runId: string, opts?: { timeoutMs?: number }): Promise<CommandOutcome> {
    return this.commander.stop(runId, opts);
  }

  /** Runs the on-device smoke test of installed probes (all if `probes` is empty). */
  smoke(selector: string | DeviceSelector, probes: string[] = [], opts?: SmokeOptions): Promise<PendingCommand[]> {
    return this.commander.smoke(selector, probes, opts);
  }

  /** Registers every manifest in bpf/out with the store, so batches of probes installed by hand decode. */
  registerBuiltManifests(): Promise<string[]> {
    return this.commander.registerBuiltManifests();
  }

  /** Subscribes to every event; returns the unsubscribe function. */
  onEvent(listener: (e: FleetEvent) => void): () => void {
    this.on('event', listener);
    return () => { this.off('event', listener); };
  }

  /** Commits what is pending, ends every session (agents reconnect to the next controller) and stops. */
  async close(): Promise<void> {
    this.closing = true;
    await this.commit.close();
    for (const s of [...this.sessions.values()]) s.close(new FleetError('unavailable', 'the controller is shutting down; reconnect later'));
  }

  // ------------------------------------------------------------------ helpers

  private factsOf(d: DeviceRow): Record<string, unknown> {
    const live = this.sessions.get(d.id)?.facts;
    return live ? (live as unknown as Record<string, unknown>) : d.facts;
  }

  private publish(e: FleetEvent): void {
    // A failing subscriber must not break ingest or a session.
    try {
      const emit = this.emit.bind(this) as (type: string, e: FleetEvent) => boolean;
      emit(e.type, e);
      emit('event', e);
    } catch (err) {
      this.log.error(`a fleet event subscriber threw on ${e.type}: ${message(err)}`);
    }
  }

  /** Store writes for telemetry: a failure is logged and counted, the session goes on. */
  private async guard(session: AgentSession, what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (err instanceof StoreConflictError) this.log.warn(`device ${session.deviceId}: ${what} refused: ${err.message}`);
      else this.log.error(`device ${session.deviceId}: cannot store ${what}: ${message(err)}`);
    }
  }
}
