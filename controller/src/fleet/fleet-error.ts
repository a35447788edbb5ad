// Errors the fleet core throws at its transports. The code says which status the transport
// answers with (gRPC status, MQTT reason code); the message says what to do about it.

export type FleetErrorCode =
  /** No or unknown credential / enrollment token. */
  | 'unauthenticated'
  /** Known credential, but it does not allow what was asked (another device's id). */
  | 'permission_denied'
  /** A message the protocol does not allow here: malformed, unexpected, out of order. */
  | 'invalid_argument'
  /** The session cannot keep up (its outbound queue is full). */
  | 'resource_exhausted'
  /** The controller cannot serve now (store failure); the agent should reconnect and resend. */
  | 'unavailable'
  /** The session was ended by the controller (replaced by a newer one, controller shutting down). */
  | 'aborted';

export class FleetError extends Error {
  override name = 'FleetError';
  constructor(readonly code: FleetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
