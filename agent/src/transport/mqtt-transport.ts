// The Transport over MQTT (mqtt.js): one MQTT connection per session, client id = username =
// device id, password = the device credential, persistent session (clean: false) so commands
// and acks published while the link was down wait at the broker. Every AgentMessage is one QoS 1
// PUBLISH; a bounded window of PUBLISHes waiting for their PUBACK is the backpressure. The only
// file of the agent that knows MQTT. Topic scheme: mqtt-topics.ts and docs/MQTT.md.
//
// Reconnects are ours, not mqtt.js's (reconnectPeriod 0): each attempt is a fresh client after
// the same jittered backoff as gRPC. A fresh client also forgets what the last connection had
// in flight: the spool replays it after the next Welcome, so mqtt.js need not resend it.
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { AgentMessage, ControllerMessage } from '@bpfleet/proto';
import { deviceTopics, statusPayload, topicFor, type DeviceTopics } from './mqtt-topics.js';
import {
  DEFAULT_RECONNECT_BACKOFF,
  ReconnectBackoff,
  TransportDownError,
  type ReconnectBackoffOptions,
  type Transport,
  type TransportEvents,
} from './transport.js';

export interface MqttTlsOptions {
  /** CA certificate(s) the broker's certificate must chain to (mqtts://). */
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Name to check the broker's certificate against, when not the host of the URL. */
  serverName?: string;
}

export interface MqttTransportOptions {
  /** mqtt://HOST:PORT or mqtts://HOST:PORT of the broker. */
  url: string;
  deviceId: string;
  /** Device credential from enrollment: the MQTT password. */
  credential: string;
  tls?: MqttTlsOptions;
  /** PUBLISHes waiting for PUBACK before send() waits (default 64). */
  maxInflight?: number;
  /** MQTT keepalive, seconds (default 20): the broker publishes the last will 1.5x after silence. */
  keepaliveS?: number;
  /** Longest wait for CONNACK and SUBACK per attempt (default 10 s). */
  connectTimeoutMs?: number;
  backoff?: Partial<ReconnectBackoffOptions>;
  /**
   * Reconnect (Hello, Welcome, replay from the spool) when event batches published on this
   * connection stay unacknowledged this long while acks do not move (default 30 s). Over MQTT a
   * PUBACK only means the broker took a message; a controller that restarts while the broker
   * keeps us connected may never see it, and only a new Hello makes the spool replay it.
   */
  ackTimeoutMs?: number;
  /** Topic root (default bpfleet/v1). */
  topicRoot?: string;
  log?: (line: string) => void;
  random?: () => number;
}

export interface MqttTransportCounters {
  /** PUBLISHes written, and PUBACKs received for them. */
  published: number;
  acked: number;
  /** Controller messages received, and those that did not decode (dropped, logged). */
  received: number;
  malformed: number;
  /** Connections made (CONNACK + SUBACK), and how many found the broker still holding our session. */
  connections: number;
  sessionsResumed: number;
  /** Reconnects because batches stayed unacknowledged for ackTimeoutMs. */
  ackTimeouts: number;
}

interface StreamAcks {
  sentThrough: bigint;
  ackedThrough: bigint;
  /** Since when sent > acked without acks moving; undefined when all is acked. */
  waitingSinceMs: number | undefined;
}

interface Waiter {
  msg: AgentMessage;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** The URL, checked: mqtt:// or mqtts:// with a host and port. */
export function parseMqttUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`MQTT broker "${url}": expected mqtt://HOST:PORT or mqtts://HOST:PORT`);
  }
  if ((u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') || u.hostname === '' || u.port === '') {
    throw new Error(`MQTT broker "${url}": expected mqtt://HOST:PORT or mqtts://HOST:PORT`);
  }
  return u;
}

