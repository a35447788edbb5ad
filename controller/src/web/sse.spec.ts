import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { formatSse, SseClient } from './sse.js';

describe('formatSse', () => {
  it('frames one message: event line, JSON data line, blank line', () => {
    expect(formatSse('update', { a: 1, b: 'x' })).toBe('event: update\ndata: {"a":1,"b":"x"}\n\n');
  });

  it('writes bigints as decimal strings and splits text with line breaks into data lines', () => {
    expect(formatSse('rows', { n: 12345678901234567890n })).toBe('event: rows\ndata: {"n":"12345678901234567890"}\n\n');
    expect(formatSse('note', 'one\ntwo\r\nthree', '7')).toBe('event: note\nid: 7\ndata: one\ndata: two\ndata: three\n\n');
  });

  it('refuses event names and ids that would break the framing', () => {
    expect(() => formatSse('a\nb', {})).toThrow(/one line/);
    expect(() => formatSse('a:b', {})).toThrow(/one line/);
    expect(() => formatSse('', {})).toThrow();
    expect(() => formatSse('ok', {}, 'x\ny')).toThrow(/id/);
  });
});

describe('SseClient', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((r) => {
    if (!server) return r();
    server.closeAllConnections();
    server.close(() => r());
  }));

  async function serve(onClient: (c: SseClient) => void): Promise<string> {
    server = createServer((_req, res) => onClient(new SseClient(res, { keepAliveMs: 50, retryMs: 1234 })));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  it('sends the text/event-stream head, a retry hint, messages, and keep-alive comments while idle', async () => {
    const url = await serve((c) => { c.send('hello', { x: 1 }); });
    const res = await fetch(url);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes(': keep-alive')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text.startsWith('retry: 1234\n\nevent: hello\ndata: {"x":1}\n\n')).toBe(true);
    await reader.cancel();
  });

  it('does not buffer without bound for a client that does not read: counts what it missed, then asks it to resync', async () => {
    let client: SseClient | undefined;
    const url = await serve((c) => { client = c; });
    const res = await fetch(url);
    const reader = res.body!.getReader();
    await reader.read(); // the head
    const big = { blob: 'x'.repeat(64 * 1024) };
    let written = 0;
    for (let i = 0; i < 2000; i++) if (client!.send('update', big)) written++;
    expect(written).toBeLessThan(2000); // the socket filled up: the rest were not queued
    expect(client!.missed).toBe(2000 - written);
    // Reading drains the socket; the client is then told what it missed.
    let text = '';
    while (!text.includes('event: resync')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toMatch(/event: resync\ndata: \{"missed":\d+\}/);
    await reader.cancel();
  }, 20_000);
});
