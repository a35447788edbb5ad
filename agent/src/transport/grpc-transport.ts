// The Transport over gRPC: one AgentService.Connect stream per session, the device credential
// in the `authorization` metadata, keepalive pings to notice a dead link, reconnect with
// exponential backoff and full jitter. Also Enroll, the one unary call. The only file of the
// agent that knows gRPC.
import {
  Metadata,
  connectivityState,
  credentials,
  status,
  type ChannelCredentials,
  type ClientDuplexStream,
  type ClientOptions,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  AgentServiceClient,
  type AgentMessage,
  type ControllerMessage,
  type EnrollRequest,
  type EnrollResponse,
} from '@bpfleet/proto';
import {
  DEFAULT_RECONNECT_BACKOFF,
  ReconnectBackoff,
  TransportDownError,
  type ReconnectBackoffOptions,
  type Transport,
  type TransportEvents,
} from './transport.js';
import { diagnoseLink } from './link-diagnosis.js';

/** PEM contents. No CA: plaintext (development only). cert and key together: mutual TLS. */
export interface GrpcTlsOptions {
  /** CA certificate(s) to pin: the controller's certificate must chain to these. */
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Name to check the controller's certificate against, when not the host of `address`. */
  serverName?: string;
}

export interface GrpcTransportOptions {
  /** HOST:PORT of the controller. */
  address: string;
  /** Device credential from enrollment. */
  credential: string;
  tls?: GrpcTlsOptions;
  /**
   * Ping the controller this often (default 10 s)... grpc-js pings on this period whether or not
   * data flows, so a silently dead link (no RST: a blackholed route, a NAT that forgot us) is
   * noticed within keepaliveTimeMs + keepaliveTimeoutMs: 15 s by default, measured ~12-15 s in
   * test/fleet/link-cut.test.ts. The controller allows pings every 10 s.
   */
  keepaliveTimeMs?: number;
  /** ...and drop the link when the ping is not answered within this (default 5 s). */
  keepaliveTimeoutMs?: number;
  /** Longest wait for a connection per attempt (default 10 s). */
  connectTimeoutMs?: number;
  backoff?: Partial<ReconnectBackoffOptions>;
  /** Largest message accepted from the controller (default 80 MiB: a bundle is up to 64 MiB). */
  maxReceiveBytes?: number;
  /** Extra grpc-js channel options (the fleet simulator gives each device its own connection). */
  channelOptions?: Partial<ClientOptions>;
  log?: (line: string) => void;
  random?: () => number;
}

function channelCredentials(tls: GrpcTlsOptions | undefined): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new Error('TLS client certificate and key go together: give both or neither');
  }
  return credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null);
}

function clientOptions(o: Pick<GrpcTransportOptions, 'tls' | 'keepaliveTimeMs' | 'keepaliveTimeoutMs' | 'maxReceiveBytes' | 'channelOptions'>): Partial<ClientOptions> {
  return {
    'grpc.keepalive_time_ms': o.keepaliveTimeMs ?? 10_000,
    'grpc.keepalive_timeout_ms': o.keepaliveTimeoutMs ?? 5_000,
    'grpc.max_receive_message_length': o.maxReceiveBytes ?? 80 << 20,
    // Our own backoff decides when to retry; the channel should not add minutes of its own.
    'grpc.initial_reconnect_backoff_ms': 500,
    'grpc.max_reconnect_backoff_ms': 5_000,
    ...(o.tls?.serverName !== undefined ? { 'grpc.ssl_target_name_override': o.tls.serverName } : {}),
    ...o.channelOptions,
  };
}

/**
 * gRPC's reason on one line, without the parts that change on every attempt (grpc-js stamps the
 * time into connection errors), so identical failures read, and are logged, as one.
 */
