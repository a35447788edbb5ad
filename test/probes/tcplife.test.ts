import { beforeAll, describe, expect, it } from 'vitest';
import { kernelFeatures, requireKernelFeature, requireRoot, runProbe, tcpgen } from '../lib/index.js';
import { pickPort } from './support.js';

// tcp_sock byte counters follow RFC 4898 (ThruOctetsAcked / ThruOctetsReceived): they advance
// with the sequence space, so an acknowledged SYN and FIN count one byte each. For tcpgen's
// connections (client connects, sends, closes first; server replies, closes after):
//   client: tx = SEND + SYN + FIN, rx = RECV + FIN
//   server: tx = RECV + FIN,       rx = SEND + FIN
// (the passive side's SYN-ACK is acknowledged in the handshake, before bytes_acked counts).
describe('tcplife on this kernel', () => {
  beforeAll(() => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
  });

  for (const ipv6 of [false, true]) {
    it(`reports each closed connection with its bytes and lifetime, ${ipv6 ? 'IPv6' : 'IPv4'}`, async () => {
      const port = pickPort();
      const SEND = 150_000, RECV = 42_000;
      const run = runProbe('tcplife', ['--json', '--lport', String(port)], { waitReady: true });
      const active = runProbe('tcplife', ['--json', '--rport', String(port)], { waitReady: true });
      await Promise.all([run.ready, active.ready]);
      const t0 = process.hrtime.bigint();
      const gen = await tcpgen({ port, send: SEND, recv: RECV, count: 3, ipv6 });
      const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
      await run.waitForEvent(() => run.events.length >= 3, 5000);
      await active.waitForEvent(() => active.events.length >= 3, 5000);
      const server = await run.stop();
      const client = await active.stop();
      expect(server.code).toBe(0);
      expect(client.code).toBe(0);

      // No listener records: a listening socket is not a connection.
      expect(server.events).toHaveLength(3);
      expect(client.events).toHaveLength(3);
      const loop = ipv6 ? '::1' : '127.0.0.1';
      for (const conn of gen.conns) {
        const c = client.events.find((e) => e.lport === conn.lport);
        expect(c, JSON.stringify(client.events)).toMatchObject({
          pid: gen.pid, comm: 'tcpgen', family: ipv6 ? 'IPv6' : 'IPv4', saddr: loop, daddr: loop,
          rport: port, passive: 0, open_seen: 1, tx_bytes: SEND + 2, rx_bytes: RECV + 1,
        });
        const s = server.events.find((e) => e.rport === conn.lport);
        expect(s, JSON.stringify(server.events)).toMatchObject({
          pid: gen.pid, comm: 'tcpgen', lport: port, passive: 1, open_seen: 1,
          tx_bytes: RECV + 1, rx_bytes: SEND + 1,
        });
        // Lifetimes are real: positive, shorter than the whole run.
        for (const e of [c!, s!]) {
          expect(Number(e.span_us)).toBeGreaterThan(0);
          expect(Number(e.span_us)).toBeLessThan(wallUs);
        }
      }
    });
  }

  it('--comm filters on the task that opened the connection', async () => {
    const port = pickPort();
    const other = runProbe('tcplife', ['--json', '--rport', String(port), '--comm', 'not-tcpgen'], { waitReady: true });
    const mine = runProbe('tcplife', ['--json', '--rport', String(port), '--comm', 'tcpgen'], { waitReady: true });
    await Promise.all([other.ready, mine.ready]);
    await tcpgen({ port, send: 10, recv: 10, count: 2 });
    await mine.waitForEvent(() => mine.events.length >= 2, 5000);
    const a = await other.stop();
    const b = await mine.stop();
    expect(a.events).toEqual([]);
    expect(b.events).toHaveLength(2);
  });
});
