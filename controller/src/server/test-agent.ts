// Test client for the gRPC server: the generated AgentServiceClient driven by hand, so tests
// can say exactly what an agent sends (including what a correct agent never would).
import {
  Client, credentials as grpcCredentials, Metadata, type ChannelCredentials, type ClientDuplexStream, type ServiceError,
  type StatusObject,
} from '@grpc/grpc-js';
import {
  AgentServiceClient, ControllerMessage, type AgentMessage, type DeviceFacts, type EnrollRequest, type EnrollResponse,
  type EventBatch, type Hello, type StreamCursor,
} from '@bpfleet/proto';

export function x86Facts(over: Partial<DeviceFacts['caps'] & object> = {}): DeviceFacts {
  return {
    board: 'workstation', arch: 'x86_64', kernelRelease: '6.1.0-test', libc: 'glibc', memoryBytes: 8n << 30n, cpus: 4,
    hostname: 'bench', caps: { btf: true, kprobes: true, tracepoints: true, jit: true, bpfSyscall: true, ...over },
  };
}

export function enroll(address: string, req: Partial<EnrollRequest>, creds = grpcCredentials.createInsecure()):
  Promise<EnrollResponse> {
  const client = new AgentServiceClient(address, creds);
  return new Promise<EnrollResponse>((resolve, reject) => {
    client.enroll({ token: '', deviceName: '', facts: undefined, ...req }, (err, res) => (err ? reject(err) : resolve(res)))
  }).finally(() => client.close());
}

export function bearer(credential: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${credential}`);
  return md;
}

/** One Connect call, with everything the controller sent kept in order. */
export class TestAgent {
  readonly received: ControllerMessage[] = [];
  readonly status: Promise<StatusObject>;
  private readonly waiters: (() => void)[] = [];

  private constructor(private readonly client: Client, readonly call: ClientDuplexStream<AgentMessage, ControllerMessage>) {
    call.on('data', (m: ControllerMessage) => {
      this.received.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
    call.on('error', () => undefined); // the status says it all
    this.status = new Promise((resolve) => call.on('status', resolve));
    void this.status.then(() => { for (const w of this.waiters.splice(0)) w(); });
  }

  static connect(address: string, metadata: Metadata, creds: ChannelCredentials = grpcCredentials.createInsecure()): TestAgent {
    const client = new AgentServiceClient(address, creds);
    return new TestAgent(client, client.connect(metadata));
  }

  /** A call sending raw bytes as AgentMessages: for what the generated encoder would never produce. */
  static raw(address: string, metadata: Metadata): { send(b: Buffer): void; agent: TestAgent } {
    const client = new Client(address, grpcCredentials.createInsecure());
    const call = client.makeBidiStreamRequest('/bpfleet.v1.AgentService/Connect', (b: Buffer) => b,
      (b: Buffer) => ControllerMessage.decode(b), metadata);
    const agent = new TestAgent(client, call as unknown as ClientDuplexStream<AgentMessage, ControllerMessage>);
    return { send: (b) => call.write(b), agent };
  }

  send(msg: AgentMessage): void {
    this.call.write(msg);
  }

  hello(deviceId: string, spooled: StreamCursor[] = [], facts = x86Facts(), over: Partial<Hello> = {}): void {
    this.send({ payload: { $case: 'hello', value: { deviceId, facts, agentVersion: '0.1.0-test', installed: [], spooled, agentInstance: '', ...over } } });
  }

  batch(b: EventBatch): void {
    this.send({ payload: { $case: 'eventBatch', value: b } });
  }

  /** Resolves with the first message received (from index `from`) that `pick` accepts. */
  async next<T>(pick: (m: ControllerMessage) => T | undefined, timeoutMs = 5000, from = 0): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (let seen = from; ; ) {
      for (; seen < this.received.length; seen++) {
        const v = pick(this.received[seen]!);
        if (v !== undefined) return v;
      }
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no matching message within ${timeoutMs} ms; received ${JSON.stringify(this.received.map((m) => m.payload?.$case))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  welcome() {
    return this.next((m) => (m.payload?.$case === 'welcome' ? m.payload.value : undefined));
  }

  /** The first ack of `streamId` with ackedThrough >= `through`. */
  ackThrough(streamId: string, through: bigint) {
    return this.next((m) => (m.payload?.$case === 'ack' && m.payload.value.streamId === streamId &&
      m.payload.value.ackedThrough >= through ? m.payload.value : undefined));
  }

  acks(streamId: string): bigint[] {
    return this.received.flatMap((m) => (m.payload?.$case === 'ack' && m.payload.value.streamId === streamId ? [m.payload.value.ackedThrough] : []));
  }

  /** Half-closes and waits for the status. */
  async end(): Promise<StatusObject> {
    this.call.end();
    return this.status;
  }

  cancel(): void {
    this.call.cancel();
  }

  close(): void {
    this.client.close();
  }
}

export const isServiceError = (e: unknown): e is ServiceError => e instanceof Error && 'code' in e;
