// The bridge's port to the embedded aedes broker of this same process: the bridge listens on the
// broker's message bus (aedes.subscribe) and publishes into it (aedes.publish). There is no
// loopback socket and no controller MQTT session in between, so nothing can pile up between the
// broker and the bridge and no keepalive or drain timeout can cut them apart.
//
// Backpressure: aedes finishes a device's PUBLISH (and reads the next bytes of that device's
// socket) only once every listener on the bus called back, and this port calls back when the
// bridge has handled the message, stored events included. A controller busy committing
// therefore slows each device's TCP stream (its agent spools), never queues in memory here.
// A device's messages are handled in order, one at a time, even when aedes parsed several of
// them from one read and hands them over together; different devices run concurrently.
import type { Aedes, AedesPublishPacket } from 'aedes';
import type { Fleet } from '../fleet/fleet.js';
import { errText, type BridgePort, type PortHandler } from './bridge-port.js';

type BusListener = (packet: AedesPublishPacket, cb: () => void) => void;

export class InProcessPort implements BridgePort {
  readonly reconnects = 0;
  private readonly listeners: Array<[string, BusListener]> = [];
  /** Per publisher: the tail of its chain of messages being handled. */
  private readonly chains = new Map<string, Promise<void>>();
  private closing = false;

  constructor(private readonly aedes: Aedes, private readonly log: Fleet['log']) {}

  async start(filters: string[], handler: PortHandler): Promise<void> {
    const listener: BusListener = (packet, cb) => {
      if (this.closing) return cb();
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      // aedes names the publishing client on the packet; the broker's own publishes (a last will
      // after a lost connection) have none and are chained by topic.
      const key = (packet as { clientId?: string }).clientId ?? packet.topic;
      const prev = this.chains.get(key) ?? Promise.resolve();
      const run = prev.then(() => handler(packet.topic, payload)).catch((err: unknown) => {
        this.log.error(`mqtt: handling a message on ${packet.topic} failed: ${errText(err)}`);
      });
      this.chains.set(key, run);
      void run.then(() => {
        if (this.chains.get(key) === run) this.chains.delete(key);
        cb();
      });
    };
    for (const f of filters) {
      await new Promise<void>((resolve, reject) => {
        this.aedes.subscribe(f, listener, (err?: Error) => (err ? reject(new Error(`the embedded broker refused ${f}: ${err.message}`)) : resolve()));
      });
      this.listeners.push([f, listener]);
    }
  }

  publish(topic: string, payload: Buffer, done: () => void): void {
    if (this.closing) return done();
    // aedes calls back once the message is written to the device's socket (or waited for its
    // drain), which is what the bridge's count of pending publishes measures.
    this.aedes.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, () => done());
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const [f, l] of this.listeners.splice(0)) {
      await new Promise<void>((r) => this.aedes.unsubscribe(f, l, () => r()));
    }
    await Promise.allSettled([...this.chains.values()]);
  }
}
