import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fixturesBinDir, probeBinary, repoRoot, tcpgenSource, type Arch } from '../lib/index.js';
import { sumField } from '../probes/support.js';

const execFileP = promisify(execFile);

// The probes for arm64 and armv7 on the real Debian kernels of the board classes, booted under
// QEMU (toolchains/qemu-run.sh): kprobe-only probes run here, since this host has no kprobes,
// and the armmp kernel has no BTF, so the loaders must use the minimized BTF they embed.
// test/boards/probe-matrix.sh runs in the guest; this file checks what it printed.

const PORT = 5555;
const SEND = 123456;
const RECV = 65432;
const PROBES = ['tcpstates', 'tcplife', 'tcpwin', 'tcpbytes', 'tcptop', 'skbclone', 'xdpping', 'xdpdrop', 'netstat', 'kvmexit'];
const CLIENT = ['CLOSE>SYN_SENT', 'SYN_SENT>ESTABLISHED', 'ESTABLISHED>FIN_WAIT1', 'FIN_WAIT1>FIN_WAIT2', 'FIN_WAIT2>CLOSE'];

interface Board {
  kernel: string;
  arch: Arch;
  btf: 'kernel' | 'embedded';
  /** Hooks each probe must pick on this kernel. */
  hooks: Record<string, string>;
  /** kvmexit: loads (the kernel has KVM's tracepoints, even without a hypervisor to run), or exits 3 saying why. */
  kvmexit: 'ready' | 'unsupported';
}

const kprobeIo = 'kprobe:tcp_sendmsg, kretprobe:tcp_sendmsg, kprobe:tcp_cleanup_rbuf';
const BOARDS: Board[] = [
  {
    kernel: 'bullseye-arm64', arch: 'arm64', btf: 'kernel',
    hooks: { tcpstates: 'tracepoint:sock/inet_sock_set_state', 'tcpstates-kprobe': 'kprobe:tcp_set_state',
      tcpwin: 'tp_btf:tcp_probe', tcpbytes: kprobeIo, tcptop: kprobeIo, skbclone: 'kprobe:skb_clone' },
    kvmexit: 'ready',
  },
  {
    kernel: 'bookworm-arm64', arch: 'arm64', btf: 'kernel',
    hooks: { tcpstates: 'tracepoint:sock/inet_sock_set_state', 'tcpstates-kprobe': 'kprobe:tcp_set_state',
      tcpwin: 'tp_btf:tcp_probe', tcpbytes: kprobeIo, tcptop: kprobeIo, skbclone: 'kprobe:skb_clone' },
    kvmexit: 'ready',
  },
  {
    kernel: 'bullseye-armmp', arch: 'arm', btf: 'embedded',
    hooks: { tcpstates: 'tracepoint:sock/inet_sock_set_state', 'tcpstates-kprobe': 'kprobe:tcp_set_state',
      tcpwin: 'raw_tp:tcp_probe', tcpbytes: kprobeIo, tcptop: kprobeIo, skbclone: 'kprobe:skb_clone' },
    // 32-bit ARM lost KVM in Linux 5.7: no kvm tracepoints.
    kvmexit: 'unsupported',
  },
];

const CROSS: Record<Exclude<Arch, 'x86_64'>, string> = { arm64: 'aarch64-linux-gnu-gcc', arm: 'arm-linux-gnueabihf-gcc' };

async function crossTcpgen(arch: Exclude<Arch, 'x86_64'>): Promise<string> {
  const out = path.join(fixturesBinDir, `tcpgen-${arch}`);
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(tcpgenSource).mtimeMs) return out;
  mkdirSync(fixturesBinDir, { recursive: true });
  await execFileP(CROSS[arch], ['-static', '-O2', '-o', out, tcpgenSource]);
  return out;
}

interface Section {
  rc: number;
  stdout: Record<string, unknown>[];
  stderr: string;
  gen: { pid: number; lport: number; rport: number; sent: number; recv: number }[];
  /** The trigger's whole output (ping, /proc/net/snmp lines). */
  genText: string;
}

function parseMatrix(text: string): Map<string, Section> {
  const out = new Map<string, Section>();
  const re = /^== BEGIN (\S+)\n([\s\S]*?)^== END \1$/gm;
  for (const m of text.matchAll(re)) {
    const body = m[2]!;
    const part = (name: string) => {
      const at = body.indexOf(`-- ${name}\n`);
      if (at < 0) return '';
      const rest = body.slice(at + name.length + 4);
      const next = rest.search(/^-- /m);
      return next < 0 ? rest : rest.slice(0, next);
    };
    const lines = (s: string) => s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    out.set(m[1]!, {
      rc: Number(/^rc=(\d+)/m.exec(body)?.[1] ?? -1),
      stdout: lines(part('stdout')),
      stderr: part('stderr'),
      gen: lines(part('tcpgen')),
      genText: part('tcpgen'),
    });
  }
  return out;
}

