import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { tcpgen } from './tcpgen.js';

/** IP-layer octets sent by this network namespace (loopback traffic included). */
function outOctets(family: 4 | 6): number {
  if (family === 6) {
    const m = /^Ip6OutOctets\s+(\d+)$/m.exec(readFileSync('/proc/net/snmp6', 'utf8'));
    if (!m) throw new Error('no Ip6OutOctets in /proc/net/snmp6');
    return Number(m[1]);
  }
  const lines = readFileSync('/proc/net/netstat', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('IpExt:'));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf('OutOctets')]);
}

function listen(host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => resolve(srv));
  });
}

const MiB = 1 << 20;

describe('tcpgen', () => {
  it('moves exactly the requested bytes over loopback, one line per connection', async () => {
    const before = outOctets(4);
    const { pid, conns, stderr } = await tcpgen({ send: 3 * MiB, recv: MiB + 17, count: 3 });
    const moved = outOctets(4) - before;

    expect(stderr).toBe('');
    expect(conns).toHaveLength(3);
    for (const c of conns) {
      expect(c.pid).toBe(pid);
      expect(c.sent).toBe(3 * MiB);
      expect(c.recv).toBe(MiB + 17);
      expect(c.rport).toBeGreaterThan(0);
      expect(c.lport).toBeGreaterThanOrEqual(1024);
      expect(c.lport).not.toBe(c.rport);
    }
    // every connection used its own client port
    expect(new Set(conns.map((c) => c.lport)).size).toBe(3);
    // the kernel really carried the payload (other traffic can only add to it)
    expect(moved).toBeGreaterThanOrEqual(3 * (4 * MiB + 17));
  });

  it('reuses a fixed listener port across iterations (SO_REUSEADDR)', async () => {
    const probe = await listen('127.0.0.1');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));

    const { conns } = await tcpgen({ port, send: 1000, recv: 2000, count: 2 });
    expect(conns.map((c) => [c.rport, c.sent, c.recv])).toEqual([
      [port, 1000, 2000],
      [port, 1000, 2000],
    ]);
  });

  it('speaks IPv6 over ::1 with -6', async () => {
    const before = outOctets(6);
    const { conns } = await tcpgen({ ipv6: true, send: 2 * MiB, recv: 4096 });
    expect(conns[0]).toMatchObject({ sent: 2 * MiB, recv: 4096 });
    expect(outOctets(6) - before).toBeGreaterThanOrEqual(2 * MiB + 4096);
  });

  it('handles zero-byte transfers', async () => {
    const { conns } = await tcpgen({ send: 0, recv: 0 });
    expect(conns[0]).toMatchObject({ sent: 0, recv: 0 });
  });

  it('fails with a message when the port is taken', async () => {
    const busy = await listen('127.0.0.1');
    const port = (busy.address() as net.AddressInfo).port;
    try {
      await expect(tcpgen({ port, send: 1, recv: 1 })).rejects.toThrow(
        new RegExp(`exited with code 1[\\s\\S]*bind 127\\.0\\.0\\.1 port ${port}: Address already in use`),
      );
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }
  });
});
