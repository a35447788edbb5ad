import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, X86_PROBES, bpfOutDir, kernelFeatures, portBase, requireKernelFeature, requireRoot } from '../lib/index.js';

// `bpfleet smoke` with the real controller and a real agent on this host: the five network
// probes that have tracepoint hooks here are deployed as signed bundles, skbclone (kprobe only)
// is available to the agent as a build-directory loader, since the controller refuses to deploy
// it to a kernel without kprobes. The smoke runs' events travel the normal pipeline (spool,
// gRPC stream, group commit) and the controller checks that the matching event was stored.

const DEPLOYABLE = ['tcpstates', 'tcplife', 'tcpwin', 'tcpbytes', 'tcptop'];
const NETWORK = [...DEPLOYABLE, 'skbclone'];
/** Stack probes with a smoke entry (process_activity or page_touch trigger). */
const STACKS = ['profile', 'offcputime', 'wakeuptime', 'pgfault'];
/** The probes whose triggers came later (bpf/README.md, "Smoke tests"), with them. */
const OTHERS: Record<string, string> = {
  netstat: 'tcp_loopback', loadmon: 'cpu_load', memleak: 'open_files', xdpping: 'ping_loopback', xdpdrop: 'udp_loopback', kvmexit: 'kvm_guest',
};

interface Row {
  deviceId: string; probe: string; outcome: 'pass' | 'fail' | 'unsupported'; reason: string; runId: string; streamId: string;
  timeToFirstEventMs: number | null; verifiedInsns: number | null; storedRecords: number;
  detail: { controller?: { stored: boolean; matchedSeq: number | null }; vars?: Record<string, number> };
}
interface Done { type: 'done'; ok: boolean; devices: { id: string; name: string; ok: boolean; commandId?: string }[]; results: Row[] }

let fleet: Fleet | undefined;

/** What this kernel should say for each probe, from the hooks its manifest lists (bpf/README.md). */
function expectedOutcome(probe: string): 'pass' | 'unsupported' {
  const tp = (c: string, n: string) => kernelFeatures.tracepoint(c, n)() === true;
  const kprobes = kernelFeatures.kprobes() === true;
  switch (probe) {
    case 'tcpstates': case 'tcplife': return tp('sock', 'inet_sock_set_state') || kprobes ? 'pass' : 'unsupported';
    case 'tcpwin': return tp('tcp', 'tcp_probe') || kprobes ? 'pass' : 'unsupported';
    case 'tcpbytes': case 'tcptop':
      return (tp('sock', 'sock_send_length') && tp('sock', 'sock_recv_length')) || kprobes ? 'pass' : 'unsupported';
    default: return kprobes ? 'pass' : 'unsupported';
  }
}

/**
 * Stand-in for "a probe the kernel rejects" (labelled: no shipped probe is rejected by this
 * kernel). It is the real tcpstates loader given the minimized BTF of another probe for another
 * kernel: its CO-RE relocations cannot resolve, libbpf poisons those instructions and this
 * kernel's verifier refuses the program (exit 4, verifier log on stderr). The rejection is real.
 */
function writeRejectedProbe(dir: string): void {
  const btfRoot = path.join(bpfOutDir, 'arm', 'btf');
  const release = existsSync(btfRoot) ? readdirSync(btfRoot)[0] : undefined;
  const btf = release === undefined ? '' : path.join(btfRoot, release, 'skbclone.btf');
  if (!existsSync(btf)) throw new Error(`needs ${btfRoot}/<release>/skbclone.btf (a minimized BTF of another kernel): make -C bpf ARCH=arm`);
  const bin = path.join(dir, 'badbtf');
  writeFileSync(bin, `#!/bin/sh
# Stand-in for a probe the kernel rejects: tcpstates with BTF that does not describe this kernel.
for a in "$@"; do [ "$a" = --manifest ] && { ${X86_PROBES}/tcpstates --manifest | sed 's/"probe":"tcpstates"/"probe":"badbtf"/'; exit $?; }; done
exec ${X86_PROBES}/tcpstates --btf ${btf} "$@"
`);
  chmodSync(bin, 0o755);
}

