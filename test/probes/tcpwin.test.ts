import { describe, expect, it, beforeAll } from 'vitest';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import {
  kernelFeatures,
  probeBinary,
  requireKernelFeature,
  requireRoot,
  runProbe,
  tcpgen,
  type JsonEvent,
  type ProbeResult,
} from '../lib/index.js';
import { loadManifest, pickPort } from './support.js';

const MB = 1_000_000;

/** The kernel-side counters from the loader's final "stats" line on stderr. */
function kernelStats(res: ProbeResult): Record<string, number> {
  const m = /tcpwin: stats (\{.*\})/.exec(res.stderr);
  if (!m) throw new Error(`no stats line on stderr:\n${res.stderr}`);
  return (JSON.parse(m[1]!) as { kernel: Record<string, number> }).kernel;
}

function bySkaddr(events: JsonEvent[]): Map<string, JsonEvent[]> {
  const out = new Map<string, JsonEvent[]>();
  for (const e of events) {
    const k = String(e.skaddr);
    out.set(k, [...(out.get(k) ?? []), e]);
  }
  return out;
}

describe('tcpwin on this kernel', () => {
  beforeAll(() => {
    requireRoot();
    requireKernelFeature('kernel BTF', kernelFeatures.btf);
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
    requireKernelFeature('tracepoint tcp/tcp_probe', () =>
      existsSync('/sys/kernel/tracing/events/tcp/tcp_probe/id') ||
      existsSync('/sys/kernel/debug/tracing/events/tcp/tcp_probe/id') ||
      'no tcp/tcp_probe tracepoint',
    );
  });

  it('--manifest describes a 128-byte stream record with units, without kernel access', () => {
    const out = execFileSync(probeBinary('tcpwin'), ['--manifest']).toString();
    const m = JSON.parse(out);
    expect(m).toEqual(loadManifest('tcpwin'));
    expect(m.kind).toBe('stream');
    expect(m.record.name).toBe('tcpwin_event');
    expect(m.record.size).toBe(128);
    const unit = Object.fromEntries(m.record.fields.map((f: { name: string; unit: string }) => [f.name, f.unit]));
    expect(unit).toMatchObject({
      snd_cwnd: 'packets', snd_ssthresh: 'packets', sndbuf: 'bytes', wmem_queued: 'bytes', srtt_us: 'us',
      snd_wnd: 'bytes', rcv_wnd: 'bytes', packets_out: 'packets', retrans_out: 'packets', mss_cache: 'bytes',
    });
    expect(m.hooks.map((h: { kind: string; target: string }) => `${h.kind}:${h.target}`)).toEqual([
      'tp_btf:tcp_probe', 'raw_tp:tcp_probe', 'kprobe:tcp_rcv_established',
    ]);
  });

  it('rejects a bad --sample-ms with the usage exit code', () => {
    let code = 0;
    let stderr = '';
    try {
      execFileSync(probeBinary('tcpwin'), ['--sample-ms', '-5', '--duration', '1'], { stdio: 'pipe' });
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      code = e.status;
      stderr = e.stderr.toString();
    }
    expect(code).toBe(2);
    expect(stderr).toMatch(/invalid --sample-ms '-5'/);
  });

  it('samples one loopback transfer per socket; ports, task filters and the rate limit hold', async () => {
    const port = pickPort();
    const rp = ['--json', '--rport', String(port)];
    // All on the same transfer: client socket every call, client socket at most 1/s, the
    // server socket, a --comm that matches and one that cannot.
    // 16 MiB: room for the whole transfer's records (about 20,000 of 136 bytes) even if this
    // loader is kept off the CPU for the whole transfer, so ringbuf_full must be 0.
    const every = runProbe('tcpwin', [...rp, '--sample-ms', '0', '--ringbuf-kb', '16384'], { waitReady: true });
    const slow = runProbe('tcpwin', [...rp, '--sample-ms', '1000'], { waitReady: true });
    const server = runProbe('tcpwin', ['--json', '--lport', String(port), '--sample-ms', '0', '--ringbuf-kb', '4096'], { waitReady: true });
    const mine = runProbe('tcpwin', [...rp, '--sample-ms', '0', '--comm', 'tcpgen', '--ringbuf-kb', '4096'], { waitReady: true });
    const none = runProbe('tcpwin', [...rp, '--sample-ms', '0', '--comm', 'no-such-task'], { waitReady: true });
    const runs = [every, slow, server, mine, none];
    await Promise.all(runs.map((r) => r.ready));

    // Long enough (~1-3 s on loopback) that a 1 s rate limit lets more than one record through.
    const gen = await tcpgen({ port, send: 600 * MB, recv: 600 * MB, timeoutMs: 40_000 });
    const conn = gen.conns[0]!;
    const [e, s, srv, m, n] = await Promise.all(runs.map((r) => r.stop()));
    for (const r of [e, s, srv, m, n]) expect(r!.code, r!.stderr).toBe(0);

    // Client side: only the client socket of this connection passes --rport.
    expect(e!.events.length).toBeGreaterThan(100);
    for (const ev of e!.events) {
      expect(ev.lport).toBe(conn.lport);
      expect(ev.rport).toBe(port);
      expect(ev.family).toBe('IPv4');
      expect(ev.saddr).toBe('127.0.0.1');
      expect(ev.daddr).toBe('127.0.0.1');
      expect(ev.snd_cwnd as number).toBeGreaterThanOrEqual(1);
      expect(ev.sndbuf as number).toBeGreaterThan(0);
      expect(ev.mss_cache as number).toBeGreaterThan(0);
      expect(ev.mss_cache as number).toBeLessThanOrEqual(65535);
      // The kernel's own invariant (tcp_verify_left_out), read under the socket lock.
      expect((ev.sacked_out as number) + (ev.lost_out as number)).toBeLessThanOrEqual(ev.packets_out as number);
      expect(ev.ca_state as number).toBeLessThanOrEqual(4);
    }
    expect(new Set(e!.events.map((x) => x.skaddr)).size).toBe(1);
    // Every socket starts with the initial window of 10 (RFC 6928), then grows.
    expect(e!.events[0]!.snd_cwnd).toBe(10);
    expect(e!.events.some((x) => (x.srtt_us as number) > 0)).toBe(true);
    expect(e!.events.some((x) => (x.wmem_queued as number) > 0)).toBe(true);
    expect(e!.events.some((x) => (x.packets_out as number) > 0)).toBe(true);
    // Loopback delivery mostly runs in the sender's context, the tcpgen process (the rest is
    // softirq work deferred to ksoftirqd or run on whoever was interrupted; a loaded machine
    // defers more of it, so the bound is loose: most on a quiet machine, 10% required).
    const ownTask = e!.events.filter((x) => x.pid === gen.pid && x.comm === 'tcpgen').length;
    expect(ownTask).toBeGreaterThan(e!.events.length / 10);
    expect(e!.events.filter((x) => x.comm === 'tcpgen').every((x) => x.pid === gen.pid)).toBe(true);
    const ts = e!.events.map((x) => x.ts_ns as number);
    expect(ts).toEqual([...ts].sort((a, b) => a - b));

    // Server side: the accepted socket, ports mirrored, a different socket.
    expect(srv!.events.length).toBeGreaterThan(100);
    for (const ev of srv!.events) {
      expect(ev.lport).toBe(port);
      expect(ev.rport).toBe(conn.lport);
    }
    expect(new Set(srv!.events.map((x) => x.skaddr)).size).toBe(1);
    expect(srv!.events[0]!.skaddr).not.toBe(e!.events[0]!.skaddr);

    // --comm filters in the kernel: the matching one sees tcpgen only, the other nothing.
    expect(m!.events.length).toBeGreaterThan(0);
    expect(m!.events.every((x) => x.comm === 'tcpgen' && x.pid === gen.pid)).toBe(true);
    expect(n!.events).toEqual([]);

    // Rate limit: strictly fewer records, >= 1 s apart per socket, bounded by the socket's life.
    expect(e!.events.length).toBeGreaterThan(s!.events.length);
    expect(s!.events.length).toBeGreaterThanOrEqual(1);
    const life = bySkaddr(e!.events);
    for (const [sk, recs] of bySkaddr(s!.events)) {
      const all = life.get(sk);
      expect(all, `socket ${sk} of the 1 s run not seen by the every-call run`).toBeDefined();
      const spanNs = (all!.at(-1)!.ts_ns as number) - (all![0]!.ts_ns as number);
      expect(recs.length).toBeLessThanOrEqual(Math.ceil(spanNs / 1e9) + 1);
      // ...and not stuck: calls come microseconds apart during the transfer.
      expect(recs.length).toBeGreaterThanOrEqual(Math.floor(spanNs / 1.5e9));
      for (let i = 1; i < recs.length; i++) {
        expect((recs[i]!.ts_ns as number) - (recs[i - 1]!.ts_ns as number)).toBeGreaterThanOrEqual(1e9);
      }
      // The first call of a socket is always emitted: before the every-call run's second record.
      expect(recs[0]!.ts_ns as number).toBeLessThan(all![1]!.ts_ns as number);
    }
    // Suppressed samples are counted as sampled out (not lost); none with --sample-ms 0.
    const ks = kernelStats(s!);
    const ke = kernelStats(e!);
    expect(ks.sampled_out).toBe(e!.events.length - s!.events.length);
    expect(ke.sampled_out).toBe(0);
    expect(ke.ringbuf_full).toBe(0);
  });

  it('--prefer raw_tp loads the tracepoint program without BTF arguments and still samples', async () => {
    const port = pickPort();
    const run = runProbe('tcpwin', ['--json', '--prefer', 'raw_tp', '--sample-ms', '0', '--rport', String(port)], {
      waitReady: true,
    });
    await run.ready;
    expect(run.stderr()).toMatch(/tcpwin: ready \(hooks: raw_tp:tcp_probe; btf: kernel\)/);
    const gen = await tcpgen({ port, send: 4 * MB, recv: 1000, ipv6: true });
    const conn = gen.conns[0]!;
    const res = await run.stop();
    expect(res.code).toBe(0);
    expect(res.events.length).toBeGreaterThan(0);
    for (const ev of res.events) {
      expect(ev.family).toBe('IPv6');
      expect(ev.saddr).toBe('::1');
      expect(ev.daddr).toBe('::1');
      expect(ev.lport).toBe(conn.lport);
      expect(ev.rport).toBe(port);
      expect(ev.snd_cwnd as number).toBeGreaterThanOrEqual(1);
      expect(ev.mss_cache as number).toBeGreaterThan(0);
    }
    expect(res.events.some((x) => x.pid === gen.pid && x.comm === 'tcpgen')).toBe(true);
    expect(res.events.some((x) => (x.srtt_us as number) > 0)).toBe(true);
  });

  it('--prefer kprobe falls back to tp_btf when kprobes are missing; --describe says why', async () => {
    const describe = JSON.parse(execFileSync(probeBinary('tcpwin'), ['--describe']).toString());
    const hooks = describe.hooks as { kind: string; available: boolean; selected: boolean; reason: string }[];
    const kprobes = describe.kernel.kprobes as boolean;
    const kp = hooks.find((h) => h.kind === 'kprobe')!;
    expect(kp.available).toBe(kprobes);
    if (!kprobes) expect(kp.reason).toMatch(/needs kprobes/);
    expect(hooks.find((h) => h.kind === 'tp_btf')).toMatchObject({ available: true, selected: true, reason: '' });
    expect(hooks.filter((h) => h.selected).length).toBe(1);

    const port = pickPort();
    const run = runProbe('tcpwin', ['--json', '--prefer', 'kprobe', '--sample-ms', '0', '--rport', String(port)], {
      waitReady: true,
    });
    await run.ready;
    const want = kprobes ? 'kprobe:tcp_rcv_established' : 'tp_btf:tcp_probe';
    expect(run.stderr()).toContain(`ready (hooks: ${want}; btf: kernel)`);
    const gen = await tcpgen({ port, send: 2 * MB, recv: 1000 });
    const res = await run.stop();
    expect(res.code).toBe(0);
    expect(res.events.length).toBeGreaterThan(0);
    expect(res.events.every((x) => x.lport === gen.conns[0]!.lport && x.rport === port)).toBe(true);
  });
});
