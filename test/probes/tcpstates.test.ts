import { describe, expect, it, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  bpfOutDir,
  FrameKind,
  kernelFeatures,
  probeBinary,
  requireKernelFeature,
  requireRoot,
  runProbe,
  tcpgen,
  type JsonEvent,
} from '../lib/index.js';
import { decodeRecord, loadManifest, pickPort } from './support.js';

/** Transitions of one socket, in order, as "OLD>NEW". */
function chain(events: JsonEvent[], skaddr: unknown): string[] {
  return events.filter((e) => e.skaddr === skaddr).map((e) => `${e.oldstate}>${e.newstate}`);
}

const CLIENT = ['CLOSE>SYN_SENT', 'SYN_SENT>ESTABLISHED', 'ESTABLISHED>FIN_WAIT1', 'FIN_WAIT1>FIN_WAIT2', 'FIN_WAIT2>CLOSE'];
const SERVER = ['LISTEN>SYN_RECV', 'SYN_RECV>ESTABLISHED', 'ESTABLISHED>CLOSE_WAIT', 'CLOSE_WAIT>LAST_ACK', 'LAST_ACK>CLOSE'];
const LISTENER = ['CLOSE>LISTEN', 'LISTEN>CLOSE'];

describe('tcpstates on this kernel', () => {
  beforeAll(() => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
    requireKernelFeature('tracepoint sock/inet_sock_set_state', kernelFeatures.tracepoint('sock', 'inet_sock_set_state'));
  });

  for (const ipv6 of [false, true]) {
    it(`traces every transition of a loopback connection, ${ipv6 ? 'IPv6' : 'IPv4'}`, async () => {
      const port = pickPort();
      const client = runProbe('tcpstates', ['--json', '--rport', String(port)], { waitReady: true });
      const server = runProbe('tcpstates', ['--json', '--lport', String(port)], { waitReady: true });
      await Promise.all([client.ready, server.ready]);
      const gen = await tcpgen({ port, send: 5000, recv: 7000, ipv6 });
      const conn = gen.conns[0]!;
      await client.waitForEvent((e) => e.newstate === 'CLOSE' && e.lport === conn.lport, 5000);
      await server.waitForEvent((e) => e.oldstate === 'LISTEN' && e.newstate === 'CLOSE', 5000);
      const c = await client.stop();
      const s = await server.stop();
      expect(c.code).toBe(0);
      expect(s.code).toBe(0);

      // Client side: all of its transitions, in order, from one socket.
      const estab = c.events.find((e) => e.lport === conn.lport && e.newstate === 'ESTABLISHED');
      expect(estab, JSON.stringify(c.events)).toBeDefined();
      expect(chain(c.events, estab!.skaddr)).toEqual(CLIENT);
      const loop = ipv6 ? '::1' : '127.0.0.1';
      for (const e of c.events.filter((x) => x.skaddr === estab!.skaddr)) {
        expect(e.rport).toBe(port);
        expect(e.family).toBe(ipv6 ? 'IPv6' : 'IPv4');
        expect(e.daddr).toBe(loop);
        expect(e.pid).toBe(gen.pid);
        expect(e.comm).toBe('tcpgen');
      }
      // Local port is bound only after CLOSE->SYN_SENT.
      const clientEv = c.events.filter((x) => x.skaddr === estab!.skaddr);
      expect(clientEv[0]!.lport).toBe(0);
      expect(clientEv.slice(1).every((e) => e.lport === conn.lport && e.saddr === loop)).toBe(true);
      // Time in the old state: unknown for the first, then measured and consistent with timestamps.
      expect(clientEv[0]!.delta_us).toBe(0);
      for (let i = 1; i < clientEv.length; i++) {
        const gapUs = (Number(clientEv[i]!.ts_ns) - Number(clientEv[i - 1]!.ts_ns)) / 1000;
        expect(Math.abs(Number(clientEv[i]!.delta_us) - gapUs)).toBeLessThanOrEqual(1);
      }

      // Server side: the accepted socket and the listener.
      const child = s.events.find((e) => e.rport === conn.lport && e.newstate === 'ESTABLISHED');
      expect(child, JSON.stringify(s.events)).toBeDefined();
      expect(chain(s.events, child!.skaddr)).toEqual(SERVER);
      const listen = s.events.find((e) => e.newstate === 'LISTEN');
      expect(listen).toBeDefined();
      expect(chain(s.events, listen!.skaddr)).toEqual(LISTENER);
      // Nothing of other sockets leaked through the port filters.
      expect(c.events.every((e) => e.rport === port)).toBe(true);
      expect(s.events.every((e) => e.lport === port)).toBe(true);
    });
  }

  it('filters by pid in the kernel: another pid sees nothing of tcpgen', async () => {
    const port = pickPort();
    const run = runProbe('tcpstates', ['--json', '--rport', String(port), '--pid', String(process.pid)], {
      waitReady: true,
    });
    await run.ready;
    await tcpgen({ port, send: 100, recv: 100, count: 3 });
    const res = await run.stop();
    expect(res.code).toBe(0);
    expect(res.events).toEqual([]);
  });

  it('machine mode: hello, records decoded by the manifest, stats with loss counters', async () => {
    const port = pickPort();
    const manifest = loadManifest('tcpstates');
    const run = runProbe('tcpstates', ['--machine', '--rport', String(port), '--stats-interval', '200'], {
      waitReady: true,
      stdout: 'frames',
    });
    await run.ready;
    const gen = await tcpgen({ port, send: 10, recv: 10, count: 4 });
    await new Promise((r) => setTimeout(r, 500));
    const res = await run.stop();
    expect(res.code).toBe(0);

    const hello = res.frames.filter((f) => f.kind === FrameKind.Hello);
    expect(hello).toHaveLength(1);
    const h = JSON.parse(hello[0]!.payload.toString('utf8'));
    expect(h.probe).toBe('tcpstates');
    expect(h.record_size).toBe(manifest.record.size);
    expect(h.programs.map((p: { kind: string }) => p.kind)).toEqual(['tracepoint']);
    expect(h.programs[0].xlated_insns).toBeGreaterThan(10);

    const records = res.frames.filter((f) => f.kind === FrameKind.Event).map((f) => decodeRecord(manifest, f.payload));
    // 4 connections x 5 client transitions, all from tcpgen.
    expect(records).toHaveLength(4 * CLIENT.length);
    expect(records.every((r) => r.pid === gen.pid && r.comm === 'tcpgen' && r.rport === port)).toBe(true);
    const ports = new Set(gen.conns.map((c) => c.lport));
    expect(new Set(records.filter((r) => r.lport !== 0).map((r) => r.lport))).toEqual(ports);

    const stats = res.frames.filter((f) => f.kind === FrameKind.Stats).map((f) => JSON.parse(f.payload.toString('utf8')));
    expect(stats.length).toBeGreaterThanOrEqual(2);
    const last = stats.at(-1);
    expect(last.records).toBe(records.length);
    expect(last.kernel).toEqual({ ringbuf_full: 0, map_full: 0, sampled_out: 0, read_failed: 0 });
    expect(last.loader.lost).toBe(0);
  });

  it('counts ring-buffer overflow instead of losing events silently', async () => {
    // The smallest ring buffer (one page) and a stopped reader: a burst must overflow it.
    const port = pickPort();
    const run = runProbe('tcpstates', ['--machine', '--rport', String(port), '--ringbuf-kb', '4'], {
      waitReady: true,
      stdout: 'frames',
    });
    await run.ready;
    process.kill(run.pid!, 'SIGSTOP');
    let gen;
    try {
      gen = await tcpgen({ port, send: 1, recv: 1, count: 200 });
    } finally {
      process.kill(run.pid!, 'SIGCONT');
    }
    await new Promise((r) => setTimeout(r, 300));
    const res = await run.stop();
    expect(res.code).toBe(0);
    const delivered = res.frames.filter((f) => f.kind === FrameKind.Event).length;
    const last = JSON.parse(res.frames.filter((f) => f.kind === FrameKind.Stats).at(-1)!.payload.toString('utf8'));
    expect(gen.conns).toHaveLength(200);
    // One page holds a few dozen records: most of the 1000 transitions were dropped...
    expect(last.kernel.ringbuf_full).toBeGreaterThan(500);
    // ...and every transition made is either delivered or counted as lost.
    expect(delivered + last.kernel.ringbuf_full).toBe(200 * CLIENT.length);
    expect(last.records).toBe(delivered);
  });

  it('runs on a minimized BTF (the path kernels without BTF take) and refuses a missing one', async () => {
    // Minimize this kernel's BTF to what tcpstates relocates against, as the build does for
    // kernels that ship none, and make the loader use it instead of /sys/kernel/btf/vmlinux.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfleet-minbtf-'));
    const min = path.join(dir, 'tcpstates.btf');
    execFileSync('bpftool', ['gen', 'min_core_btf', '/sys/kernel/btf/vmlinux', min,
      path.join(bpfOutDir, 'x86_64', 'obj', 'tcpstates.bpf.o')]);
    expect(statSync(min).size).toBeLessThan(statSync('/sys/kernel/btf/vmlinux').size / 20);
    const port = pickPort();
    const run = runProbe('tcpstates', ['--json', '--rport', String(port), '--btf', min, '-v'], { waitReady: true });
    await run.ready;
    const gen = await tcpgen({ port, send: 1, recv: 1 });
    await run.waitForEvent((e) => e.newstate === 'CLOSE', 5000);
    const res = await run.stop();
    expect(res.stderr).toContain(`btf: ${min}`);
    expect(res.events.map((e) => `${e.oldstate}>${e.newstate}`)).toEqual(CLIENT);
    expect(res.events.every((e) => e.pid === gen.pid)).toBe(true);

    const bad = await runProbe('tcpstates', ['--btf', path.join(dir, 'missing.btf')], { stdout: 'none' });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/cannot read --btf .*missing\.btf: No such file/);
  });

  it('--describe reports the kernel and which hooks it offers', () => {
    const out = JSON.parse(execFileSync(probeBinary('tcpstates'), ['--describe']).toString());
    expect(out.manifest.probe).toBe('tcpstates');
    expect(out.kernel.machine).toBe('x86_64');
    const tp = out.hooks.find((h: { kind: string }) => h.kind === 'tracepoint');
    expect(tp).toMatchObject({ available: true, selected: true, target: 'sock/inet_sock_set_state' });
    const kp = out.hooks.find((h: { kind: string }) => h.kind === 'kprobe');
    expect(kp.target).toBe('tcp_set_state');
    // Whatever the kernel says about kprobes must be consistent with the hook verdict.
    expect(kp.available).toBe(out.kernel.kprobes);
    if (!kp.available) expect(kp.reason).toMatch(/kprobe/);
  });

  it('rejects bad arguments with a clear message and exit code 2', async () => {
    const run = runProbe('tcpstates', ['--lport', '70000'], { stdout: 'none' });
    const res = await run;
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/invalid --lport '70000'/);
  });
});
