// `bpfleet controller --mqtt`: either the embedded broker plus the bridge logged into it, or
// the bridge alone against an external broker (Mosquitto) given by URL.
import os from 'node:os';
import type { Fleet } from '../fleet/fleet.js';
import { startEmbeddedBroker, type BrokerCounters } from './embedded-broker.js';
import { ClientPort } from './client-port.js';
import { InProcessPort } from './inprocess-port.js';
import { MqttBridge, type MqttBridgeCounters } from './mqtt-bridge.js';
import { renderMqttMetrics } from './mqtt-metrics.js';

export interface MqttOptions {
  fleet: Fleet;
  /** Run the broker in this process, devices connecting to host:port. */
  embedded?: { host: string; port: number };
  /** Or connect to this broker as a client (MQTT 5). */
  external?: {
    url: string;
    username: string;
    password: string;
    ca?: Buffer;
    /** Shared-subscription group: several controllers split the devices' up topics. */
    share?: string;
    clientId?: string;
  };
}

export interface RunningMqtt {
  /** The broker devices use. */
  url: string;
  embedded: boolean;
  bridge: MqttBridge;
  counters(): { bridge: MqttBridgeCounters; broker?: BrokerCounters };
  close(): Promise<void>;
}

export async function startMqtt(opts: MqttOptions): Promise<RunningMqtt> {
  const { fleet } = opts;
  if (opts.embedded) {
    const broker = await startEmbeddedBroker({ fleet, host: opts.embedded.host, port: opts.embedded.port });
    // The bridge sits on the broker's own message bus: no socket, no second MQTT session, and
    // each device's TCP stream is what slows down when the store is busy (inprocess-port.ts).
    // The embedded broker has no shared subscriptions (aedes speaks MQTT 3.1.1) and needs none.
    const bridge = new MqttBridge({ fleet, port: new InProcessPort(broker.aedes, fleet.log) });
    try {
      await bridge.start();
    } catch (err) {
      await broker.close();
      throw err;
    }
    fleet.addMetricsSource(() => renderMqttMetrics({ bridge: bridge.counters, broker: broker.counters }));
    return {
      url: broker.url, embedded: true, bridge,
      counters: () => ({ bridge: bridge.counters, broker: broker.counters }),
      close: async () => { await bridge.close(); await broker.close(); },
    };
  }
  const ext = opts.external;
  if (!ext) throw new Error('startMqtt: give embedded or external');
  const port = new ClientPort({
    url: ext.url, username: ext.username, password: ext.password, log: fleet.log,
    clientId: ext.clientId ?? `bpfleet-controller-${os.hostname()}-${process.pid}`,
    // Alone, a persistent session lets the broker queue devices' messages while this controller restarts.
    // In a share group it would also hold messages for a controller gone for good: clean then.
    protocolVersion: 5, persistent: ext.share === undefined,
    ...(ext.ca ? { tls: { ca: ext.ca } } : {}),
  });
  const bridge = new MqttBridge({ fleet, port, ...(ext.share ? { share: ext.share } : {}) });
  await bridge.start();
  fleet.addMetricsSource(() => renderMqttMetrics({ bridge: bridge.counters }));
  return {
    url: ext.url, embedded: false, bridge,
    counters: () => ({ bridge: bridge.counters }),
    close: () => bridge.close(),
  };
}
