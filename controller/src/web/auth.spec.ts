import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { parseCookies, sameOrigin, SESSION_COOKIE, WebSessions } from './auth.js';

const TOKEN = 'a'.repeat(43);
const req = (headers: Record<string, string>) => ({ headers } as unknown as IncomingMessage);

describe('WebSessions', () => {
  it('exchanges the right token for a random session id in an HttpOnly SameSite=Strict cookie', () => {
    const s = new WebSessions([TOKEN]);
    const r = s.login(TOKEN);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.sessionId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(r.sessionId).not.toContain(TOKEN.slice(0, 8));
    const c = s.cookie(r.sessionId, false);
    expect(c).toContain(`${SESSION_COOKIE}=${r.sessionId}`);
    expect(c).toMatch(/; HttpOnly/);
    expect(c).toMatch(/; SameSite=Strict/);
    expect(c).not.toMatch(/Secure/);
    expect(s.cookie(r.sessionId, true)).toMatch(/; Secure$/);
    expect(s.check(req({ cookie: `other=1; ${SESSION_COOKIE}=${r.sessionId}` }))).toBe(true);
    expect(s.check(req({ cookie: `${SESSION_COOKIE}=${r.sessionId}x` }))).toBe(false);
    expect(s.check(req({}))).toBe(false);
  });

  it('refuses wrong and missing tokens, and rate-limits wrong ones', () => {
    const s = new WebSessions([TOKEN], { maxFailuresPerMinute: 3 });
    expect(s.login('b'.repeat(43))).toMatchObject({ ok: false, status: 401 });
    expect(s.login(undefined)).toMatchObject({ ok: false, status: 400 });
    expect(s.login(42)).toMatchObject({ ok: false, status: 400 });
    s.login('c'); s.login('d');
    expect(s.login(TOKEN)).toMatchObject({ ok: false, status: 429 }); // even the right one, until the minute passes
  });

  it('expires sessions and ends them at logout', () => {
    let now = 1000;
    const s = new WebSessions([TOKEN, 'd'.repeat(20)], { ttlMs: 60_000, now: () => now });
    const a = s.login('d'.repeat(20)); // a second, dashboard-only token
    const b = s.login(TOKEN);
    if (!a.ok || !b.ok) throw new Error('login failed');
    const ra = req({ cookie: `${SESSION_COOKIE}=${a.sessionId}` }), rb = req({ cookie: `${SESSION_COOKIE}=${b.sessionId}` });
    expect(s.check(ra)).toBe(true);
    s.logout(ra);
    expect(s.check(ra)).toBe(false);
    expect(s.check(rb)).toBe(true);
    now += 60_000;
    expect(s.check(rb)).toBe(false);
    expect(s.size).toBe(0);
  });

  it('refuses short tokens at construction', () => {
    expect(() => new WebSessions(['short'])).toThrow(/16/);
    expect(() => new WebSessions([])).toThrow();
  });
});

describe('sameOrigin (CSRF)', () => {
  it('accepts the page\'s own origin only', () => {
    expect(sameOrigin(req({ host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8080' }))).toEqual({ ok: true });
    expect(sameOrigin(req({ host: 'Board.example:443', origin: 'https://board.example:443' }))).toEqual({ ok: true });
    expect(sameOrigin(req({ host: '127.0.0.1:8080', origin: 'http://evil.example' }))).toMatchObject({ ok: false, error: expect.stringMatching(/cross-origin/) });
    expect(sameOrigin(req({ host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8081' }))).toMatchObject({ ok: false });
    expect(sameOrigin(req({ host: '127.0.0.1:8080', origin: 'null' }))).toMatchObject({ ok: false });
    expect(sameOrigin(req({ host: '127.0.0.1:8080' }))).toMatchObject({ ok: false, error: expect.stringMatching(/missing Origin/) });
  });
});

describe('parseCookies', () => {
  it('reads name=value pairs, first one wins', () => {
    const c = parseCookies('a=1; b = 2;c=x=y; a=3; junk');
    expect(c.get('a')).toBe('1');
    expect(c.get('b')).toBe('2');
    expect(c.get('c')).toBe('x=y');
    expect(c.has('junk')).toBe(false);
  });
});
