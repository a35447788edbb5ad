// The controller's gRPC endpoint for agents (AgentService, @grpc/grpc-js). Plaintext only on
// loopback unless asked for explicitly; TLS, and mutual TLS with a client CA, by options.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { FleetError } from '../fleet/fleet-error.js';
import type { Fleet } from '../fleet/fleet.js';
import type { Store } from '../store/store.js';
import { AgentServiceHandlers } from './agent-service.js';
import type { OutboundQueueOptions } from './outbound-queue.js';
import { TolerantAgentService } from './tolerant-codec.js';

/** PEM text, or a path to a PEM file. */
export type PemSource = string | Buffer;

export interface GrpcTlsOptions {
  /** Server certificate chain and its key. */
  cert: PemSource;
  key: PemSource;
  /** CA that signs agent certificates: with it, agents present client certificates (mutual TLS). */
  ca?: PemSource;
  /** Refuse agents without a valid client certificate (default: true when ca is given). */
  requireClientCert?: boolean;
}

export interface GrpcServerOptions {
  fleet: Fleet;
  /** The fleet's store; given only to check it is the same one. */
  store?: Store;
  /** host:port to listen on (default 127.0.0.1:50051; port 0 picks a free one). */
  address?: string;
  tls?: GrpcTlsOptions;
  /** Serve plaintext on a non-loopback address (default false: refused without tls). */
  insecure?: boolean;
  /** Largest message an agent may send (default 16 MiB: batches are at most a few MB). */
  maxReceiveBytes?: number;
  /** Largest message the controller sends (default 64 MiB: probe bundles). */
  maxSendBytes?: number;
  /** HTTP/2 keepalive ping period and how long to wait for its answer (default 20 s, 10 s). */
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  helloTimeoutMs?: number;
  closeGraceMs?: number;
  outbound?: OutboundQueueOptions;
}

export interface GrpcServerHandle {
  server: Server;
  /** host:port actually bound. */
  address: string;
  port: number;
  tls: boolean;
  /** Connect calls being served. */
  activeCalls(): number;
  /** Ends every session (agents reconnect later), then stops; forced after graceMs (default 5 s). */
  close(graceMs?: number): Promise<void>;
}

const pem = (s: PemSource): Buffer =>
  Buffer.isBuffer(s) ? s : s.includes('-----BEGIN') ? Buffer.from(s) : readFileSync(s);

function splitAddress(address: string): { host: string; port: string } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`gRPC address "${address}" is not host:port (e.g. 127.0.0.1:50051 or [::1]:50051)`);
  return { host: m[1]!, port: m[2]! };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

function credentials(opts: GrpcServerOptions, host: string, address: string): ServerCredentials {
  const tls = opts.tls;
  if (!tls) {
    if (!isLoopback(host) && !opts.insecure) {
      throw new Error(`refusing to serve agents without TLS on ${address}: device credentials would cross the network in ` +
        'clear; pass tls (cert, key and for mutual TLS ca), or insecure for a trusted network');
    }
    return ServerCredentials.createInsecure();
  }
  const ca = tls.ca === undefined ? null : pem(tls.ca);
  const requireClientCert = tls.requireClientCert ?? ca !== null;
  if (requireClientCert && !ca) throw new Error('tls.requireClientCert needs tls.ca, the CA that signs agent certificates');
  return ServerCredentials.createSsl(ca, [{ cert_chain: pem(tls.cert), private_key: pem(tls.key) }], requireClientCert);
}

export async function startGrpcServer(opts: GrpcServerOptions): Promise<GrpcServerHandle> {
  if (opts.store && opts.store !== opts.fleet.store) throw new Error('startGrpcServer: store is not the store of the fleet');
  const address = opts.address ?? '127.0.0.1:50051';
  const { host } = splitAddress(address);
  const creds = credentials(opts, host, address);
  const server = new Server({
    'grpc.keepalive_time_ms': opts.keepaliveTimeMs ?? 20_000,
    'grpc.keepalive_timeout_ms': opts.keepaliveTimeoutMs ?? 10_000,
    // Agents behind NAT ping to keep their mapping: allow it even between calls.
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    'grpc.max_receive_message_length': opts.maxReceiveBytes ?? 16 << 20,
    'grpc.max_send_message_length': opts.maxSendBytes ?? 64 << 20,
  });
  const handlers = new AgentServiceHandlers({
    fleet: opts.fleet,
    ...(opts.helloTimeoutMs === undefined ? {} : { helloTimeoutMs: opts.helloTimeoutMs }),
    ...(opts.closeGraceMs === undefined ? {} : { closeGraceMs: opts.closeGraceMs }),
    ...(opts.outbound === undefined ? {} : { outbound: opts.outbound }),
  });
  server.addService(TolerantAgentService, handlers.implementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, creds, (err, p) => {
      if (err) reject(new Error(`cannot listen for agents on ${address}: ${err.message} (is another controller running?)`, { cause: err }));
      else resolve(p);
    });
  });
  const bound = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  opts.fleet.log.info(`grpc: serving agents on ${bound} (${opts.tls ? (opts.tls.ca ? 'mutual TLS' : 'TLS') : 'plaintext'})`);

  return {
    server,
    address: bound,
    port,
    tls: opts.tls !== undefined,
    activeCalls: () => handlers.activeCalls,
    close: async (graceMs = 5000) => {
      handlers.closeAll(new FleetError('unavailable', 'the controller is shutting down; reconnect later'));
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      });
    },
  };
}
