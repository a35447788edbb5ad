// `bpfleet controller --http HOST:PORT`: the dashboard. Serves the page built by Vite
// (controller/web/dist), a login that sets a session cookie, a live feed over Server-Sent Events,
// and the admin API for the page: /api/v1/* is forwarded to the admin server with the admin
// token, so the page uses exactly the endpoints (and checks) the CLI uses. The few things the
// admin API has no endpoint for (heartbeat history, live session details) are under /web/.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClientGoneError, HttpError, readJsonObject, sendError, sendJson } from '../admin/http-io.js';
import { followEvents } from '../admin/follow-events.js';
import { eventToJson } from '../export/event-json.js';
import type { FleetEvent } from '../fleet/fleet-events.js';
import type { SessionInfo } from '../fleet/fleet.js';
import type { Store } from '../store/store.js';
import { WebSessions, sameOrigin } from './auth.js';
import { LiveHub } from './live-hub.js';
import { SseClient } from './sse.js';

export const DEFAULT_WEB_DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));
export const BUILD_WEB_COMMAND = 'npx nx run controller:build-web';

/** What the dashboard needs from the live fleet (the Fleet class has all of it). */
export interface WebFleet {
  onEvent(listener: (e: FleetEvent) => void): () => void;
  devicesOnline(): ReadonlySet<string>;
  sessionsInfo(): SessionInfo[];
}

export interface WebServerOptions {
  store: Store;
  fleet: WebFleet;
  /** The admin API this server forwards /api/v1/* to, and its bearer token. */
  adminUrl: string;
  adminToken: string;
  /** Tokens that log in to the page (default: the admin token). */
  loginTokens?: string[];
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** The built page (default controller/web/dist). */
  distDir?: string;
  /** Live updates are batched per tick (default 500 ms). */
  tickMs?: number;
  /** Most event rows one SSE message carries (the newest are kept; default 500). */
  maxRowsPerMessage?: number;
  keepAliveMs?: number;
  sessionTtlMs?: number;
  log?: (line: string) => void;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json', '.map': 'application/json',
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};

/** Refuses clearly when the page was not built. */
export function checkWebDist(distDir: string): void {
  if (!existsSync(path.join(distDir, 'index.html'))) {
    throw new Error(`the dashboard is not built: ${path.join(distDir, 'index.html')} is missing. Build it with \`${BUILD_WEB_COMMAND}\` ` +
      '(npm start and the controller tests do this first)');
  }
}

export class WebServer {
  private constructor(private readonly server: Server, readonly url: string, readonly hub: LiveHub,
    private readonly clients: Set<SseClient>) {}

  /** SSE clients connected now, and what was sent to them (bench and tests). */
  stats(): { clients: number; sent: number; bytes: number; missed: number; hubEvents: number; hubUpdates: number } {
    let sent = 0, bytes = 0, missed = 0;
    for (const c of this.clients) { sent += c.sent; bytes += c.bytes; missed += c.missed; }
    return { clients: this.clients.size, sent, bytes, missed, hubEvents: this.hub.totals.events, hubUpdates: this.hub.totals.updates };
  }

