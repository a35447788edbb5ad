// The admin API: JSON over HTTP (node:http) for the `bpfleet` CLI and scripts, bound to
// 127.0.0.1 by default. Every /api/ request needs the admin token as a bearer token.
//
// /metrics is open by default: it holds counters and device names, no events and no secrets,
// and Prometheus would otherwise need the admin token, which can deploy kernel code to every
// board. Set metricsToken to require a separate, read-only bearer token for scrapes (do so when
// the listener is not on loopback).
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CONTENT_TYPE as METRICS_CONTENT_TYPE } from '../metrics/exposition.js';
import { renderFleetMetrics } from '../metrics/fleet-metrics.js';
import type { Store } from '../store/store.js';
import { DEFAULT_ADMIN_PORT } from './client-config.js';
import type { FleetCommands } from './fleet-commands.js';
import { ClientGoneError, HttpError, sendError } from './http-io.js';
import { DEFAULT_BPF_OUT } from './probe-catalog.js';
import { Query, type AdminContext, type Handler } from './request.js';
import { postDeploy, postStop, postToken } from './routes-commands.js';
import { getDevices, getEvents, getExport, getProbes, getRuns, getStats, getStreams } from './routes-read.js';
import { getSmoke, postSmoke } from '../smoke/routes-smoke.js';
import { getAnomalies, getFlamegraph } from '../stacks/routes-stacks.js';

export interface AdminServerOptions {
  store: Store;
  fleet?: FleetCommands;
  /** The admin bearer token (see loadOrCreateAdminToken). */
  token: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 7475; 0 picks a free port. */
  port?: number;
  /** If set, GET /metrics requires this bearer token instead of none. */
  metricsToken?: string;
  bpfOutDir?: string;
  followPollMs?: number;
  commandTimeoutMs?: number;
  keepAliveMs?: number;
  now?: () => number;
  /** Where unexpected errors are reported (default: stderr). */
  log?: (line: string) => void;
}

const ROUTES: Record<string, Partial<Record<string, Handler>>> = {
  '/api/v1/devices': { GET: getDevices },
  '/api/v1/probes': { GET: getProbes },
  '/api/v1/runs': { GET: getRuns },
  '/api/v1/streams': { GET: getStreams },
  '/api/v1/events': { GET: getEvents },
  '/api/v1/export': { GET: getExport },
  '/api/v1/stats': { GET: getStats },
  '/api/v1/tokens': { POST: postToken },
  '/api/v1/deploy': { POST: postDeploy },
  '/api/v1/stop': { POST: postStop },
  '/api/v1/smoke': { GET: getSmoke, POST: postSmoke },
  '/api/v1/flamegraph': { GET: getFlamegraph },
  '/api/v1/anomalies': { GET: getAnomalies },
};

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Compares digests so the time taken says nothing about how much of the token matched. */
function bearerMatches(req: IncomingMessage, expected: Buffer): 'missing' | 'wrong' | 'ok' {
  const h = req.headers.authorization;
  const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  if (!m) return 'missing';
  return timingSafeEqual(digest(m[1]!), expected) ? 'ok' : 'wrong';
}

export class AdminServer {
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(opts: AdminServerOptions): Promise<AdminServer> {
    if (opts.token.length < 16) throw new Error('admin token too short: use loadOrCreateAdminToken()');
    const ctx: AdminContext = {
      store: opts.store, ...(opts.fleet ? { fleet: opts.fleet } : {}), bpfOutDir: opts.bpfOutDir ?? DEFAULT_BPF_OUT,
      now: opts.now ?? Date.now, followPollMs: opts.followPollMs ?? 500, commandTimeoutMs: opts.commandTimeoutMs ?? 120_000,
      keepAliveMs: opts.keepAliveMs ?? 15_000,
    };
    const adminDigest = digest(opts.token);
    const metricsDigest = opts.metricsToken ? digest(opts.metricsToken) : undefined;
    const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));

    const server = createServer((req, res) => {
      void handle(req, res).catch((err: unknown) => {
        if (err instanceof ClientGoneError) return;
        if (!(err instanceof HttpError)) {
          log(`admin api: ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
        }
        const httpErr = err instanceof HttpError ? err : err instanceof RangeError ? new HttpError(400, err.message)
          : new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`);
        if (!res.headersSent) sendError(res, httpErr);
        else res.destroy(httpErr); // a stream cut short must not look complete to the client
      });
    });

    async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
      const url = new URL(req.url ?? '/', 'http://admin.invalid');
      const method = req.method ?? 'GET';
      if (url.pathname === '/metrics') {
        if (method !== 'GET') throw new HttpError(405, 'use GET /metrics', { allow: 'GET' });
        if (metricsDigest && bearerMatches(req, metricsDigest) !== 'ok') {
          throw new HttpError(401, 'GET /metrics needs the metrics bearer token', { 'www-authenticate': 'Bearer realm="bpfleet-metrics"' });
        }
        const [devices, stats] = await Promise.all([ctx.store.devices(), ctx.store.pipelineStats()]);
        const ingest = ctx.fleet?.ingestCounters?.();
        const online = ctx.fleet?.devicesOnline() ?? new Set(devices.filter((d) => d.online).map((d) => d.id));
        const text = renderFleetMetrics({ devices, online, stats, ...(ingest ? { ingest } : {}) }) + (ctx.fleet?.transportMetrics?.() ?? '');
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      if (url.pathname.startsWith('/api/')) {
        const auth = bearerMatches(req, adminDigest);
        if (auth !== 'ok') {
          throw new HttpError(401, auth === 'missing'
            ? 'missing admin token: send "Authorization: Bearer <token>" (the token is in ~/.config/bpfleet/controller.json)'
            : 'wrong admin token', { 'www-authenticate': 'Bearer realm="bpfleet-admin"' });
        }
      }
      const route = ROUTES[url.pathname];
      if (!route) throw new HttpError(404, `no endpoint ${url.pathname}`);
      const handler = route[method];
      if (!handler) {
        const allow = Object.keys(route).join(', ');
        throw new HttpError(405, `${method} not allowed on ${url.pathname}: use ${allow}`, { allow });
      }
      const aborter = new AbortController();
      res.on('close', () => aborter.abort());
      await handler(ctx, { req, res, url, query: new Query(url.searchParams, ctx.now()), signal: aborter.signal });
    }

    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE'
        ? new Error(`admin API: ${host}:${opts.port ?? DEFAULT_ADMIN_PORT} is in use: is another controller running? (choose another port)`)
        : err));
      server.listen(opts.port ?? DEFAULT_ADMIN_PORT, host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return new AdminServer(server, `http://${urlHost}:${addr.port}`);
  }

  /** Stops listening and ends open follow streams. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
