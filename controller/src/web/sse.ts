// Server-Sent Events framing and one client's stream, with backpressure: a client that does not
// read (a background tab, a slow link) is not buffered without bound; messages it could not take
// are counted and it is told to resync (reload what it shows) once it reads again.
import type { ServerResponse } from 'node:http';
import { stringifyJson } from '../export/event-json.js';

/**
 * One SSE message. `data` is JSON (bigints as decimal strings); a value whose text holds line
 * breaks is split into several data: lines, as the format requires (JSON.stringify never emits
 * raw line breaks, but a string passed through as-is might).
 */
export function formatSse(event: string, data: unknown, id?: string): string {
  if (/[\r\n:]/.test(event) || event === '') throw new Error(`SSE event name "${event}" must be one line without ':'`);
  const text = typeof data === 'string' ? data : stringifyJson(data);
  let out = `event: ${event}\n`;
  if (id !== undefined) {
    if (/[\r\n\0]/.test(id)) throw new Error('SSE id must be one line');
    out += `id: ${id}\n`;
  }
  for (const line of text.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + '\n';
}

/** A comment line: keeps proxies and idle timers from closing a quiet stream; EventSource ignores it. */
export const SSE_KEEPALIVE = ': keep-alive\n\n';

export class SseClient {
  /** Messages this client could not take because its socket buffer was full. */
  missed = 0;
  sent = 0;
  bytes = 0;
  private readonly keepAlive: NodeJS.Timeout;

  constructor(readonly res: ServerResponse, opts: { keepAliveMs?: number; retryMs?: number } = {}) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive',
      'x-accel-buffering': 'no', 'x-content-type-options': 'nosniff',
    });
    res.write(`retry: ${opts.retryMs ?? 2000}\n\n`);
    this.keepAlive = setInterval(() => { if (!res.writableNeedDrain) res.write(SSE_KEEPALIVE); }, opts.keepAliveMs ?? 15_000);
    this.keepAlive.unref();
    res.on('close', () => clearInterval(this.keepAlive));
    res.on('drain', () => {
      if (this.missed > 0) {
        const n = this.missed;
        this.missed = 0;
        this.write(formatSse('resync', { missed: n }));
      }
    });
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Sends a message unless the client is behind; returns whether it was written. */
  send(event: string, data: unknown): boolean {
    if (this.closed) return false;
    if (this.res.writableNeedDrain) {
      this.missed++;
      return false;
    }
    this.write(formatSse(event, data));
    return true;
  }

  private write(text: string): void {
    this.sent++;
    this.bytes += Buffer.byteLength(text);
    this.res.write(text);
  }

  close(): void {
    clearInterval(this.keepAlive);
    if (!this.closed) this.res.end();
  }
}