describe('probes on emulated boards (real Debian kernels under QEMU)', () => {
  for (const board of BOARDS) {
    it(`${board.kernel} (${board.arch}): every probe loads, attaches and reports exact results`, async () => {
      if (os.arch() !== 'x64') throw new Error('these runs boot arm kernels with the x86_64 host tools');
      const cached = path.join(process.env.BPFLEET_CACHE ?? path.join(os.homedir(), '.cache', 'bpfleet'), 'kernels', board.kernel);
      if (!existsSync(cached)) {
        throw new Error(`kernel ${board.kernel} is not cached in ${cached}: run bash toolchains/kernels.sh (setup.sh does)`);
      }
      const tcpgen = await crossTcpgen(board.arch as Exclude<Arch, 'x86_64'>);
      const args = [path.join(repoRoot, 'toolchains', 'qemu-run.sh'), board.arch, board.kernel, '--timeout', '240'];
      for (const p of PROBES) args.push('--add', probeBinary(p, board.arch));
      args.push('--add', `${tcpgen}=/bin/tcpgen`, '--add', `${path.join(repoRoot, 'test', 'boards', 'probe-matrix.sh')}=/bin/probe-matrix`);
      args.push('--', 'sh', '/bin/probe-matrix');
      let stdout: string, stderr: string;
      try {
        ({ stdout, stderr } = await execFileP('bash', args, { maxBuffer: 64 << 20, timeout: 280_000 }));
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; message: string };
        throw new Error(`qemu-run failed: ${e.message}\n${e.stderr ?? ''}\n${(e.stdout ?? '').slice(-4000)}`, { cause: err });
      }
      const boot = /boot-to-command ([\d.]+)s, total ([\d.]+)s/.exec(stderr);
      console.log(`${board.kernel}: boot-to-command ${boot?.[1]} s, whole matrix ${boot?.[2]} s`);
      const matrix = parseMatrix(stdout);
      const dump = (label: string) => `${label} on ${board.kernel}:\n${matrix.get(label)?.stderr}\n${JSON.stringify(matrix.get(label)?.stdout.slice(0, 5))}`;

      for (const label of Object.keys(board.hooks)) {
        const s = matrix.get(label);
        expect(s, `no section ${label} in:\n${stdout.slice(0, 3000)}`).toBeDefined();
        expect(s!.rc, dump(label)).toBe(0);
        expect(s!.stderr, dump(label)).toContain(`ready (hooks: ${board.hooks[label]}; btf: ${board.btf})`);
        expect(s!.gen).toHaveLength(2);
        // Nothing was lost anywhere in the kernel or the loader.
        const stats = JSON.parse(/stats (\{.*\})/.exec(s!.stderr)![1]!);
        expect(stats.kernel.ringbuf_full + stats.kernel.map_full + stats.loader.lost, dump(label)).toBe(0);
      }

      const gen = matrix.get('tcpstates')!.gen;
      const genPid = gen[0]!.pid;
      for (const label of ['tcpstates', 'tcpstates-kprobe']) {
        const s = matrix.get(label)!;
        const pid = s.gen[0]!.pid;
        expect(s.stdout.map((e) => `${e.oldstate}>${e.newstate}`), dump(label)).toEqual([...CLIENT, ...CLIENT]);
        expect(s.stdout.every((e) => e.pid === pid && e.comm === 'tcpgen' && e.rport === PORT && e.daddr === '127.0.0.1')).toBe(true);
        expect(s.stdout.filter((e) => e.lport !== 0).every((e) => e.saddr === '127.0.0.1')).toBe(true);
        expect(new Set(s.stdout.filter((e) => e.lport !== 0).map((e) => e.lport))).toEqual(new Set(s.gen.map((g) => g.lport)));
      }

      const life = matrix.get('tcplife')!;
      expect(life.stdout, dump('tcplife')).toHaveLength(2);
      for (const g of life.gen) {
        expect(life.stdout.find((e) => e.lport === g.lport), dump('tcplife')).toMatchObject({
          pid: g.pid, comm: 'tcpgen', rport: PORT, tx_bytes: SEND + 2, rx_bytes: RECV + 1, passive: 0, open_seen: 1,
        });
      }

      const win = matrix.get('tcpwin')!;
      const winPorts = new Set(win.gen.map((g) => g.lport));
      const mine = win.stdout.filter((e) => winPorts.has(e.lport as number));
      expect(mine.length, dump('tcpwin')).toBeGreaterThan(2);
      expect(mine.every((e) => (e.snd_cwnd as number) >= 1 && (e.sndbuf as number) > 0 && (e.mss_cache as number) > 0)).toBe(true);
      expect(mine.some((e) => (e.srtt_us as number) > 0)).toBe(true);

      const bytes = matrix.get('tcpbytes')!;
      const bpid = bytes.gen[0]!.pid;
      const brec = bytes.stdout.filter((e) => e.pid === bpid);
      expect(sumField(brec, 'sent_bytes'), dump('tcpbytes')).toBe(2 * (SEND + RECV));
      expect(sumField(brec, 'recv_bytes'), dump('tcpbytes')).toBe(2 * (SEND + RECV));
      expect(bytes.stdout.every((e) => e.comm === 'tcpgen')).toBe(true);

      const top = matrix.get('tcptop')!;
      for (const g of top.gen) {
        const recs = top.stdout.filter((e) => e.lport === g.lport && e.rport === PORT);
        expect(sumField(recs, 'sent_bytes'), dump('tcptop')).toBe(SEND);
        expect(sumField(recs, 'recv_bytes'), dump('tcptop')).toBe(RECV);
        expect(recs.every((e) => e.pid === g.pid && e.comm === 'tcpgen')).toBe(true);
      }

      const clone = matrix.get('skbclone')!;
      const crec = clone.stdout.filter((e) => e.pid === clone.gen[0]!.pid);
      expect(sumField(crec, 'count'), dump('skbclone')).toBeGreaterThan(0);
      expect(clone.stdout.every((e) => e.comm === 'tcpgen')).toBe(true);
      // Running totals are consistent with the per-interval counts.
      expect(Math.max(...crec.map((e) => e.total as number))).toBe(sumField(crec, 'count'));
      expect(genPid).toBeGreaterThan(0);

      // Issue 6. XDP on lo: no native XDP there, so both loaders fall back to generic mode.
      for (const label of ['xdpping', 'xdpdrop', 'netstat']) {
        const x = matrix.get(label);
        expect(x, `no section ${label}`).toBeDefined();
        expect(x!.rc, dump(label)).toBe(0);
        expect(x!.stderr, dump(label)).toContain(`; btf: ${board.btf})`);
      }
      const ping = matrix.get('xdpping')!;
      expect(ping.stderr, dump('xdpping')).toContain('attached to lo (ifindex 1) in generic mode');
      expect(ping.genText, dump('xdpping')).toMatch(/5 packets transmitted, 5 (packets )?received/);
      expect(sumField(ping.stdout, 'answered'), dump('xdpping')).toBe(5);
      // XDP answered: the stack's OutEchoReps did not move (first and second Icmp: pairs).
      const icmp = [...ping.genText.matchAll(/^Icmp: (.*)\nIcmp: (.*)$/gm)].map((m) => {
        const names = m[1]!.trim().split(/\s+/);
        const vals = m[2]!.trim().split(/\s+/).map(Number);
        return new Map(names.map((n, i) => [n, vals[i]!]));
      });
      expect(icmp, ping.genText).toHaveLength(2);
      expect(icmp[1]!.get('OutEchoReps')).toBe(icmp[0]!.get('OutEchoReps'));
      expect(icmp[1]!.get('InEchoReps')! - icmp[0]!.get('InEchoReps')!).toBe(5);

      const drop = matrix.get('xdpdrop')!;
      expect(drop.stderr).toContain('2 prefixes (1 IPv4, 1 IPv6)');
      expect(drop.genText, dump('xdpdrop')).toMatch(/3 packets transmitted, 0 (packets )?received/);
      expect(sumField(drop.stdout.filter((e) => e.type === 1 && e.addr === '127.0.0.1'), 'packets'), dump('xdpdrop')).toBe(3);

      // netstat: the two tcpgen connections, from the kernel's counters and per process.
      const ns = matrix.get('netstat')!;
      const nsum = (group: string, name: string, pid?: number) =>
        sumField(ns.stdout.filter((e) => e.group === group && e.name === name && (pid === undefined || e.pid === pid)), 'delta');
      expect(nsum('Tcp', 'ActiveOpens'), dump('netstat')).toBe(2);
      expect(nsum('Tcp', 'PassiveOpens'), dump('netstat')).toBe(2);
      expect(nsum('TcpState', 'SYN_SENT', ns.gen[0]!.pid), dump('netstat')).toBe(2);

      const kvm = matrix.get('kvmexit')!;
      if (board.kvmexit === 'ready') {
        expect(kvm.rc, dump('kvmexit')).toBe(0);
        expect(kvm.stderr).toContain('ready (hooks: tracepoint:kvm/kvm_exit, tracepoint:kvm/kvm_entry');
      } else {
        expect(kvm.rc, dump('kvmexit')).toBe(3);
        expect(kvm.stderr).toMatch(/unsupported on this kernel .*needs tracepoint kvm\/kvm_exit/);
      }
    }, 300_000);
  }
});