function describe(err: unknown): string {
  const e = err as Partial<ServiceError>;
  const text = typeof e.code === 'number' ? `${status[e.code] ?? e.code}: ${e.details || e.message}` : ((err as Error).message ?? String(err));
  return text
    .replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)/g, '')
    .replace(/\s*Resolution note:\s*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** EnrollRequest → EnrollResponse; the error names the controller and gRPC's reason. */
export function grpcEnroll(
  opts: Pick<GrpcTransportOptions, 'address' | 'tls' | 'maxReceiveBytes'> & { timeoutMs?: number },
  req: EnrollRequest,
): Promise<EnrollResponse> {
  const client = new AgentServiceClient(opts.address, channelCredentials(opts.tls), clientOptions(opts));
  return new Promise<EnrollResponse>((resolve, reject) => {
    client.enroll(req, new Metadata(), { deadline: Date.now() + (opts.timeoutMs ?? 15_000) }, (err, res) => {
      if (!err) return resolve(res);
      // gRPC says "Failed to connect" for most TLS refusals: find out which one it was.
      const why = err.code === status.UNAVAILABLE ? diagnoseLink(opts.address, opts.tls) : Promise.resolve('');
      void why.then((hint) => reject(new Error(`enrollment at ${opts.address} failed: ${describe(err)}${hint ? `\n  ${hint}` : ''}`, { cause: err })));
    });
  }).finally(() => client.close());
}

type Call = ClientDuplexStream<AgentMessage, ControllerMessage>;

interface Waiter {
  msg: AgentMessage;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class GrpcTransport implements Transport {
  private client: AgentServiceClient | undefined;
  private call: Call | undefined;
  private up = false;
  private draining = false;
  private readonly waiting: Waiter[] = [];
  private started = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff: ReconnectBackoff;
  private readonly creds: ChannelCredentials;
  private readonly handlers: ((msg: ControllerMessage) => void)[] = [];
  private readonly listeners: { [E in keyof TransportEvents]: TransportEvents[E][] } = { up: [], down: [] };
  private readonly log: (line: string) => void;
  private lastFailure = '';

  constructor(private readonly opts: GrpcTransportOptions) {
    this.creds = channelCredentials(opts.tls);
    this.backoff = new ReconnectBackoff({ ...DEFAULT_RECONNECT_BACKOFF, ...opts.backoff }, opts.random);
    this.log = opts.log ?? ((): void => undefined);
  }

  get isUp(): boolean {
    return this.up;
  }

  get writable(): boolean {
    return this.up && !this.draining && this.waiting.length === 0;
  }

  connect(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.attempt();
  }

  onMessage(handler: (msg: ControllerMessage) => void): void {
    this.handlers.push(handler);
  }

  on<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void {
    this.listeners[event].push(listener);
  }

  send(msg: AgentMessage): Promise<void> {
    if (!this.up || this.call === undefined) return Promise.reject(new TransportDownError('not connected to the controller'));
    if (this.draining || this.waiting.length > 0) {
      return new Promise((resolve, reject) => this.waiting.push({ msg, resolve, reject }));
    }
    this.write(this.call, msg);
    return Promise.resolve();
  }

  reconnect(reason: string): void {
    if (this.call !== undefined) this.lost(this.call, reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    const call = this.call;
    if (call !== undefined && this.up) {
      // Half-close and give the controller a moment to finish its side cleanly.
      const ended = new Promise<void>((r) => call.once('status', () => r()));
      call.end();
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    if (this.call !== undefined) this.lost(this.call, 'agent closed the session');
    this.client?.close();
    this.client = undefined;
  }

  private attempt(): void {
    if (this.closed) return;
    this.client?.close();
    const client = new AgentServiceClient(this.opts.address, this.creds, clientOptions(this.opts));
    this.client = client;
    const md = new Metadata();
    md.set('authorization', `Bearer ${this.opts.credential}`);
    // The call waits for the connection; it fails (with gRPC's reason) if there is none.
    const call = client.connect(md);
    this.call = call;
    let finished = false;
    const end = (why: string): void => {
      if (finished) return;
      finished = true;
      this.lost(call, why);
    };
    call.on('data', (msg: ControllerMessage) => {
      if (this.call !== call) return;
      this.backoff.reset(); // the controller answered: this link works
      for (const h of this.handlers) h(msg);
    });
    call.on('drain', () => this.onDrain(call));
    call.on('error', (err) => end(describe(err)));
    call.on('status', (s) => end(s.code === status.OK ? 'controller closed the session' : describe(s)));
    this.whenReady(client, call);
  }

  /** 'up' once the channel is connected; a failure before that is a failed attempt, not a 'down'. */
  private whenReady(client: AgentServiceClient, call: Call): void {
    const channel = client.getChannel();
    const deadline = Date.now() + (this.opts.connectTimeoutMs ?? 10_000);
    const check = (): void => {
      if (this.call !== call || this.closed) return;
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY) {
        this.up = true;
        this.draining = false;
        if (this.lastFailure !== '') this.log(`transport: reached ${this.opts.address}`);
        this.lastFailure = '';
        for (const l of this.listeners.up) l();
        return;
      }
      if (state === connectivityState.SHUTDOWN) return;
      channel.watchConnectivityState(state, deadline, (err) => {
        if (err) this.lost(call, `no connection to ${this.opts.address} within ${this.opts.connectTimeoutMs ?? 10_000} ms`);
        else check();
      });
    };
    check();
  }

  private write(call: Call, msg: AgentMessage): void {
    if (!call.write(msg)) this.draining = true;
  }

  private onDrain(call: Call): void {
    if (this.call !== call) return;
    this.draining = false;
    while (!this.draining && this.waiting.length > 0) {
      const w = this.waiting.shift() as Waiter;
      this.write(call, w.msg);
      w.resolve();
    }
  }

  private lost(call: Call, reason: string): void {
    if (this.call !== call) return;
    this.call = undefined;
    const wasUp = this.up;
    this.up = false;
    this.draining = false;
    call.cancel();
    for (const w of this.waiting.splice(0)) w.reject(new TransportDownError(`connection lost: ${reason}`));
    if (wasUp) {
      for (const l of this.listeners.down) l(reason);
    }
    if (this.closed) return;
    const delay = this.backoff.next();
    // A lost session is the session's to report; repeated identical failures are logged once,
    // with what a plain TLS/TCP connection says about them (gRPC's reason is often just "Failed to connect").
    if (!wasUp && reason !== this.lastFailure) {
      const address = this.opts.address;
      void diagnoseLink(address, this.opts.tls).catch(() => '').then((hint) => {
        this.log(`transport: cannot reach ${address}: ${reason}${hint ? `; ${hint}` : ''}; retrying`);
      });
    }
    this.lastFailure = wasUp ? '' : reason;
    this.retryTimer = setTimeout(() => this.attempt(), delay);
  }
}