export class MqttTransport implements Transport {
  readonly counters: MqttTransportCounters = { published: 0, acked: 0, received: 0, malformed: 0, connections: 0, sessionsResumed: 0, ackTimeouts: 0 };
  private readonly topics: DeviceTopics;
  private readonly backoff: ReconnectBackoff;
  private readonly maxInflight: number;
  private readonly handlers: ((msg: ControllerMessage) => void)[] = [];
  private readonly listeners: { [E in keyof TransportEvents]: TransportEvents[E][] } = { up: [], down: [] };
  private readonly waiting: Waiter[] = [];
  private readonly log: (line: string) => void;
  private client: MqttClient | undefined;
  private up = false;
  private inflight = 0;
  private started = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastFailure = '';
  /** Id of the current connection, in its status messages. */
  private conn = '';
  private readonly acks = new Map<string, StreamAcks>();
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: MqttTransportOptions) {
    const u = parseMqttUrl(opts.url);
    if (u.protocol === 'mqtts:' && opts.tls === undefined) throw new Error(`${opts.url}: mqtts:// needs the broker's CA (--mqtt-ca FILE)`);
    if (opts.tls && (opts.tls.cert === undefined) !== (opts.tls.key === undefined)) {
      throw new Error('MQTT TLS client certificate and key go together: give both or neither');
    }
    this.topics = deviceTopics(opts.deviceId, opts.topicRoot);
    this.backoff = new ReconnectBackoff({ ...DEFAULT_RECONNECT_BACKOFF, ...opts.backoff }, opts.random);
    this.maxInflight = opts.maxInflight ?? 64;
    this.log = opts.log ?? ((): void => undefined);
  }

  get isUp(): boolean {
    return this.up;
  }

  get writable(): boolean {
    return this.up && this.waiting.length === 0 && this.inflight < this.maxInflight;
  }

  /** PUBLISHes now waiting for their PUBACK. */
  get inFlight(): number {
    return this.inflight;
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

  /**
   * Publishes at QoS 1, in call order. Resolves once the PUBLISH is written inside the in-flight
   * window; when the window is full it first waits for a PUBACK to free a slot.
   */
  send(msg: AgentMessage): Promise<void> {
    const client = this.client;
    if (!this.up || client === undefined) return Promise.reject(new TransportDownError('not connected to the MQTT broker'));
    if (this.waiting.length > 0 || this.inflight >= this.maxInflight) {
      return new Promise((resolve, reject) => this.waiting.push({ msg, resolve, reject }));
    }
    this.publish(client, msg);
    return Promise.resolve();
  }

  reconnect(reason: string): void {
    if (this.client !== undefined) this.lost(this.client, reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    if (client !== undefined && this.up) {
      // A clean goodbye: say offline ourselves (DISCONNECT suppresses the will), let in-flight PUBACKs come.
      const until = Date.now() + 2000;
      while (this.inflight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      await new Promise<void>((r) => {
        client.publish(this.topics.status, statusPayload({ state: 'offline', conn: this.conn }), { qos: 1, retain: true }, () => r());
        setTimeout(r, 1000).unref();
      });
      await new Promise<void>((r) => client.end(false, {}, () => r()));
    }
    if (this.client !== undefined) this.lost(this.client, 'agent closed the session');
  }

  private clientOptions(conn: string): IClientOptions {
    const tls = this.opts.tls;
    return {
      clientId: this.opts.deviceId,
      username: this.opts.deviceId,
      password: this.opts.credential,
      clean: false,
      protocolVersion: 4,
      keepalive: this.opts.keepaliveS ?? 20,
      connectTimeout: this.opts.connectTimeoutMs ?? 10_000,
      reconnectPeriod: 0,
      resubscribe: false,
      will: { topic: this.topics.status, payload: statusPayload({ state: 'offline', conn }), qos: 1, retain: true },
      ...(tls ? { ca: tls.ca, ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}), ...(tls.serverName ? { servername: tls.serverName } : {}), rejectUnauthorized: true } : {}),
    };
  }

  private attempt(): void {
    if (this.closed) return;
    const conn = randomBytes(6).toString('hex');
    const client = mqtt.connect(this.opts.url, this.clientOptions(conn));
    this.conn = conn;
    this.client = client;
    const ms = this.opts.connectTimeoutMs ?? 10_000;
    const deadline = setTimeout(() => this.lost(client, `no CONNACK/SUBACK from ${this.opts.url} within ${ms} ms`), ms);
    client.on('connect', (connack) => {
      if (this.client !== client) return;
      if (connack.sessionPresent) this.counters.sessionsResumed++;
      // No Nagle: small PUBLISHes and PUBACKs go out at once instead of waiting for the peer's delayed ACK.
      (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      // Subscribe even when the broker kept our session: a restarted broker may have lost it.
      client.subscribe(this.topics.cmd, { qos: 1 }, (err, granted) => {
        clearTimeout(deadline);
        if (this.client !== client) return;
        const qos = granted?.[0]?.qos;
        if (err || qos === undefined || qos === 128) {
          this.lost(client, `the broker refused the subscription to ${this.topics.cmd}${err ? `: ${err.message}` : ''} (check its ACL for device ${this.opts.deviceId})`);
          return;
        }
        client.publish(this.topics.status, statusPayload({ state: 'online', conn }), { qos: 1, retain: true });
        this.counters.connections++;
        this.up = true;
        const limit = this.opts.ackTimeoutMs ?? 30_000;
        this.ackTimer = setInterval(() => this.checkAcks(client), Math.max(50, Math.floor(limit / 4)));
        this.ackTimer.unref();
        if (this.lastFailure !== '') this.log(`transport: reached ${this.opts.url}`);
        this.lastFailure = '';
        for (const l of this.listeners.up) l();
      });
    });
    client.on('message', (topic, payload) => {
      if (this.client !== client) return;
      if (topic !== this.topics.cmd) return;
      this.counters.received++;
      this.backoff.reset(); // the controller answered: this link works
      let msg: ControllerMessage;
      try {
        msg = ControllerMessage.decode(payload);
      } catch (err) {
        this.counters.malformed++;
        this.log(`transport: dropped a ${payload.length}-byte message on ${topic} that is not a bpfleet.v1 ControllerMessage: ${(err as Error).message}`);
        return;
      }
      this.noteAcks(msg);
      for (const h of this.handlers) h(msg);
    });
    client.on('error', (err) => {
      clearTimeout(deadline);
      this.lost(client, err.message);
    });
    client.on('close', () => {
      clearTimeout(deadline);
      this.lost(client, 'connection to the broker closed');
    });
  }

  private publish(client: MqttClient, msg: AgentMessage): void {
    if (msg.payload?.$case === 'eventBatch') this.noteSent(msg.payload.value.streamId, msg.payload.value.firstSeq + BigInt(msg.payload.value.count) - 1n);
    this.inflight++;
    this.counters.published++;
    client.publish(topicFor(this.topics, msg), Buffer.from(AgentMessage.encode(msg).finish()), { qos: 1 }, (err) => {
      if (this.client !== client) return; // a lost connection: the window was reset then
      this.inflight--;
      if (!err) this.counters.acked++;
      this.pump(client);
    });
  }

  private noteSent(streamId: string, through: bigint): void {
    const a = this.acks.get(streamId) ?? { sentThrough: 0n, ackedThrough: 0n, waitingSinceMs: undefined };
    if (through > a.sentThrough) a.sentThrough = through;
    if (a.sentThrough > a.ackedThrough) a.waitingSinceMs ??= Date.now();
    this.acks.set(streamId, a);
  }

  private noteAcks(msg: ControllerMessage): void {
    const p = msg.payload;
    const list = p?.$case === 'ack' ? [p.value] : p?.$case === 'welcome' ? p.value.acked : [];
    for (const ack of list) {
      const a = this.acks.get(ack.streamId);
      if (a === undefined || ack.ackedThrough <= a.ackedThrough) continue;
      a.ackedThrough = ack.ackedThrough;
      a.waitingSinceMs = a.ackedThrough >= a.sentThrough ? undefined : Date.now(); // progress: the clock starts again
    }
  }

  private checkAcks(client: MqttClient): void {
    const limit = this.opts.ackTimeoutMs ?? 30_000;
    const now = Date.now();
    for (const [streamId, a] of this.acks) {
      if (a.waitingSinceMs === undefined || now - a.waitingSinceMs < limit) continue;
      this.counters.ackTimeouts++;
      this.log(`transport: no ack for ${streamId} beyond ${a.ackedThrough} (sent through ${a.sentThrough}) for ${Math.round((now - a.waitingSinceMs) / 1000)} s: ` +
        'reconnecting so the controller gets them again from the spool');
      this.lost(client, `batches unacknowledged for ${Math.round(limit / 1000)} s`);
      return;
    }
  }

  private pump(client: MqttClient): void {
    while (this.up && this.inflight < this.maxInflight && this.waiting.length > 0) {
      const w = this.waiting.shift() as Waiter;
      this.publish(client, w.msg);
      w.resolve();
    }
  }

  private lost(client: MqttClient, reason: string): void {
    if (this.client !== client) return;
    this.client = undefined;
    const wasUp = this.up;
    this.up = false;
    this.inflight = 0;
    clearInterval(this.ackTimer);
    this.acks.clear();
    client.removeAllListeners('message');
    client.on('error', () => undefined); // errors of a client being dropped are not ours any more
    client.end(true);
    for (const w of this.waiting.splice(0)) w.reject(new TransportDownError(`connection lost: ${reason}`));
    if (wasUp) {
      for (const l of this.listeners.down) l(reason);
    }
    if (this.closed) return;
    const delay = this.backoff.next();
    if (!wasUp && reason !== this.lastFailure) this.log(`transport: cannot reach ${this.opts.url}: ${reason}; retrying`);
    this.lastFailure = wasUp ? '' : reason;
    this.retryTimer = setTimeout(() => this.attempt(), delay);
  }
}
