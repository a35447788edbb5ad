import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import {
  FrameKind,
  kernelFeatures,
  probeBinary,
  requireKernelFeature,
  requireRoot,
  runProbe,
  tcpgen,
  type JsonEvent,
} from '../lib/index.js';
import { decodeRecord, loadManifest, sumField } from './support.js';

const SEND = 123456;
const RECV = 65432;
/** tcpgen is both ends: each side sends what the other receives. */
const BOTH = SEND + RECV;

/**
 * A loopback exchange from this (node) process: the client writes `up` bytes, the server
 * answers with `down` bytes once it has them all, then both close. Resolves when done.
 */
async function nodeExchange(up: number, down: number): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as net.AddressInfo).port;
  const served = new Promise<void>((res, rej) => {
    server.once('connection', (s) => {
      let got = 0;
      s.on('data', (d) => {
        got += d.length;
        if (got === up) s.end(Buffer.alloc(down, 0x61));
      });
      s.on('close', () => (got === up ? res() : rej(new Error(`server got ${got} of ${up} bytes`))));
      s.on('error', rej);
    });
  });
  const client = net.connect(port, '127.0.0.1');
  const fetched = new Promise<void>((res, rej) => {
    let got = 0;
    client.on('data', (d) => (got += d.length));
    client.on('end', () => (got === down ? res() : rej(new Error(`client got ${got} of ${down} bytes`))));
    client.on('error', rej);
  });
  client.write(Buffer.alloc(up, 0x62));
  await fetched;
  client.end();
  await served;
  await new Promise<void>((res) => server.close(() => res()));
}

const ofPid = (events: JsonEvent[], pid: number) => events.filter((e) => e.pid === pid);

