// How the MQTT bridge (mqtt-bridge.ts) meets a broker. The bridge holds the protocol (sessions,
// acks, statuses); a port only moves messages:
// - ClientPort (client-port.ts): an mqtt.js client, for an external broker (Mosquitto, a
//   cluster), with shared subscriptions when several controllers split the devices.
// - InProcessPort (inprocess-port.ts): the embedded aedes broker of this same process, reached
//   through its message bus with no socket and no second MQTT session in between.

/** Handles one message; the port delivers the next message of the same device only after it settles. */
export type PortHandler = (topic: string, payload: Buffer) => Promise<void>;

export interface BridgePort {
  /** Times the port lost its broker and got it back. */
  readonly reconnects: number;
  /** Subscribes to the filters (QoS 1) and delivers what matches to `handler`; resolves once subscribed. */
  start(filters: string[], handler: PortHandler): Promise<void>;
  /** Publishes with QoS 1; `done` runs once the message left this process (or failed). */
  publish(topic: string, payload: Buffer, done: () => void): void;
  close(): Promise<void>;
}

/** The message of a thrown value, for log lines of the bridge and its ports. */
export const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
