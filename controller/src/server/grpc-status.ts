// How errors become gRPC statuses. Handlers throw; these helpers turn what they threw into the
// one status the call ends with, so no code path answers twice.
import { Metadata, status as Status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { FleetError, type FleetErrorCode } from '../fleet/fleet-error.js';
import { StoreIoError } from '../store/errors.js';

/** An error only the gRPC transport knows (missing metadata, Hello timeout). */
export class GrpcStatusError extends Error {
  override name = 'GrpcStatusError';
  constructor(readonly code: Status, message: string) {
    super(message);
  }
}

const FLEET_CODES: Record<FleetErrorCode, Status> = {
  unauthenticated: Status.UNAUTHENTICATED,
  permission_denied: Status.PERMISSION_DENIED,
  invalid_argument: Status.INVALID_ARGUMENT,
  resource_exhausted: Status.RESOURCE_EXHAUSTED,
  unavailable: Status.UNAVAILABLE,
  aborted: Status.ABORTED,
};

export function toStatus(err: unknown): StatusObject {
  let code: Status;
  let details: string;
  if (err instanceof GrpcStatusError) ({ code, message: details } = err);
  else if (err instanceof FleetError) { code = FLEET_CODES[err.code]; details = err.message; }
  else if (err instanceof StoreIoError) { code = Status.UNAVAILABLE; details = `controller store unavailable: ${err.message}`; }
  else { code = Status.INTERNAL; details = `internal error in the controller: ${err instanceof Error ? err.message : String(err)}`; }
  return { code, details, metadata: new Metadata() };
}

export function toServiceError(err: unknown): Partial<ServiceError> {
  const s = toStatus(err);
  return Object.assign(new Error(s.details), s);
}
