// One agent session as the fleet core sees it, whatever carries it (a gRPC stream now, MQTT
// later). The transport authenticates, hands over the Hello (Fleet.openSession), feeds every
// further message to receive(), and calls end() when the connection goes. The fleet talks back
// through the SessionLink.
import type { AgentMessage, ControllerMessage, DeviceFacts, InstalledProbe } from '@bpfleet/proto';
import type { FleetError } from './fleet-error.js';

export interface SendOptions {
  /**
   * May be dropped (and counted) when the session's outbound queue is backed up. Never set for
   * Welcome, Ack or commands: the transport closes the session rather than drop those.
   */
  droppable?: boolean;
}

/** What the fleet needs from a transport for one session. */
export interface SessionLink {
  /** Transport name stored with the device ("grpc", "mqtt"). */
  readonly transport: string;
  /** Remote address, for logs. */
  readonly peer: string;
  /** Queues a message for the agent, in order; never blocks (backpressure is the transport's). */
  send(msg: ControllerMessage, opts?: SendOptions): void;
  /** Ends the session from the controller's side, telling the agent why. */
  close(error: FleetError): void;
}

/** What the session needs from the fleet. */
export interface SessionHost {
  handle(session: AgentSession, msg: AgentMessage): Promise<void>;
  ended(session: AgentSession, reason: string): void;
}

export interface SessionCounters {
  received: number;
  batches: number;
  acks: number;
  commands: number;
  /** Messages with a payload this controller does not know (a newer agent): ignored. */
  unknown: number;
}

let nextSessionId = 1;

export class AgentSession {
  readonly id = nextSessionId++;
  readonly connectedAtMs: number;
  readonly counters: SessionCounters = { received: 0, batches: 0, acks: 0, commands: 0, unknown: 0 };
  private endedWith: string | undefined;

  constructor(
    private readonly host: SessionHost,
    readonly link: SessionLink,
    readonly deviceId: string,
    readonly deviceName: string,
    /** As measured at Hello. */
    readonly facts: DeviceFacts | undefined,
    readonly agentVersion: string,
    readonly installed: InstalledProbe[],
    nowMs: number,
    /** Hello.agent_instance: which agent process holds the session ('' if it did not say). */
    readonly agentInstance = '',
  ) {
    this.connectedAtMs = nowMs;
  }

  get closed(): boolean {
    return this.endedWith !== undefined;
  }

  /** Handles one message from the agent. Throws FleetError for a message the protocol forbids. */
  receive(msg: AgentMessage): Promise<void> {
    if (this.closed) return Promise.resolve(); // late message of a replaced session: the agent resends
    this.counters.received++;
    return this.host.handle(this, msg);
  }

  /** The transport lost the connection (or finished closing it). Idempotent. */
  end(reason: string): void {
    if (this.closed) return;
    this.endedWith = reason;
    this.host.ended(this, reason);
  }

  /** The controller ends the session: tells the agent why, then forgets it. */
  close(error: FleetError): void {
    if (this.closed) return;
    this.link.close(error);
    this.end(error.message);
  }

  send(msg: ControllerMessage, opts?: { droppable?: boolean }): void {
    if (this.closed) return;
    if (msg.payload?.$case === 'ack') this.counters.acks++;
    this.link.send(msg, opts);
  }
}