async function smoke(f: Fleet, args: string[]): Promise<{ code: number; done: Done; stderr: string }> {
  const r = await f.cli(['smoke', ...args, '--json']);
  let done: Done;
  try { done = JSON.parse(r.stdout) as Done; } catch { throw new Error(`bpfleet smoke ${args.join(' ')} printed no JSON (exit ${r.code}): ${r.stderr}\n${r.stdout}\n${f.logs()}`); }
  return { code: r.code, done, stderr: r.stderr };
}

async function adminGet<T>(f: Fleet, pathAndQuery: string): Promise<T> {
  const cfg = JSON.parse(readFileSync(path.join(f.dir, 'cfg', 'bpfleet', 'controller.json'), 'utf8')) as { adminUrl: string; adminToken: string };
  const res = await fetch(cfg.adminUrl + pathAndQuery, { headers: { authorization: `Bearer ${cfg.adminToken}` } });
  if (!res.ok) throw new Error(`GET ${pathAndQuery}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

describe('bpfleet smoke: controller + agent on this host', () => {
  beforeAll(() => {
    requireRoot();
    requireKernelFeature('tracefs', kernelFeatures.tracefs);
    requireKernelFeature('tracepoint sock/inet_sock_set_state', kernelFeatures.tracepoint('sock', 'inet_sock_set_state'));
  });
  afterEach(async (ctx) => {
    await fleet?.stop(ctx.task.result?.state === 'fail');
    fleet = undefined;
  });

  it('deployed network probes pass where this kernel has their hooks, kprobe-only ones are unsupported with the reason, a rejected probe fails with the verifier message', async () => {
    const base = portBase(4);
    const f = (fleet = new Fleet({ name: 'smoke', grpcPort: base, adminPort: base + 1 }));
    // The agent's build-directory loaders: skbclone (not deployable here) and the stand-in.
    const dev = path.join(f.dir, 'dev-probes');
    mkdirSync(dev);
    symlinkSync(path.join(X86_PROBES, 'skbclone'), path.join(dev, 'skbclone'));
    writeRejectedProbe(dev);
    await f.startController();
    const token = await f.token(['lab=smoke']);
    await f.startAgent('host', { token, extra: ['--dev-probes', dev] });

    for (const probe of DEPLOYABLE) {
      const d = await f.cli(['deploy', probe, '--to', 'lab=smoke', '--no-start', '--json']);
      expect(d.code, `deploy ${probe}: ${d.stderr}${d.stdout}`).toBe(0);
    }
    if (kernelFeatures.kprobes() !== true) {
      const d = await f.cli(['deploy', 'skbclone', '--to', 'lab=smoke', '--no-start', '--json']);
      expect(d.code).toBe(1);
      expect(d.stdout).toMatch(/kprobe/);
    }

    // The six network probes only: nothing fails, so exit 0 even with unsupported ones.
    const six = await smoke(f, ['--to', 'lab=smoke', ...NETWORK.flatMap((p) => ['--probe', p]), '--timeout', '20']);
    expect(six.done.results.map((r) => r.probe)).toEqual(NETWORK);
    for (const r of six.done.results) {
      const want = expectedOutcome(r.probe);
      expect(r.outcome, `${r.probe}: ${r.reason}`).toBe(want);
      if (want === 'pass') {
        expect(r.reason).toBe('');
        expect(r.timeToFirstEventMs).toBeGreaterThanOrEqual(0);
        expect(r.verifiedInsns).toBeGreaterThan(0);
        expect(r.detail.controller).toMatchObject({ stored: true });
        expect(r.storedRecords).toBeGreaterThan(0);
        expect(r.runId).toMatch(new RegExp(`^smoke-c-[0-9a-f]+-${r.probe}$`));
      } else {
        expect(r.reason).toMatch(/unsupported on this kernel .*needs kprobe/);
        expect(r.verifiedInsns).toBeNull();
      }
    }
    expect(six.code, six.stderr).toBe(0);
    expect(six.done.ok).toBe(true);

    // The controller's check is against its own store: the smoke run's stored events hold the
    // matching record (tcpstates: the trigger port's server socket entered ESTABLISHED).
    const ts = six.done.results.find((r) => r.probe === 'tcpstates')!;
    const events = f.query((db) => db.prepare('SELECT s.run_id, s.stored_records FROM streams s WHERE s.stream_id = ?').get(ts.streamId)) as
      { run_id: string; stored_records: number } | undefined;
    expect(events).toMatchObject({ run_id: ts.runId });
    expect(events!.stored_records).toBe(ts.storedRecords);
    const ev = await f.cli(['events', '--probe', 'tcpstates', '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    const port = ts.detail.vars!['port'];
    expect(JSON.stringify(JSON.parse(ev.stdout))).toMatch(new RegExp(`"lport":${port},[^}]*"newstate":"ESTABLISHED"`));

    // Every installed probe (none named): the stand-in the kernel rejects fails, so exit 1.
    const all = await smoke(f, ['--timeout', '20']);
    expect(all.code).toBe(1);
    expect(all.done.ok).toBe(false);
    expect(all.done.results.map((r) => r.probe).sort()).toEqual([...NETWORK, 'badbtf'].sort());
    const bad = all.done.results.find((r) => r.probe === 'badbtf')!;
    expect(bad.outcome).toBe('fail');
    expect(bad.reason).toMatch(/^rejected by the kernel verifier: failed to resolve CO-RE relocation .*failed to load BPF programs/);
    for (const r of all.done.results.filter((x) => x.probe !== 'badbtf')) expect(r.outcome, `${r.probe}: ${r.reason}`).toBe(expectedOutcome(r.probe));

    // The results are kept: the latest per device x probe at GET /api/v1/smoke.
    const kept = await adminGet<{ results: (Row & { deviceName: string })[] }>(f, '/api/v1/smoke');
    expect(kept.results.map((r) => r.probe).sort()).toEqual([...NETWORK, 'badbtf'].sort());
    expect(kept.results.every((r) => r.deviceName === all.done.devices[0]!.name)).toBe(true);
    expect(kept.results.find((r) => r.probe === 'badbtf')).toMatchObject({ outcome: 'fail', reason: bad.reason });
    const history = await adminGet<{ results: Row[] }>(f, '/api/v1/smoke?probe=tcpstates&history=1');
    expect(history.results).toHaveLength(2);
    const listed = await f.cli(['smoke', 'results', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Row[]).map((r) => `${r.probe}:${r.outcome}`).sort())
      .toEqual(kept.results.map((r) => `${r.probe}:${r.outcome}`).sort());

    // For people: the matrix table (printed in the CI log).
    const table = await f.cli(['smoke', '--probe', 'tcpstates', '--probe', 'skbclone']);
    expect(table.stdout).toMatch(/^DEVICE\s+PROBE\s+RESULT\s+FIRST EVENT\s+INSNS\s+ATTACH\s+REASON/);
    expect(table.stdout).toMatch(/tcpstates\s+pass\s+\d+ ms\s+[\d,]+\s+\d+ ms/);
    process.stdout.write(`\nsmoke matrix on this host:\n${(await f.cli(['smoke'])).stdout}\n`);
  }, 300_000);

  it('the stack probes pass their process and page-touch triggers: the record of the trigger pid is stored', async () => {
    requireKernelFeature('tracepoint sched/sched_switch', kernelFeatures.tracepoint('sched', 'sched_switch'));
    requireKernelFeature('tracepoint exceptions/page_fault_user', kernelFeatures.tracepoint('exceptions', 'page_fault_user'));
    const base = portBase(4) + 2;
    const f = (fleet = new Fleet({ name: 'smoke-stacks', grpcPort: base, adminPort: base + 1 }));
    await f.startController();
    const token = await f.token(['lab=smoke-stacks']);
    await f.startAgent('host', { token });
    for (const probe of STACKS) {
      const d = await f.cli(['deploy', probe, '--to', 'lab=smoke-stacks', '--no-start', '--json']);
      expect(d.code, `deploy ${probe}: ${d.stderr}${d.stdout}`).toBe(0);
    }
    const r = await smoke(f, ['--to', 'lab=smoke-stacks', ...STACKS.flatMap((p) => ['--probe', p]), '--timeout', '30']);
    expect(r.done.results.map((x) => x.probe)).toEqual(STACKS);
    for (const x of r.done.results) {
      expect(x.outcome, `${x.probe}: ${x.reason}`).toBe('pass');
      expect(x.verifiedInsns).toBeGreaterThan(0);
      expect(x.detail.controller).toMatchObject({ stored: true });
      expect(x.detail.vars?.['pid']).toBeGreaterThan(0);
    }
    expect(r.code, r.stderr).toBe(0);
  }, 300_000);

  it('netstat, loadmon, memleak, xdpping, xdpdrop and kvmexit pass their triggers (kvmexit unsupported, saying why, without KVM or QEMU)', async () => {
    requireKernelFeature('tracepoint kmem/kmem_cache_alloc', kernelFeatures.tracepoint('kmem', 'kmem_cache_alloc'));
    // The kvm_guest trigger needs /dev/kvm and QEMU; the loader, the kvm tracepoints (kvm module loaded).
    const kvm = existsSync('/dev/kvm') && spawnSync('qemu-system-x86_64', ['--version']).status === 0 &&
      kernelFeatures.tracepoint('kvm', 'kvm_exit')() === true;
    const probes = Object.keys(OTHERS);
    const base = portBase(4);
    const f = (fleet = new Fleet({ name: 'smoke-others', grpcPort: base, adminPort: base + 1 }));
    await f.startController();
    const token = await f.token(['lab=smoke-others']);
    await f.startAgent('host', { token });
    for (const probe of probes) {
      const d = await f.cli(['deploy', probe, '--to', 'lab=smoke-others', '--no-start', '--json']);
      expect(d.code, `deploy ${probe}: ${d.stderr}${d.stdout}`).toBe(0);
    }
    const r = await smoke(f, ['--to', 'lab=smoke-others', ...probes.flatMap((p) => ['--probe', p]), '--timeout', '30']);
    expect(r.done.results.map((x) => x.probe)).toEqual(probes);
    const timings: string[] = [];
    for (const x of r.done.results) {
      timings.push(`${x.probe} ${x.outcome} ${x.timeToFirstEventMs ?? '-'} ms`);
      if (x.probe === 'kvmexit' && !kvm) {
        expect(x.outcome, x.reason).toBe('unsupported');
        expect(x.reason).toMatch(/no \/dev\/kvm|no qemu-system-x86_64|needs tracepoint kvm\//);
        continue;
      }
      expect(x.outcome, `${x.probe}: ${x.reason}`).toBe('pass');
      expect(x.verifiedInsns).toBeGreaterThan(0);
      expect(x.detail.controller).toMatchObject({ stored: true });
    }
    expect(r.code, r.stderr).toBe(0);

    // What ties each stored record to its trigger: the trigger's pid, address or the agent's own pid.
    const row = (p: string) => r.done.results.find((x) => x.probe === p)!;
    const vars = (p: string) => row(p).detail.vars as Record<string, string | number>;
    const stored = async (p: string): Promise<Record<string, unknown>[]> =>
      (await adminGet<{ events: { fields: Record<string, unknown> }[] }>(f, `/api/v1/events?probe=${p}&limit=100000`)).events.map((e) => e.fields);
    const agentPid = vars('netstat')['pid'];
    expect((await stored('netstat')).some((e) => e['pid'] === agentPid && e['name'] === 'SYN_SENT' && e['group'] === 'TcpState')).toBe(true);
    expect((await stored('loadmon')).some((e) => e['pid'] === vars('loadmon')['pid'] && e['kind'] === 0 && Number(e['value']) >= 1)).toBe(true);
    // memleak: the open_files child's seven struct files, from one kernel stack through openat.
    const held = (await stored('memleak')).filter((e) => e['pid'] === vars('memleak')['pid'] && Number(e['count']) >= 7);
    expect(held.length).toBeGreaterThan(0);
    expect(held.some((e) => /do_sys_openat2_\[k\];.*alloc_empty_file_\[k\]/.test(String(e['stack'])))).toBe(true);
    expect((await stored('xdpping')).some((e) => e['type'] === 1 && e['daddr'] === vars('xdpping')['addr'])).toBe(true);
    expect((await stored('xdpdrop')).some((e) => e['type'] === 1 && e['addr'] === vars('xdpdrop')['addr'] &&
      Number(e['packets_total']) >= Number(vars('xdpdrop')['packets']))).toBe(true);
    if (kvm) expect((await stored('kvmexit')).some((e) => e['pid'] === vars('kvmexit')['pid'] && e['isa'] === 4)).toBe(true);
    // The XDP smoke runs attached to lo through links owned by their loaders: nothing is left there.
    expect(execFileSync('ip', ['-d', 'link', 'show', 'dev', 'lo']).toString()).not.toMatch(/xdp/);
    process.stdout.write(`\nsmoke, time to first event: ${timings.join(', ')}\n`);
  }, 300_000);
});
