// A minimal controller for the session and transport specs, on @grpc/grpc-js and the generated
// AgentServiceService only (the agent never imports controller code). It records what arrives,
// keeps a per-stream store deduplicated by sequence number and acks what it holds contiguously.
// Not exported by the package.
import { randomBytes } from 'node:crypto';
import { Server, ServerCredentials, status, type ServerDuplexStream, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import {
  AgentServiceService,
  type AgentMessage,
  type CommandResult,
  type ControllerMessage,
  type EnrollRequest,
  type EnrollResponse,
  type EventBatch,
  type Heartbeat,
  type Hello,
  type PipelineStats,
  type ProbeStatus,
} from '@bpfleet/proto';
import { sleep } from '../probes/probe-test-support.js';

type Call = ServerDuplexStream<AgentMessage, ControllerMessage>;

export interface Duplicate {
  streamId: string;
  seq: bigint;
  /**
   * What this controller had acked for the stream by the Welcome of the session it arrived on
   * (acks sent later may cross batches already in flight).
   */
  ackedAtWelcome: bigint;
}

// 17000-19999, below the ephemeral range: 100 ports per vitest worker (files run in parallel),
// cycled within it. The probe specs' tcpgen ports (pickPort) start at 10000 + pid-based offsets.
const POOL = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? 0) % 30;
let portIndex = process.pid % 100;
export function pickServerPort(): number {
  portIndex = (portIndex + 1) % 100;
  return 17000 + POOL * 100 + portIndex;
}

export class TestController {
  /** Unique, so an agent that reaches another spec's controller is refused, not mixed in. */
  readonly credential = `test-credential-${randomBytes(6).toString('hex')}`;
  port = 0;
  private server: Server | undefined;
  call: Call | undefined;
  /** Send an Ack after each batch. */
  acking = true;
  /** What Welcome says per stream: what is stored contiguously, or only what was acked. */
  welcomeAcks: 'stored' | 'acked' = 'stored';
  welcomeConfig: ControllerMessage['payload'] | undefined;
  enrollResponse: EnrollResponse | undefined;
  /** Plaintext unless a test sets TLS credentials. */
  serverCredentials: ServerCredentials = ServerCredentials.createInsecure();

  readonly hellos: Hello[] = [];
  readonly batches: EventBatch[] = [];
  readonly statuses: ProbeStatus[] = [];
  readonly results: CommandResult[] = [];
  readonly stats: PipelineStats[] = [];
  readonly heartbeats: Heartbeat[] = [];
  readonly enrolls: EnrollRequest[] = [];
  readonly authorizations: string[] = [];
  readonly duplicates: Duplicate[] = [];
  /** Per stream, seq → record bytes (first copy). */
  readonly store = new Map<string, Map<bigint, Buffer>>();
  readonly storedThrough = new Map<string, bigint>();
  readonly ackSent = new Map<string, bigint>();
  private ackedAtWelcome = new Map<string, bigint>();
  sessions = 0;

