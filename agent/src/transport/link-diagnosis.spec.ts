import http2 from 'node:http2';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { diagnoseLink } from './link-diagnosis.js';

// The cases a real plaintext HTTP/2 server and a closed port can show; the TLS refusals (client
// certificate missing or from another CA, controller certificate from another CA, plaintext agent
// at a TLS controller) are shown against a real mutual-TLS server in grpc-transport.spec.ts and
// end to end in test/fleet/mtls.test.ts.

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function withPlainHttp2<T>(fn: (address: string) => Promise<T>): Promise<T> {
  const srv = http2.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    return await fn(`127.0.0.1:${(srv.address() as net.AddressInfo).port}`);
  } finally {
    srv.close();
  }
}

describe('diagnoseLink', () => {
  it('says nothing listens when the port is closed, with or without TLS', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    expect(await diagnoseLink(address, undefined)).toMatch(/^nothing accepts connections at 127\.0\.0\.1:\d+ \(ECONNREFUSED\): is the controller running there\?$/);
    expect(await diagnoseLink(address, { ca: Buffer.alloc(0) })).toMatch(/^nothing accepts connections/);
  });

  it('says nothing when a plaintext agent reaches a plaintext controller (the failure is elsewhere)', async () => {
    expect(await withPlainHttp2((a) => diagnoseLink(a, undefined))).toBe('');
  });

  it('tells a TLS agent that the controller does not speak TLS', async () => {
    const hint = await withPlainHttp2((a) => diagnoseLink(a, { ca: Buffer.alloc(0) }));
    expect(hint).toMatch(/^the controller at 127\.0\.0\.1:\d+ does not speak TLS \(ERR_SSL_[A-Z_]+\): drop --tls-ca or start the controller with --tls-cert\/--tls-key$/);
  });
});
