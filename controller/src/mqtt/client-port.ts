// The bridge's port to an external MQTT broker: one mqtt.js client. mqtt.js hands over messages
// one at a time and sends the PUBACK once the handler settled, so a controller busy committing
// slows the broker's delivery rather than queueing in memory.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Fleet } from '../fleet/fleet.js';
import { errText, type BridgePort, type PortHandler } from './bridge-port.js';

export interface ClientPortOptions {
  /** mqtt://HOST:PORT or mqtts://HOST:PORT. */
  url: string;
  username: string;
  password: string;
  /** Unique per controller; with a persistent session the broker keeps its subscriptions and queue across restarts. */
  clientId: string;
  /** 5 for shared subscriptions (default), 4 for a 3.1.1-only broker. */
  protocolVersion?: 4 | 5;
  /** Persistent broker session (default true). */
  persistent?: boolean;
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  log: Fleet['log'];
}

export class ClientPort implements BridgePort {
  reconnects = 0;
  private client: MqttClient | undefined;
  private closing = false;
  private connectedOnce = false;

  constructor(private readonly o: ClientPortOptions) {}

  start(filters: string[], handler: PortHandler): Promise<void> {
    const o = this.o;
    const options: IClientOptions = {
      clientId: o.clientId,
      username: o.username,
      password: o.password,
      clean: !(o.persistent ?? true),
      protocolVersion: o.protocolVersion ?? 5,
      keepalive: 20,
      connectTimeout: 10_000,
      reconnectPeriod: 1000,
      resubscribe: false,
      ...(o.protocolVersion !== 4 && (o.persistent ?? true) ? { properties: { sessionExpiryInterval: 3600 } } : {}),
      ...(o.tls ? { ca: o.tls.ca, ...(o.tls.cert ? { cert: o.tls.cert, key: o.tls.key } : {}), rejectUnauthorized: true } : {}),
    };
    const client = mqtt.connect(o.url, options);
    this.client = client;
    client.handleMessage = (packet, done) => {
      handler(packet.topic, packet.payload as Buffer).then(() => done(), (err: unknown) => {
        o.log.error(`mqtt: handling a message on ${packet.topic} failed: ${errText(err)}`);
        done();
      });
    };
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection to the MQTT broker ${o.url} within 15 s`)), 15_000);
      client.on('connect', () => {
        // No Nagle: acks to devices are small and each one matters at once.
        (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
        client.subscribe(filters, { qos: 1 }, (err, granted) => {
          const bad = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
          if (err || bad.length > 0) {
            const why = `the broker ${o.url} refused the controller's subscriptions ${err ? err.message : bad.join(', ')}: ` +
              `check its ACL for user ${o.username} (docs/MQTT.md)`;
            o.log.error(`mqtt: ${why}`);
            clearTimeout(timer);
            reject(new Error(why));
            return;
          }
          if (this.connectedOnce) {
            this.reconnects++;
            o.log.info(`mqtt: reconnected to ${o.url}`);
          }
          this.connectedOnce = true;
          clearTimeout(timer);
          resolve();
        });
      });
      client.on('error', (err) => {
        if (!this.connectedOnce) {
          clearTimeout(timer);
          reject(new Error(`MQTT broker ${o.url}: ${err.message}`));
        } else {
          o.log.warn(`mqtt: ${err.message}`);
        }
      });
      client.on('offline', () => { if (!this.closing) o.log.warn(`mqtt: lost the broker ${o.url}; reconnecting`); });
    });
  }

  publish(topic: string, payload: Buffer, done: () => void): void {
    const c = this.client;
    if (!c || this.closing) return done();
    c.publish(topic, payload, { qos: 1 }, () => done());
  }

  async close(): Promise<void> {
    this.closing = true;
    const c = this.client;
    if (c) await new Promise<void>((r) => c.end(false, {}, () => r()));
  }
}