  async start(port = this.port || pickServerPort()): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const server = new Server();
      server.addService(AgentServiceService, {
        enroll: (call: ServerUnaryCall<EnrollRequest, EnrollResponse>, cb: sendUnaryData<EnrollResponse>) => this.onEnroll(call, cb),
        connect: (call: Call) => this.onConnect(call),
      });
      try {
        await new Promise<void>((resolve, reject) =>
          server.bindAsync(`127.0.0.1:${port}`, this.serverCredentials, (err) => (err ? reject(err) : resolve())),
        );
        this.server = server;
        this.port = port;
        return;
      } catch (err) {
        server.forceShutdown();
        // The same port must come back after a restart; a fresh one may be taken.
        if (this.port !== 0 || attempt > 20) throw err;
        port = pickServerPort();
      }
    }
  }

  /** Gone at once, as a crashed controller: open streams fail with UNAVAILABLE/CANCELLED. */
  stop(): void {
    this.server?.forceShutdown();
    this.server = undefined;
    this.call = undefined;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  send(msg: ControllerMessage): void {
    if (this.call === undefined) throw new Error('test controller: no agent session');
    this.call.write(msg);
  }

  /** Sends a command and waits for its CommandResult. */
  async command(payload: NonNullable<ControllerMessage['payload']>, timeoutMs = 15_000): Promise<CommandResult> {
    const id = (payload.value as { commandId: string }).commandId;
    this.send({ payload });
    await this.waitFor(`result of ${id}`, () => this.results.some((r) => r.commandId === id), timeoutMs);
    return this.results.find((r) => r.commandId === id) as CommandResult;
  }

  received(streamId: string): number {
    return this.store.get(streamId)?.size ?? 0;
  }

  /** Sequence numbers 1..n absent from the store. */
  missing(streamId: string, n: number): bigint[] {
    const s = this.store.get(streamId) ?? new Map<bigint, Buffer>();
    const out: bigint[] = [];
    for (let q = 1n; q <= BigInt(n); q++) if (!s.has(q)) out.push(q);
    return out;
  }

  async waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`test controller: timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(20);
    }
  }

  private onEnroll(call: ServerUnaryCall<EnrollRequest, EnrollResponse>, cb: sendUnaryData<EnrollResponse>): void {
    this.enrolls.push(call.request);
    if (this.enrollResponse === undefined) cb({ code: status.PERMISSION_DENIED, details: 'enrollment token unknown or used' });
    else cb(null, this.enrollResponse);
  }

  private onConnect(call: Call): void {
    const auth = call.metadata.get('authorization')[0];
    this.authorizations.push(String(auth));
    if (auth !== `Bearer ${this.credential}`) {
      call.emit('error', { code: status.UNAUTHENTICATED, details: 'unknown device credential' });
      return;
    }
    this.sessions++;
    this.call = call;
    call.on('data', (m: AgentMessage) => this.onMessage(call, m));
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  }

  private onMessage(call: Call, m: AgentMessage): void {
    const p = m.payload;
    switch (p?.$case) {
      case 'hello': {
        this.hellos.push(p.value);
        const acked = p.value.spooled.map((c) => ({
          streamId: c.streamId,
          ackedThrough: (this.welcomeAcks === 'stored' ? this.storedThrough : this.ackSent).get(c.streamId) ?? 0n,
          gapRecords: 0n,
        }));
        for (const a of acked) if (a.ackedThrough > (this.ackSent.get(a.streamId) ?? 0n)) this.ackSent.set(a.streamId, a.ackedThrough);
        this.ackedAtWelcome = new Map(this.ackSent);
        const config = this.welcomeConfig?.$case === 'config' ? this.welcomeConfig.value : undefined;
        call.write({ payload: { $case: 'welcome', value: { acked, config } } });
        break;
      }
      case 'eventBatch':
        this.onBatch(call, p.value);
        break;
      case 'probeStatus':
        this.statuses.push(p.value);
        break;
      case 'commandResult':
        this.results.push(p.value);
        break;
      case 'stats':
        this.stats.push(p.value);
        break;
      case 'heartbeat':
        this.heartbeats.push(p.value);
        break;
      default:
        break;
    }
  }

  private onBatch(call: Call, b: EventBatch): void {
    this.batches.push(b);
    let s = this.store.get(b.streamId);
    if (s === undefined) this.store.set(b.streamId, (s = new Map()));
    for (let i = 0; i < b.count; i++) {
      const seq = b.firstSeq + BigInt(i);
      if (s.has(seq)) {
        this.duplicates.push({ streamId: b.streamId, seq, ackedAtWelcome: this.ackedAtWelcome.get(b.streamId) ?? 0n });
        continue;
      }
      s.set(seq, Buffer.from(b.records.subarray(i * b.recordSize, (i + 1) * b.recordSize)));
    }
    let through = this.storedThrough.get(b.streamId) ?? 0n;
    while (s.has(through + 1n)) through++;
    this.storedThrough.set(b.streamId, through);
    if (this.acking && through > (this.ackSent.get(b.streamId) ?? 0n)) {
      this.ackSent.set(b.streamId, through);
      call.write({ payload: { $case: 'ack', value: { streamId: b.streamId, ackedThrough: through, gapRecords: 0n } } });
    }
  }
}
