// The controller's side of the MQTT transport: maps each device's topics to a Fleet session with
// transport "mqtt". It meets the broker through a port (bridge-port.ts): the embedded aedes
// broker in this process, or an external broker through an mqtt.js client.
//
// - .../up (Hello, EventBatch, Heartbeat, ProbeStatus, PipelineStats): a Hello opens a new
//   session (Fleet.openSession queues the Welcome); any other message of a device without a
//   session adopts one (Fleet.adoptSession: no Welcome), which is what happens when several
//   controllers split the up topics with a shared subscription, or after this controller restarted.
// - .../result (CommandResult): read by every controller; the one that sent the command settles it.
// - .../status (retained online/offline, last will offline): offline ends the session, unless
//   it is the will of an older connection than the one the session knows.
// - .../cmd: every message the fleet sends to the device (Welcome, Ack, commands), QoS 1.
//
// A device's messages are handled one at a time and the port takes the next one only after
// (ports: backpressure), so a controller busy committing slows the broker's delivery rather
// than queueing in memory. Nothing is acked to the agent before the store committed it: a
// message this controller took and then lost (crash) is replayed by the agent from its spool.
import { AgentMessage, ControllerMessage } from '@bpfleet/proto';
import { FleetError } from '../fleet/fleet-error.js';
import type { Fleet } from '../fleet/fleet.js';
import type { AgentSession, SessionLink } from '../fleet/session.js';
import type { DeviceRow } from '../store/store.js';
import { errText, type BridgePort } from './bridge-port.js';
import { controllerFilters, deviceTopic, parseDeviceTopic, TOPIC_ROOT } from './topics.js';

export interface MqttBridgeOptions {
  fleet: Fleet;
  /** The broker: InProcessPort (embedded) or ClientPort (external). */
  port: BridgePort;
  /** MQTT 5 shared-subscription group for the up topics (several controllers); none: every up message. */
  share?: string;
  /**
   * Controller messages published and not yet PUBACKed by the external broker (or, embedded, not
   * yet written to the device's socket) beyond which droppable ones are dropped (default 4096).
   */
  maxPendingOut?: number;
  root?: string;
}

export interface MqttBridgeCounters {
  received: number;
  /** Messages that did not decode, or broke the protocol (e.g. Hello of another device): dropped, logged. */
  malformed: number;
  refused: number;
  sessionsOpened: number;
  sessionsAdopted: number;
  sessionsEnded: number;
  published: number;
  /** Droppable controller messages dropped because too many publishes were pending. */
  dropped: number;
  /** Results of commands another controller sent (several controllers). */
  foreignResults: number;
  /** Times the bridge lost the broker and got it back (external brokers): the port's own count. */
  readonly reconnects: number;
  /** Messages being handled now (a gauge), and their bytes: what the controller holds in memory for the broker. */
  inFlight: number;
  inFlightBytes: number;
}

interface DeviceState {
  session: AgentSession | undefined;
  /** Connection id of the latest "online" status. */
  conn: string;
}

export class MqttBridge {
  readonly counters: MqttBridgeCounters;
  private readonly devices = new Map<string, DeviceState>();
  private deviceRows = new Map<string, DeviceRow>();
  private pendingOut = 0;
  private readonly root: string;
  private readonly log: Fleet['log'];
  private closing = false;
  private readonly malformedLogged = new Set<string>();

  constructor(private readonly opts: MqttBridgeOptions) {
    const port = opts.port;
    this.counters = {
      received: 0, malformed: 0, refused: 0, sessionsOpened: 0, sessionsAdopted: 0, sessionsEnded: 0, published: 0, dropped: 0,
      foreignResults: 0, get reconnects() { return port.reconnects; }, inFlight: 0, inFlightBytes: 0,
    };
    this.root = opts.root ?? TOPIC_ROOT;
    this.log = opts.fleet.log;
  }

  /** Subscribes through the port; resolves once subscribed the first time. */
  async start(): Promise<void> {
    const filters = controllerFilters(this.opts.share, this.root);
    await this.opts.port.start([filters.status, filters.result, filters.up], (topic, payload) => this.handle(topic, payload));
  }

