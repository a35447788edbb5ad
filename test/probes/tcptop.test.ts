import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';
import {
  kernelFeatures,
  probeBinary,
  requireKernelFeature,
  requireRoot,
  runProbe,
  tcpgen,
} from '../lib/index.js';
import { pickPort, sumField } from './support.js';

const SEND = 123456;
const RECV = 65432;


describe('tcptop on this kernel', () => {
  beforeAll(() => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
    requireKernelFeature('tracepoint sock/sock_send_length', kernelFeatures.tracepoint('sock', 'sock_send_length'));
    requireKernelFeature('tracepoint sock/sock_recv_length', kernelFeatures.tracepoint('sock', 'sock_recv_length'));
  });

  it('--describe selects the sock tracepoints and explains the kprobe fallback', () => {
    const d = JSON.parse(execFileSync(probeBinary('tcptop'), ['--describe']).toString());
    const kprobes = kernelFeatures.kprobes() === true;
    expect(d.manifest.kind).toBe('interval');
    expect(d.kernel.kprobes).toBe(kprobes);
    expect(d.hooks.filter((h: { selected: boolean }) => h.selected).map((h: { target: string }) => h.target)).toEqual([
      'sock/sock_send_length',
      'sock/sock_recv_length',
    ]);
    const kp = d.hooks.filter((h: { kind: string }) => h.kind === 'kprobe' || h.kind === 'kretprobe');
    expect(kp.map((h: { target: string }) => h.target)).toEqual(['tcp_sendmsg', 'tcp_sendmsg', 'tcp_cleanup_rbuf']);
    for (const h of kp) {
      expect(h.available).toBe(kprobes);
      if (!kprobes) expect(h.reason).toMatch(/needs kprobes/);
    }
  });

  it('rejects a bad --top with the usage exit code', () => {
    const r = spawnSync(probeBinary('tcptop'), ['--top', 'many']);
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/invalid --top 'many'/);
  });

  for (const ipv6 of [false, true]) {
    it(`both ends of a loopback connection, exact bytes, ${ipv6 ? 'IPv6' : 'IPv4'}`, async () => {
      const port = pickPort();
      const opts = ['--json', '--interval', '200', '--top', '0'];
      const client = runProbe('tcptop', [...opts, '--rport', String(port)], { waitReady: true });
      const server = runProbe('tcptop', [...opts, '--lport', String(port)], { waitReady: true });
      await Promise.all([client.ready, server.ready]);
      const gen = await tcpgen({ port, send: SEND, recv: RECV, ipv6 });
      const conn = gen.conns[0]!;
      const c = await client.stop();
      const s = await server.stop();
      expect(c.code).toBe(0);
      expect(s.code).toBe(0);

      const loop = ipv6 ? '::1' : '127.0.0.1';
      const family = ipv6 ? 'IPv6' : 'IPv4';
      // Each run saw one connection only, maybe over several intervals (cleared in between).
      expect(c.events.length, JSON.stringify(c.events)).toBeGreaterThan(0);
      for (const e of c.events) {
        expect(e).toMatchObject({ pid: gen.pid, comm: 'tcpgen', family, saddr: loop, daddr: loop, lport: conn.lport, rport: port });
      }
      expect(sumField(c.events, 'sent_bytes')).toBe(SEND);
      expect(sumField(c.events, 'recv_bytes')).toBe(RECV);
      expect(new Set(c.events.map((e) => e.ts_ns)).size).toBe(c.events.length);

      expect(s.events.length, JSON.stringify(s.events)).toBeGreaterThan(0);
      for (const e of s.events) {
        expect(e).toMatchObject({ pid: gen.pid, comm: 'tcpgen', family, saddr: loop, daddr: loop, lport: port, rport: conn.lport });
      }
      expect(sumField(s.events, 'sent_bytes')).toBe(RECV);
      expect(sumField(s.events, 'recv_bytes')).toBe(SEND);
    });
  }

  it('clears the counts between intervals: one connection, two bursts, two records', async () => {
    const server = net.createServer();
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as net.AddressInfo).port;
    let got = 0;
    const arrived = (n: number) =>
      new Promise<void>((res) => {
        const check = setInterval(() => got >= n && (clearInterval(check), res()), 5);
      });
    server.on('connection', (s) => s.on('data', (d) => (got += d.length)));

    const run = runProbe('tcptop', ['--json', '--interval', '200', '--pid', String(process.pid), '--rport', String(port)], {
      waitReady: true,
    });
    await run.ready;
    const client = net.connect(port, '127.0.0.1');
    await new Promise<void>((res) => client.once('connect', () => res()));
    client.write(Buffer.alloc(3000, 1));
    await arrived(3000);
    // The first burst's interval has ended once its record is out; a fixed sleep could be
    // outlasted by a loaded machine's late interval.
    await run.waitForEvent((e) => e.sent_bytes === 3000);
    client.write(Buffer.alloc(4000, 2));
    await arrived(7000);
    const lport = client.localPort;
    client.destroy();
    await new Promise<void>((res) => server.close(() => res()));
    const res = await run.stop();
    expect(res.code).toBe(0);

    expect(res.events.map((e) => [e.pid, e.lport, e.rport, e.sent_bytes, e.recv_bytes])).toEqual([
      [process.pid, lport, port, 3000, 0],
      [process.pid, lport, port, 4000, 0],
    ]);
    expect(Number(res.events[1]!.ts_ns)).toBeGreaterThan(Number(res.events[0]!.ts_ns));
  });

  it('--top 1 keeps only the busiest connection of the interval', async () => {
    const big = pickPort();
    const small = pickPort();
    // One long interval: the probe's exit closes it, so both connections land in it.
    const args = ['--json', '--interval', '60000', '--lport', `${big},${small}`];
    const top1 = runProbe('tcptop', [...args, '--top', '1'], { waitReady: true });
    const all = runProbe('tcptop', args, { waitReady: true });
    await Promise.all([top1.ready, all.ready]);
    const [g1, g2] = await Promise.all([
      tcpgen({ port: big, send: 300000, recv: 1000 }),
      tcpgen({ port: small, send: 2000, recv: 3000 }),
    ]);
    const t = await top1.stop();
    const a = await all.stop();
    expect(t.code).toBe(0);
    expect(a.code).toBe(0);

    // Server sides only (--lport): both in the full run, busiest first.
    expect(a.events.map((e) => [e.pid, e.lport, e.rport, e.sent_bytes, e.recv_bytes])).toEqual([
      [g1.pid, big, g1.conns[0]!.lport, 1000, 300000],
      [g2.pid, small, g2.conns[0]!.lport, 3000, 2000],
    ]);
    expect(t.events.map((e) => [e.pid, e.lport, e.sent_bytes, e.recv_bytes])).toEqual([[g1.pid, big, 1000, 300000]]);
  });
});