  static async start(opts: WebServerOptions): Promise<WebServer> {
    const distDir = opts.distDir ?? DEFAULT_WEB_DIST;
    checkWebDist(distDir);
    const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
    const sessions = new WebSessions(opts.loginTokens ?? [opts.adminToken], opts.sessionTtlMs ? { ttlMs: opts.sessionTtlMs } : {});
    const hub = new LiveHub({ tickMs: opts.tickMs ?? 500, onEvent: (l) => opts.fleet.onEvent(l) });
    const clients = new Set<SseClient>();
    const admin = new URL(opts.adminUrl);
    const maxRows = opts.maxRowsPerMessage ?? 500;
    const indexHtml = () => readFileSync(path.join(distDir, 'index.html'));

    const server = createServer((req, res) => {
      void handle(req, res).catch((err: unknown) => {
        if (err instanceof ClientGoneError) return;
        if (!(err instanceof HttpError)) log(`dashboard: ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
        const e = err instanceof HttpError ? err : new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`);
        if (!res.headersSent) sendError(res, e);
        else res.destroy(e);
      });
    });

    async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
      const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
      const method = req.method ?? 'GET';
      const p = url.pathname;
      if (method !== 'GET' && method !== 'HEAD') {
        const o = sameOrigin(req);
        if (!o.ok) throw new HttpError(403, o.error);
      }
      if (p === '/web/login') {
        if (method !== 'POST') throw new HttpError(405, 'use POST /web/login', { allow: 'POST' });
        const body = await readJsonObject(req);
        const r = sessions.login(body['token']);
        if (!r.ok) throw new HttpError(r.status, r.error);
        const secure = req.headers['x-forwarded-proto'] === 'https';
        return sendJson(res, 200, { ok: true }, { 'set-cookie': sessions.cookie(r.sessionId, secure) });
      }
      if (p === '/web/logout') {
        if (method !== 'POST') throw new HttpError(405, 'use POST /web/logout', { allow: 'POST' });
        sessions.logout(req);
        return sendJson(res, 200, { ok: true }, { 'set-cookie': WebSessions.clearCookie() });
      }
      if (p.startsWith('/api/') || p.startsWith('/web/')) {
        if (!sessions.check(req)) throw new HttpError(401, 'not logged in: POST /web/login with the admin token first');
        if (p.startsWith('/api/')) return proxy(req, res);
        return webRoute(p, url, method, req, res);
      }
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} not allowed on ${p}`);
      return serveStatic(p, res);
    }

    async function webRoute(p: string, url: URL, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
      if (method !== 'GET') throw new HttpError(405, `use GET ${p}`, { allow: 'GET' });
      if (p === '/web/session') return sendJson(res, 200, { ok: true });
      if (p === '/web/sessions') {
        // Live sessions: agent version, counters and the installed probes (no admin endpoint has these).
        const sessionsInfo = opts.fleet.sessionsInfo().map((s) => ({ ...s, facts: undefined }));
        return sendJson(res, 200, { sessions: sessionsInfo });
      }
      if (p === '/web/heartbeats') {
        const device = url.searchParams.get('device');
        const limit = Math.min(Number(url.searchParams.get('limit') ?? 300) || 300, 5000);
        if (device) {
          const rows = await opts.store.heartbeats(device, limit);
          return sendJson(res, 200, { heartbeats: rows.reverse() });
        }
        // The latest heartbeat of every device (fleet page: spool depth, CPU).
        const latest: Record<string, unknown> = {};
        for (const d of await opts.store.devices()) {
          const [h] = await opts.store.heartbeats(d.id, 1);
          if (h) latest[d.id] = h;
        }
        return sendJson(res, 200, { latest });
      }
      if (p === '/web/live') return live(url, req, res);
      if (p === '/web/stats') return sendJson(res, 200, server_stats());
      throw new HttpError(404, `no endpoint ${p}`);
    }

    function server_stats() {
      let sent = 0, bytes = 0, missed = 0;
      for (const c of clients) { sent += c.sent; bytes += c.bytes; missed += c.missed; }
      return { clients: clients.size, sent, bytes, missed, hubEvents: hub.totals.events, hubUpdates: hub.totals.updates };
    }

    /**
     * GET /web/live[?probe=P[&device=ID][&since=T]]: `update` messages from the hub (the whole
     * fleet), and with `probe`, `rows` messages with the probe's stored events as they are stored
     * (at most one message per tick and maxRows rows each; `skipped` counts rows left out).
     */
    async function live(url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
      const probe = url.searchParams.get('probe') || undefined;
      const device = url.searchParams.get('device') || undefined;
      const sinceText = url.searchParams.get('since');
      const since = sinceText && /^\d+$/.test(sinceText) ? BigInt(sinceText) : undefined;
      const client = new SseClient(res, opts.keepAliveMs ? { keepAliveMs: opts.keepAliveMs } : {});
      clients.add(client);
      const aborter = new AbortController();
      const unsubscribe = hub.subscribe((u) => client.send('update', u));
      res.on('close', () => { aborter.abort(); unsubscribe(); clients.delete(client); });
      client.send('hello', { tickMs: hub.tickMs, online: [...opts.fleet.devicesOnline()] });
      if (!probe) return;
      let pending: unknown[] = [];
      let skipped = 0;
      let timer: NodeJS.Timeout | undefined;
      const flush = () => {
        timer = undefined;
        if (!pending.length && !skipped) return;
        if (client.send('rows', { probe, rows: pending, skipped })) { pending = []; skipped = 0; }
        else { skipped += pending.length; pending = []; }
      };
      try {
        for await (const evs of followEvents(opts.store, {
          ...(device ? { deviceId: device } : {}), probe, ...(since !== undefined ? { sinceUnixNs: since } : {}), pollMs: 5000,
          signal: aborter.signal, wake: (cb) => opts.fleet.onEvent((e) => { if (e.type === 'stored') cb(); }),
        })) {
          for (const ev of evs) pending.push(eventToJson(ev));
          if (pending.length > maxRows) { skipped += pending.length - maxRows; pending = pending.slice(-maxRows); }
          timer ??= setTimeout(flush, hub.tickMs);
        }
      } finally {
        if (timer) clearTimeout(timer);
        void req;
      }
    }

    /** Forwards to the admin API with the bearer token; the answer (JSON lines too) streams through. */
    function proxy(req: IncomingMessage, res: ServerResponse): Promise<void> {
      return new Promise((resolve, reject) => {
        const headers: Record<string, string> = { authorization: `Bearer ${opts.adminToken}` };
        for (const h of ['content-type', 'content-length', 'accept']) {
          const v = req.headers[h];
          if (typeof v === 'string') headers[h] = v;
        }
        const up = httpRequest({ host: admin.hostname, port: admin.port, method: req.method, path: req.url, headers }, (ans) => {
          const out: Record<string, string | string[]> = {};
          for (const h of ['content-type', 'content-length', 'cache-control', 'content-disposition', 'allow']) {
            const v = ans.headers[h];
            if (v !== undefined) out[h] = v;
          }
          for (const [k, v] of Object.entries(ans.headers)) if (k.startsWith('x-bpfleet-') && v !== undefined) out[k] = v;
          res.writeHead(ans.statusCode ?? 502, out);
          res.flushHeaders();
          ans.pipe(res);
          ans.on('end', () => resolve());
          ans.on('error', reject);
        });
        res.on('close', () => up.destroy());
        up.on('error', (err) => (res.headersSent ? resolve() : reject(new HttpError(502, `admin API unreachable: ${err.message}`))));
        req.pipe(up);
      });
    }

    function serveStatic(p: string, res: ServerResponse): void {
      // Normalized from the root: "/../x" cannot climb out, and the result is relative to dist.
      const rel = path.posix.normalize(`/${decodeURIComponent(p)}`).replace(/^\/+/, '');
      const file = path.join(distDir, rel);
      if (!file.startsWith(distDir + path.sep) && file !== distDir) throw new HttpError(404, 'not found');
      let body: Buffer;
      let type = MIME[path.extname(file)] ?? 'application/octet-stream';
      if (p === '/' || p === '/index.html' || !existsSync(file) || !statSync(file).isFile()) {
        if (p !== '/' && p !== '/index.html' && path.extname(p) !== '') throw new HttpError(404, `no file ${p}`);
        body = indexHtml();
        type = MIME['.html']!;
        res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-store', ...SECURITY_HEADERS });
        res.end(body);
        return;
      }
      body = readFileSync(file);
      // Vite names assets by content hash: they can be cached for good.
      const cache = rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
      res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': cache, ...SECURITY_HEADERS });
      res.end(body);
    }

    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE'
        ? new Error(`dashboard: ${host}:${opts.port} is in use (choose another --http port)`) : err));
      server.listen(opts.port, host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return new WebServer(server, `http://${urlHost}:${addr.port}`, hub, clients);
  }

  close(): Promise<void> {
    this.hub.close();
    for (const c of this.clients) c.close();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
