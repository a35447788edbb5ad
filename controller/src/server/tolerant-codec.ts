// AgentService with request decoding that does not throw. grpc-js answers a request it cannot
// deserialize with INTERNAL, which blames the controller; here a malformed request reaches the
// handler as a Malformed value and is answered INVALID_ARGUMENT, saying what was wrong.
import { AgentMessage, AgentServiceService, EnrollRequest } from '@bpfleet/proto';

export class Malformed {
  constructor(readonly type: string, readonly bytes: number, readonly reason: string) {}

  describe(): string {
    return `malformed ${this.type} (${this.bytes} bytes: ${this.reason}); the agent and the controller must both speak bpfleet.v1`;
  }
}

function tolerant<T>(type: string, decode: (b: Uint8Array) => T): (b: Buffer) => T | Malformed {
  return (b) => {
    try {
      return decode(b);
    } catch (err) {
      return new Malformed(type, b.length, err instanceof Error ? err.message : String(err));
    }
  };
}

export const TolerantAgentService = {
  enroll: { ...AgentServiceService.enroll, requestDeserialize: tolerant('EnrollRequest', (b) => EnrollRequest.decode(b)) },
  connect: { ...AgentServiceService.connect, requestDeserialize: tolerant('AgentMessage', (b) => AgentMessage.decode(b)) },
} as const;