describe('tcpbytes on this kernel', () => {
  beforeAll(() => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
    requireKernelFeature('tracepoint sock/sock_send_length', kernelFeatures.tracepoint('sock', 'sock_send_length'));
    requireKernelFeature('tracepoint sock/sock_recv_length', kernelFeatures.tracepoint('sock', 'sock_recv_length'));
  });

  it('--describe selects the sock tracepoints and explains the kprobe fallback', () => {
    const d = JSON.parse(execFileSync(probeBinary('tcpbytes'), ['--describe']).toString());
    const kprobes = kernelFeatures.kprobes() === true;
    expect(d.manifest.kind).toBe('interval');
    expect(d.kernel.kprobes).toBe(kprobes);
    const hooks = d.hooks.map((h: Record<string, unknown>) => `${h.group} ${h.kind} ${h.target} ${h.selected}`);
    expect(hooks).toEqual([
      'send tracepoint sock/sock_send_length true',
      'send kprobe tcp_sendmsg false',
      'send kretprobe tcp_sendmsg false',
      'recv tracepoint sock/sock_recv_length true',
      'recv kprobe tcp_cleanup_rbuf false',
    ]);
    for (const h of d.hooks.filter((x: Record<string, unknown>) => String(x.kind).startsWith('kprobe') || x.kind === 'kretprobe')) {
      if (kprobes) {
        expect(h.available, JSON.stringify(h)).toBe(true);
      } else {
        expect(h.available).toBe(false);
        expect(h.reason).toMatch(/needs kprobes/);
      }
    }
  });

  it('--comm: exact bytes both ways for tcpgen, per interval and in total, nothing of other tasks', async () => {
    const run = runProbe('tcpbytes', ['--json', '--comm', 'tcpgen', '--interval', '200'], { waitReady: true });
    await run.ready;
    const gen = await tcpgen({ send: SEND, recv: RECV });
    await nodeExchange(5000, 7000); // this process's TCP: must not show up
    const res = await run.stop();
    expect(res.code).toBe(0);

    const mine = ofPid(res.events, gen.pid);
    expect(mine.length, JSON.stringify(res.events)).toBeGreaterThan(0);
    expect(mine.at(-1)!.sent_total).toBe(BOTH);
    expect(mine.at(-1)!.recv_total).toBe(BOTH);
    expect(sumField(mine, 'sent_bytes')).toBe(BOTH);
    expect(sumField(mine, 'recv_bytes')).toBe(BOTH);
    // At least one send and one receive per side; never more calls than bytes.
    expect(sumField(mine, 'send_calls')).toBeGreaterThanOrEqual(2);
    expect(sumField(mine, 'recv_calls')).toBeGreaterThanOrEqual(2);
    expect(sumField(mine, 'send_calls')).toBeLessThan(BOTH);
    // Totals only grow, and each record's total is the sum of the intervals so far.
    let sent = 0;
    for (const e of mine) {
      sent += Number(e.sent_bytes);
      expect(e.sent_total).toBe(sent);
      expect(Number(e.sent_bytes) + Number(e.recv_bytes)).toBeGreaterThan(0);
    }
    // The filter ran in the kernel: only tcpgen tasks (other test runs may have their own).
    expect(res.events.every((e) => e.comm === 'tcpgen')).toBe(true);
    expect(ofPid(res.events, process.pid)).toEqual([]);
  });

  it('--pid: another pid sees nothing of tcpgen, and its own bytes exactly', async () => {
    const run = runProbe('tcpbytes', ['--json', '--pid', String(process.pid), '--interval', '200'], {
      waitReady: true,
    });
    await run.ready;
    const gen = await tcpgen({ send: SEND, recv: RECV });
    await nodeExchange(3000, 4000);
    // An interval ended between the two once the first exchange's totals are out.
    await run.waitForEvent((e) => e.pid === process.pid && e.sent_total === 7000 && e.recv_total === 7000);
    await nodeExchange(10000, 20000);
    const res = await run.stop();
    expect(res.code).toBe(0);

    expect(ofPid(res.events, gen.pid)).toEqual([]);
    expect(res.events.every((e) => e.pid === process.pid)).toBe(true);
    const mine = ofPid(res.events, process.pid);
    const total = 3000 + 4000 + 10000 + 20000;
    expect(mine.at(-1)!.sent_total).toBe(total);
    expect(mine.at(-1)!.recv_total).toBe(total);
    expect(sumField(mine, 'sent_bytes')).toBe(total);
    // Two exchanges in different intervals: a record carries the first one's total only.
    expect(mine.some((e) => e.sent_total === 7000 && e.recv_total === 7000), JSON.stringify(mine)).toBe(true);
  });

  it('--machine: records decode with the manifest, intervals are framed, nothing lost', async () => {
    const manifest = loadManifest('tcpbytes');
    const run = runProbe('tcpbytes', ['--machine', '--comm', 'tcpgen', '--interval', '200'], {
      waitReady: true,
      stdout: 'frames',
    });
    await run.ready;
    const gen = await tcpgen({ send: SEND, recv: RECV, count: 2 });
    await new Promise((r) => setTimeout(r, 700)); // at least three intervals end while running
    const res = await run.stop();
    expect(res.code).toBe(0);

    const hello = JSON.parse(res.frames.find((f) => f.kind === FrameKind.Hello)!.payload.toString('utf8'));
    expect(hello.record_size).toBe(manifest.record.size);
    expect(hello.programs.map((p: { name: string; kind: string }) => `${p.name}:${p.kind}`).sort()).toEqual([
      'tcpio_recv_tp:tracepoint',
      'tcpio_send_tp:tracepoint',
    ]);
    const recs = res.frames.filter((f) => f.kind === FrameKind.Event).map((f) => decodeRecord(manifest, f.payload));
    const mine = ofPid(recs, gen.pid);
    expect(mine.at(-1)!.sent_total).toBe(2 * BOTH);
    expect(mine.at(-1)!.recv_total).toBe(2 * BOTH);
    expect(mine.every((r) => r.comm === 'tcpgen')).toBe(true);
    // Every interval is framed, the one closed at exit included; records come before their frame.
    expect(res.frames.filter((f) => f.kind === FrameKind.Interval).length).toBeGreaterThanOrEqual(4);
    expect(res.frames.filter((f) => f.kind !== FrameKind.Stats).at(-1)!.kind).toBe(FrameKind.Interval);
    const stats = JSON.parse(res.frames.filter((f) => f.kind === FrameKind.Stats).at(-1)!.payload.toString('utf8'));
    expect(stats.kernel.map_full).toBe(0);
    expect(stats.loader.lost).toBe(0);
  });
});
