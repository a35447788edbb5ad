// AgentService over gRPC: Enroll (unary) and Connect (one bidirectional stream per agent
// session). Handlers are plain async functions; whatever they throw becomes the one status the
// call ends with (grpc-status.ts). The fleet core does the rest.
import { constants as http2 } from 'node:http2';
import {
  status as Status, type handleUnaryCall, type ServerDuplexStream, type ServerUnaryCall, type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { AgentMessage, ControllerMessage, EnrollRequest, EnrollResponse } from '@bpfleet/proto';
import { FleetError } from '../fleet/fleet-error.js';
import type { Fleet } from '../fleet/fleet.js';
import type { AgentSession, SessionLink } from '../fleet/session.js';
import { GrpcStatusError, toServiceError, toStatus } from './grpc-status.js';
import { InboundReader } from './inbound-reader.js';
import { OutboundQueue, type OutboundCounters, type OutboundQueueOptions } from './outbound-queue.js';
import { Malformed } from './tolerant-codec.js';

export interface AgentServiceOptions {
  fleet: Fleet;
  /** How long a new stream may stay silent before its Hello (default 30 s). */
  helloTimeoutMs?: number;
  /** After the controller ends a call, how long the agent has to take the status before the stream is reset (default 10 s). */
  closeGraceMs?: number;
  outbound?: OutboundQueueOptions;
}

type ConnectCall = ServerDuplexStream<AgentMessage | Malformed, ControllerMessage>;

const BEARER = /^Bearer\s+(\S+)\s*$/i;

function credentialOf(call: ConnectCall): string {
  const values = call.metadata.get('authorization');
  const m = values.length === 1 ? BEARER.exec(String(values[0])) : null;
  if (!m) {
    throw new GrpcStatusError(Status.UNAUTHENTICATED, 'no device credential: send the metadata "authorization: Bearer ' +
      '<credential>" with the credential the device got at enrollment');
  }
  return m[1]!;
}

/** The last resort for a peer that never takes its status: reset the HTTP/2 stream (grpc-js has no public call for it). */
function resetStream(call: ConnectCall): void {
  const inner = (call as unknown as { call?: { stream?: { closed?: boolean; close?: (code: number) => void } } }).call?.stream;
  if (inner && !inner.closed) inner.close?.(http2.NGHTTP2_CANCEL);
}

/** One Connect call, from credential to status. */
class ConnectHandler {
  private readonly reader: InboundReader<AgentMessage | Malformed>;
  private out: OutboundQueue | undefined;
  private session: AgentSession | undefined;
  /** Why the controller ends the call (fleet close, overflow), if it does. */
  private closing: FleetError | undefined;
  private finished = false;
  readonly peer: string;

  constructor(private readonly call: ConnectCall, private readonly opts: AgentServiceOptions) {
    this.reader = new InboundReader(call);
    this.peer = call.getPeer();
  }

  get outboundCounters(): OutboundCounters | undefined {
    return this.out?.counters;
  }

  async run(): Promise<void> {
    let error: unknown;
    try {
      await this.serve();
    } catch (err) {
      error = err;
    }
    error = this.closing ?? error;
    this.session?.end(error === undefined ? (this.reader.endedBecause ?? 'session ended') : toStatus(error).details);
    await this.finish(error);
  }

  /** The controller ends the session: stop reading, and run() ends the call with `err`. */
  close(err: FleetError): void {
    this.closing ??= err;
    this.reader.stop(err.message);
  }

  private async serve(): Promise<void> {
    const { fleet } = this.opts;
    const device = await fleet.authenticate(credentialOf(this.call));
    const first = await this.firstMessage();
    if (first === undefined) return; // gone before saying Hello
    if (first instanceof Malformed) throw new GrpcStatusError(Status.INVALID_ARGUMENT, first.describe());
    if (first.payload?.$case !== 'hello') {
      throw new GrpcStatusError(Status.INVALID_ARGUMENT, `the first message of a session must be Hello, got ` +
        `${first.payload?.$case ?? 'a message without payload'}`);
    }
    this.out = new OutboundQueue(this.call, (why) => this.close(new FleetError('resource_exhausted', why)), this.opts.outbound);
    const out = this.out;
    const link: SessionLink = {
      transport: 'grpc',
      peer: this.peer,
      send: (msg, o) => out.push(msg, o),
      close: (err) => this.close(err),
    };
    this.session = await fleet.openSession(device, first.payload.value, link);
    for (;;) {
      const msg = await this.reader.next();
      if (msg === undefined) break;
      if (msg instanceof Malformed) throw new GrpcStatusError(Status.INVALID_ARGUMENT, msg.describe());
      await this.session.receive(msg);
    }
    if (this.closing === undefined && this.reader.endedBecause === 'the agent closed the session') {
      // A clean goodbye: store and ack what it sent last before ending the call.
      await fleet.flush();
      await this.outboundIdle();
    }
  }

  private async firstMessage(): Promise<AgentMessage | Malformed | undefined> {
    const ms = this.opts.helloTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_r, reject) => {
      timer = setTimeout(() => {
        this.reader.stop('no Hello');
        reject(new GrpcStatusError(Status.DEADLINE_EXCEEDED, `no Hello within ${ms / 1000} s of connecting`));
      }, ms);
    });
    try {
      return await Promise.race([this.reader.next(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async outboundIdle(): Promise<void> {
    const until = Date.now() + (this.opts.closeGraceMs ?? 10_000);
    while (this.out && this.out.length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  }

  private async finish(error: unknown): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.out?.close();
    const call = this.call;
    if (call.cancelled || call.destroyed) return;
    if (error === undefined) {
      call.end();
    } else {
      const status = toStatus(error);
      const who = this.session ? `device ${this.session.deviceId}` : 'agent';
      this.opts.fleet.log.warn(`grpc: ending the session of ${who} from ${this.peer}: ${Status[status.code]}: ${status.details}`);
      call.emit('error', status); // grpc-js: the status the call ends with, sent after what was written
    }
    const grace = setTimeout(() => resetStream(call), this.opts.closeGraceMs ?? 10_000);
    grace.unref();
    call.once('finish', () => clearTimeout(grace));
    call.once('close', () => clearTimeout(grace));
  }
}

export class AgentServiceHandlers {
  private readonly active = new Set<ConnectHandler>();

  constructor(private readonly opts: AgentServiceOptions) {}

  get implementation(): UntypedServiceImplementation {
    const enroll: handleUnaryCall<EnrollRequest | Malformed, EnrollResponse> = (call, callback) => {
      this.enroll(call).then((res) => callback(null, res), (err: unknown) => callback(toServiceError(err)));
    };
    const connect = (call: ConnectCall): void => {
      const h = new ConnectHandler(call, this.opts);
      this.active.add(h);
      void h.run().finally(() => this.active.delete(h));
    };
    return { enroll, connect };
  }

  /** Calls being served now. */
  get activeCalls(): number {
    return this.active.size;
  }

  private async enroll(call: ServerUnaryCall<EnrollRequest | Malformed, EnrollResponse>): Promise<EnrollResponse> {
    const req = call.request;
    if (req instanceof Malformed) throw new GrpcStatusError(Status.INVALID_ARGUMENT, req.describe());
    try {
      return await this.opts.fleet.enroll(req, { transport: 'grpc', peer: call.getPeer() });
    } catch (err) {
      this.opts.fleet.log.warn(`grpc: enrollment of "${req.deviceName}" from ${call.getPeer()} refused: ${toStatus(err).details}`);
      throw err;
    }
  }

  /** Ends every call (controller shutting down). */
  closeAll(err: FleetError): void {
    for (const h of this.active) h.close(err);
  }
}