  /** Devices with a session through this bridge. */
  get sessions(): number {
    let n = 0;
    for (const d of this.devices.values()) if (d.session && !d.session.closed) n++;
    return n;
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const [, d] of this.devices) d.session?.end('the controller is shutting down');
    this.devices.clear();
    await this.opts.port.close();
  }

  // ------------------------------------------------------------------ inbound

  private async handle(topic: string, payload: Buffer): Promise<void> {
    const c = this.counters;
    c.inFlight++;
    c.inFlightBytes += payload.length;
    try {
      await this.onMessage(topic, payload);
    } finally {
      c.inFlight--;
      c.inFlightBytes -= payload.length;
    }
  }

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    if (this.closing) return;
    const t = parseDeviceTopic(topic, this.root);
    if (!t) return;
    this.counters.received++;
    if (t.kind === 'status') return this.onStatus(t.deviceId, payload);
    if (t.kind !== 'up' && t.kind !== 'result') return;
    let msg: AgentMessage;
    try {
      msg = AgentMessage.decode(payload);
    } catch (err) {
      return this.malformed(t.deviceId, `a ${payload.length}-byte message on ${topic} that is not a bpfleet.v1 AgentMessage (${errText(err)})`);
    }
    const kind = msg.payload?.$case;
    if ((t.kind === 'result') !== (kind === 'commandResult')) {
      return this.malformed(t.deviceId, `${kind ?? 'an unknown message'} on ${topic}: command results go on .../result, everything else on .../up`);
    }
    if (kind === 'commandResult' && !this.opts.fleet.commands.has(msg.payload!.value.commandId)) {
      // Every controller reads every result; this one did not send that command.
      this.counters.foreignResults++;
      return;
    }
    if (kind === 'hello') return this.onHello(t.deviceId, msg);
    const session = await this.sessionFor(t.deviceId);
    if (!session) return;
    try {
      await session.receive(msg);
    } catch (err) {
      if (err instanceof FleetError) return this.malformed(t.deviceId, err.message);
      throw err;
    }
  }

  private malformed(deviceId: string, what: string): void {
    this.counters.malformed++;
    const key = `${deviceId}\0${what.slice(0, 40)}`;
    if (this.malformedLogged.has(key)) return;
    this.malformedLogged.add(key);
    this.log.warn(`mqtt: device ${deviceId}: dropped ${what} (counted; further ones like it are only counted)`);
  }

  private state(deviceId: string): DeviceState {
    let d = this.devices.get(deviceId);
    if (!d) this.devices.set(deviceId, (d = { session: undefined, conn: '' }));
    return d;
  }

  private async device(deviceId: string): Promise<DeviceRow | undefined> {
    let row = this.deviceRows.get(deviceId);
    if (!row) {
      this.deviceRows = new Map((await this.opts.fleet.store.devices()).map((r) => [r.id, r]));
      row = this.deviceRows.get(deviceId);
    }
    if (!row) {
      this.counters.refused++;
      if (!this.malformedLogged.has(`unknown\0${deviceId}`)) {
        this.malformedLogged.add(`unknown\0${deviceId}`);
        this.log.warn(`mqtt: messages from "${deviceId}", which is not an enrolled device, are dropped and counted (the broker ` +
          'should not have let it in: check its password and ACL files, bpfleet mqtt-files)');
      }
    }
    return row;
  }

  private async onHello(deviceId: string, msg: AgentMessage): Promise<void> {
    const row = await this.device(deviceId);
    if (!row || msg.payload?.$case !== 'hello') return;
    const d = this.state(deviceId);
    // A session adopted from the status (or of the previous connection) is replaced by this one;
    // acks go to whichever session is current.
    try {
      d.session = await this.opts.fleet.openSession(row, msg.payload.value, this.link(deviceId));
      this.counters.sessionsOpened++;
    } catch (err) {
      if (!(err instanceof FleetError)) throw err;
      this.counters.refused++;
      this.log.warn(`mqtt: device ${deviceId}: Hello refused: ${err.message}`);
    }
  }

  private async sessionFor(deviceId: string): Promise<AgentSession | undefined> {
    const d = this.state(deviceId);
    if (d.session && !d.session.closed) return d.session;
    const row = await this.device(deviceId);
    if (!row) return undefined;
    if (d.session && !d.session.closed) return d.session;
    try {
      d.session = await this.opts.fleet.adoptSession(row, this.link(deviceId));
      this.counters.sessionsAdopted++;
    } catch (err) {
      if (!(err instanceof FleetError)) throw err;
      return undefined;
    }
    return d.session;
  }

  private async onStatus(deviceId: string, payload: Buffer): Promise<void> {
    if (payload.length === 0) return; // a cleared retained status
    let s: { state?: unknown; conn?: unknown };
    try {
      s = JSON.parse(payload.toString('utf8')) as typeof s;
    } catch {
      return this.malformed(deviceId, `a status that is not JSON: ${JSON.stringify(payload.toString('utf8').slice(0, 60))}`);
    }
    const conn = typeof s.conn === 'string' ? s.conn : '';
    const d = this.state(deviceId);
    if (s.state === 'online') {
      d.conn = conn;
      await this.sessionFor(deviceId);
    } else if (s.state === 'offline') {
      if (d.conn !== '' && conn !== d.conn) return; // the will of an older connection
      if (d.session && !d.session.closed) {
        this.counters.sessionsEnded++;
        d.session.end(conn === '' ? 'status offline' : `status offline (connection ${conn} gone)`);
      }
      d.session = undefined;
    } else {
      this.malformed(deviceId, `a status with state ${JSON.stringify(s.state)} (expected "online" or "offline")`);
    }
  }

  // ------------------------------------------------------------------ outbound

  private link(deviceId: string): SessionLink {
    const topic = deviceTopic(deviceId, 'cmd', this.root);
    return {
      transport: 'mqtt',
      peer: `mqtt:${deviceId}`,
      send: (msg, o) => this.publish(topic, msg, o?.droppable ?? false),
      close: (err) => {
        // MQTT gives the controller no way to drop a device from the broker: forget the session;
        // the agent notices missing acks (its transport's ack watchdog) and says Hello again.
        // A replaced session ('aborted') is the normal course of a new Hello: nothing to say.
        if (err.code !== 'aborted') this.log.warn(`mqtt: device ${deviceId}: session closed by the controller: ${err.message}`);
        const d = this.devices.get(deviceId);
        if (d) d.session = undefined;
      },
    };
  }

  private publish(topic: string, msg: ControllerMessage, droppable: boolean): void {
    if (this.closing) return;
    if (droppable && this.pendingOut >= (this.opts.maxPendingOut ?? 4096)) {
      this.counters.dropped++;
      return;
    }
    this.pendingOut++;
    this.counters.published++;
    this.opts.port.publish(topic, Buffer.from(ControllerMessage.encode(msg).finish()), () => { this.pendingOut--; });
  }
}
