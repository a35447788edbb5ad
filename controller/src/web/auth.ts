// Dashboard login: the admin token (or a separate dashboard token) is exchanged once for a
// random session id in an HttpOnly, SameSite=Strict cookie, so page scripts never hold the token
// and other sites cannot ride on the session. Requests that change something must also carry an
// Origin header naming this server (CSRF: SameSite covers modern browsers, Origin the rest).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = 'bpfleet_session';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    if (!out.has(k)) out.set(k, part.slice(i + 1).trim());
  }
  return out;
}

export class WebSessions {
  private readonly sessions = new Map<string, { expiresAtMs: number }>();
  private readonly tokenDigests: Buffer[];
  private failures: number[] = [];

  constructor(tokens: string[], private readonly opts: { ttlMs?: number; now?: () => number; maxFailuresPerMinute?: number } = {}) {
    if (tokens.length === 0 || tokens.some((t) => t.length < 16)) throw new Error('dashboard login needs a token of at least 16 characters');
    this.tokenDigests = tokens.map(digest);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  get ttlMs(): number {
    return this.opts.ttlMs ?? 12 * 3_600_000;
  }

  /**
   * A new session id if `token` is a dashboard token. Wrong tokens are rate limited (default 20 a
   * minute, for all clients together: the token has 256 bits, this only keeps logs quiet).
   */
  login(token: unknown): { ok: true; sessionId: string } | { ok: false; error: string; status: number } {
    const now = this.now();
    this.failures = this.failures.filter((t) => now - t < 60_000);
    if (this.failures.length >= (this.opts.maxFailuresPerMinute ?? 20)) {
      return { ok: false, status: 429, error: 'too many failed logins: wait a minute' };
    }
    if (typeof token !== 'string' || token === '') return { ok: false, status: 400, error: 'send {"token": "<admin token>"}' };
    const d = digest(token);
    let match = false;
    for (const t of this.tokenDigests) match = timingSafeEqual(d, t) || match;
    if (!match) {
      this.failures.push(now);
      return { ok: false, status: 401, error: 'wrong token (the admin token is in ~/.config/bpfleet/controller.json on the controller)' };
    }
    const sessionId = randomBytes(32).toString('base64url');
    this.sessions.set(sessionId, { expiresAtMs: now + this.ttlMs });
    return { ok: true, sessionId };
  }

  /** Whether the request carries a live session cookie. */
  check(req: IncomingMessage): boolean {
    const id = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    if (!id) return false;
    const s = this.sessions.get(id);
    if (!s) return false;
    if (s.expiresAtMs <= this.now()) {
      this.sessions.delete(id);
      return false;
    }
    return true;
  }

  logout(req: IncomingMessage): void {
    const id = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    if (id) this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  cookie(sessionId: string, secure: boolean): string {
    return `${SESSION_COOKIE}=${sessionId}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(this.ttlMs / 1000)}${secure ? '; Secure' : ''}`;
  }

  static clearCookie(): string {
    return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
  }
}

/**
 * Whether a state-changing request comes from this server's own page: its Origin must be
 * http(s)://<the Host it was sent to>. A missing Origin is refused (browsers send it on every
 * POST made by fetch; scripts use the admin API with the bearer token instead).
 */
export function sameOrigin(req: IncomingMessage): { ok: true } | { ok: false; error: string } {
  const origin = req.headers.origin;
  const host = req.headers.host;
  if (!origin) return { ok: false, error: 'missing Origin header: state-changing requests must come from the dashboard page' };
  if (!host) return { ok: false, error: 'missing Host header' };
  let o: URL;
  try { o = new URL(origin); } catch { return { ok: false, error: `bad Origin "${origin}"` }; }
  let h: URL | undefined;
  try { h = new URL(`${o.protocol}//${host}`); } catch { h = undefined; } // normalized like the Origin (default ports dropped)
  if ((o.protocol !== 'http:' && o.protocol !== 'https:') || !h || o.host !== h.host) {
    return { ok: false, error: `cross-origin request refused: Origin ${origin} is not this dashboard (${host})` };
  }
  return { ok: true };
}
