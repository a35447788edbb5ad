// What the session needs from a link to the controller, whatever carries it (gRPC now, MQTT
// later). Messages are the plain bpfleet.v1 types; nothing here knows about gRPC.
import type { AgentMessage, ControllerMessage } from '@bpfleet/proto';

/** send() while no session stream is open, or the stream went down while the message waited. */
export class TransportDownError extends Error {
  override name = 'TransportDownError';
}

export interface TransportEvents {
  /** A session stream is open: the session speaks first (Hello). */
  up: () => void;
  /** The stream is gone; the transport reconnects by itself after its backoff. */
  down: (reason: string) => void;
}

export interface Transport {
  /** Starts connecting; after every loss it reconnects with backoff, until close(). */
  connect(): void;
  /** True between 'up' and 'down'. */
  readonly isUp: boolean;
  /** True when up and a send() now is written at once (no backpressure pending). */
  readonly writable: boolean;
  /**
   * Writes one message, in call order. Resolves once the stream took it; while the stream is
   * backed up it first waits for it to drain. Rejects with TransportDownError when not up or
   * when the stream goes down first.
   */
  send(msg: AgentMessage): Promise<void>;
  /** Every message the controller sends, in order. */
  onMessage(handler: (msg: ControllerMessage) => void): void;
  on<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void;
  /** Drops the current stream (e.g. no Welcome in time) and reconnects after the backoff. */
  reconnect(reason: string): void;
  /** Half-closes the stream, waits briefly for the controller to finish, stops reconnecting. */
  close(): Promise<void>;
}

/** Reconnect delay: exponential with full jitter, reset once a stream proves healthy. */
export interface ReconnectBackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_RECONNECT_BACKOFF: ReconnectBackoffOptions = { initialMs: 500, maxMs: 30_000 };

export class ReconnectBackoff {
  private attempt = 0;

  constructor(
    private readonly opts: ReconnectBackoffOptions = DEFAULT_RECONNECT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** Uniform in [0, min(max, initial * 2^attempt)): agents that lost one controller spread out. */
  next(): number {
    const cap = Math.min(this.opts.maxMs, this.opts.initialMs * 2 ** this.attempt);
    if (cap < this.opts.maxMs) this.attempt++;
    return Math.floor(this.random() * cap);
  }

  reset(): void {
    this.attempt = 0;
  }
}
