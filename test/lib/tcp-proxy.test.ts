import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpProxy } from './tcp-proxy.js';

// The proxy against a real echo server on loopback: bytes go through and are counted, a reset cut
// aborts open and new connections, a blackhole cut holds bytes until restore.

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function echoServer(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return (server.address() as net.AddressInfo).port;
}

/** A client with everything it received and how it ended. */
async function client(port: number): Promise<{ sock: net.Socket; got: () => string; ended: Promise<string> }> {
  const sock = net.connect(port, '127.0.0.1');
  let got = '';
  sock.on('data', (d: Buffer) => (got += d.toString()));
  const ended = new Promise<string>((resolve) => {
    sock.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    sock.on('close', () => resolve('closed'));
  });
  // A refused connection may be reset before or after 'connect': either way `ended` says so.
  await Promise.race([new Promise((resolve) => sock.once('connect', resolve)), ended]);
  cleanup.push(() => { sock.destroy(); });
  return { sock, got: () => got, ended };
}

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function proxyTo(port: number): Promise<TcpProxy> {
  const p = await TcpProxy.start({ target: { port } });
  cleanup.push(() => p.close());
  return p;
}

describe('TcpProxy', () => {
  it('forwards both ways and counts connections and bytes', async () => {
    const proxy = await proxyTo(await echoServer());
    const c = await client(proxy.port);
    c.sock.write('hello');
    await until('echo', () => c.got() === 'hello');
    expect(proxy.counters).toMatchObject({ accepted: 1, bytesUp: 5, bytesDown: 5, reset: 0, refused: 0 });
    expect(proxy.connections).toBe(1);
  });

  it("cut('reset') aborts open connections and refuses new ones until restore()", async () => {
    const proxy = await proxyTo(await echoServer());
    const c = await client(proxy.port);
    c.sock.write('x');
    await until('echo', () => c.got() === 'x');
    proxy.cut('reset');
    expect(await c.ended).toBe('ECONNRESET');
    expect(proxy.counters.reset).toBe(1);

    const refused = await client(proxy.port);
    expect(await refused.ended).toBe('ECONNRESET');
    expect(proxy.counters.refused).toBe(1);

    proxy.restore();
    const again = await client(proxy.port);
    again.sock.write('back');
    await until('echo after restore', () => again.got() === 'back');
  });

  it("cut('blackhole') moves no byte and closes nothing; restore() delivers what was held, in order", async () => {
    const proxy = await proxyTo(await echoServer());
    const c = await client(proxy.port);
    c.sock.write('a');
    await until('echo', () => c.got() === 'a');
    proxy.cut('blackhole');
    c.sock.write('b');
    c.sock.write('c');
    // A connection made during the cut is accepted but silent too.
    const late = await client(proxy.port);
    late.sock.write('late');
    await new Promise((r) => setTimeout(r, 500));
    expect(c.got()).toBe('a');
    expect(late.got()).toBe('');
    expect(proxy.counters.bytesUp).toBe(1);
    expect(c.sock.destroyed).toBe(false);

    proxy.restore();
    await until('held bytes delivered', () => c.got() === 'abc' && late.got() === 'late');
    expect(proxy.counters).toMatchObject({ accepted: 2, reset: 0, refused: 0 });
  });

  it('resets the client when the target is down, and counts it', async () => {
    const port = await echoServer();
    const proxy = await proxyTo(port);
    await cleanup.shift()!(); // the echo server is gone now
    const c = await client(proxy.port);
    expect(await c.ended).toBe('ECONNRESET');
    expect(proxy.counters.upstreamFailed).toBe(1);
  });

  it('refuses a second cut without a restore', async () => {
    const proxy = await proxyTo(await echoServer());
    proxy.cut('blackhole');
    expect(() => proxy.cut('reset')).toThrow(/already cut \(blackhole\)/);
  });
});
