// The tcp_loopback smoke trigger (bpf/README.md, "Smoke tests"): a server on 127.0.0.1 on a free
// port, then one connection from this process that sends `bytes` bytes, reads them echoed back,
// and closes; the server closes its side too. Everything a TCP probe hooks happens on the device:
// state changes, segments received, bytes sent and received, the close.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { SmokeVars } from '@bpfleet/proto';
import type { SmokeTrigger } from './triggers.js';

const DEFAULT_BYTES = 4096;

export class TcpLoopbackTrigger implements SmokeTrigger {
  private server: Server | undefined;
  private port = 0;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: { bytes?: number; host?: string; timeoutMs?: number } = {}) {}

  private get bytes(): number {
    return this.opts.bytes ?? DEFAULT_BYTES;
  }

  async prepare(): Promise<SmokeVars> {
    const host = this.opts.host ?? '127.0.0.1';
    const server = createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined); // the client's side reports what went wrong
      s.pipe(s); // echo; ends our side when the client ends its side
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('the smoke trigger server has no TCP port');
    this.port = addr.port;
    return { port: this.port, pid: process.pid, bytes: this.bytes };
  }

  async fire(): Promise<void> {
    if (this.server === undefined) throw new Error('tcp_loopback trigger: fire() before prepare()');
    const host = this.opts.host ?? '127.0.0.1';
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    const payload = Buffer.alloc(this.bytes, 0x5a);
    await new Promise<void>((resolve, reject) => {
      const sock = createConnection({ host, port: this.port });
      this.sockets.add(sock);
      let got = 0;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`tcp_loopback trigger: no echo of ${this.bytes} bytes from ${host}:${this.port} within ${timeoutMs} ms (got ${got})`));
      }, timeoutMs);
      sock.on('connect', () => sock.write(payload));
      sock.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= payload.length) sock.end(); // FIN after the echo: a full, orderly close
      });
      sock.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`tcp_loopback trigger: connection to ${host}:${this.port} failed: ${err.message}`));
      });
      sock.on('close', () => {
        clearTimeout(timer);
        this.sockets.delete(sock);
        if (got >= payload.length) resolve();
        else reject(new Error(`tcp_loopback trigger: connection closed after ${got} of ${this.bytes} echoed bytes`));
      });
    });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
