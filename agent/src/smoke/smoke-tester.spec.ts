// The smoke tester with the real loaders of bpf/out/x86_64 in this kernel (root), a real
// loopback trigger, and a recording sink standing in for the session's spool + stream (the
// session spec covers that path). Expectations follow this kernel's capabilities: a probe
// whose only hook is a kprobe is `unsupported` here when the kernel has no kprobes.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { decodeRecord } from '@bpfleet/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManifestCache, ProbeRegistry } from '../probes/index.js';
import { RecordingSink, devDir, ensureProbesBuilt, repoRoot, requireRoot, tempDir } from '../probes/probe-test-support.js';
import { readKernelCaps } from '../system/index.js';
import { describeLoaderFailure } from './loader-failure.js';
import { SmokeTester } from './smoke-tester.js';
import type { SmokeProbeResult } from './smoke-types.js';
import { findExecutable, SmokeUnsupportedError } from './trigger-support.js';

const NETWORK = ['skbclone', 'tcpbytes', 'tcplife', 'tcpstates', 'tcptop', 'tcpwin'];
let tmp: string;
let installDir: string;
let kprobes: boolean;

/**
 * Stand-in for "a probe the kernel rejects" (labelled: no shipped probe is rejected by this
 * kernel): the real tcpstates loader, handed the minimized BTF of another probe for another
 * kernel, so its CO-RE relocations cannot resolve; libbpf poisons those instructions and the
 * kernel's verifier refuses the program (exit 4 with the verifier log). The rejection is real.
 */
function installRejectedProbe(dir: string): void {
  const btfRoot = path.join(repoRoot, 'bpf', 'out', 'arm', 'btf');
  const release = existsSync(btfRoot) ? readdirSync(btfRoot)[0] : undefined;
  const btf = release === undefined ? '' : path.join(btfRoot, release, 'skbclone.btf');
  if (!existsSync(btf)) throw new Error(`needs a minimized BTF of another kernel (${btfRoot}/<release>/skbclone.btf): make -C bpf ARCH=arm`);
  const bin = path.join(dir, 'badbtf', 'current', 'badbtf');
  mkdirSync(path.dirname(bin), { recursive: true });
  writeFileSync(bin, `#!/bin/sh
# Stand-in for a probe the kernel rejects: tcpstates with BTF that does not describe this kernel.
for a in "$@"; do [ "$a" = --manifest ] && { ${devDir}/tcpstates --manifest | sed 's/"probe":"tcpstates"/"probe":"badbtf"/'; exit $?; }; done
exec ${devDir}/tcpstates --btf ${btf} "$@"
`);
  chmodSync(bin, 0o755);
}

beforeAll(async () => {
  requireRoot();
  ensureProbesBuilt();
  tmp = tempDir('smoke');
  installDir = path.join(tmp, 'probes');
  installRejectedProbe(installDir);
  kprobes = (await readKernelCaps()).kprobes;
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function tester(sink: RecordingSink, installed: string[] = NETWORK): SmokeTester {
  return new SmokeTester({
    registry: new ProbeRegistry({ installDir, devDir }),
    manifests: new ManifestCache(),
    deviceId: 'dev-smoke',
    sink,
    installed: async () => installed,
    batch: { maxDelayMs: 50 },
    statsIntervalMs: 200,
    probeTimeoutMs: 15_000,
  });
}

const byProbe = (rs: SmokeProbeResult[]) => new Map(rs.map((r) => [r.probe, r]));

describe('SmokeTester with real loaders', () => {
  it('every installed network probe: pass where this kernel has its hooks, unsupported (with the reason) where not', async () => {
    const sink = new RecordingSink();
    const report = await tester(sink).run({ commandId: 'c1', probes: [] });
    expect(report.deviceId).toBe('dev-smoke');
    const got = byProbe(report.probes);
    expect([...got.keys()]).toEqual(NETWORK);
    for (const probe of ['tcpstates', 'tcplife', 'tcpwin', 'tcpbytes', 'tcptop']) {
      const r = got.get(probe)!;
      expect(r, `${probe}: ${r.reason}`).toMatchObject({ outcome: 'pass', reason: '', runId: `smoke-c1-${probe}`,
        streamId: `dev-smoke/${probe}/smoke-c1-${probe}`, trigger: 'tcp_loopback' });
      expect(r.timeToFirstEventMs).toBeGreaterThanOrEqual(0);
      expect(r.attachMs).toBeGreaterThan(0);
      expect(r.verifiedInsns).toBeGreaterThan(0);
      expect(r.programs.every((p) => p.verifiedInsns > 0)).toBe(true);
      expect(r.records).toBeGreaterThan(0);
      // The records went to the sink (the session's spool + stream), and one there meets the expectation.
      const batches = sink.batches.filter((b) => b.runId === r.runId);
      expect(batches.length).toBeGreaterThan(0);
      expect(batches.every((b) => b.streamId === r.streamId && b.schemaId === r.schemaId)).toBe(true);
    }
    // tcpstates' server socket on the trigger's port reached ESTABLISHED: check it in the sink too.
    const ts = got.get('tcpstates')!;
    expect(ts.args).toEqual(['--lport', String(ts.vars['port'])]);
    expect(ts.expect).toBe(`lport = ${ts.vars['port']}, newstate = ESTABLISHED`);
    const manifest = (await new ManifestCache().get(path.join(devDir, 'tcpstates'))).manifest;
    const recs = sink.batches.filter((b) => b.runId === ts.runId)
      .flatMap((b) => Array.from({ length: b.count }, (_, i) => decodeRecord(manifest, b.records.subarray(i * b.recordSize, (i + 1) * b.recordSize))));
    expect(recs.some((f) => f['lport'] === ts.vars['port'] && f['newstate'] === 'ESTABLISHED')).toBe(true);
    expect(recs.every((f) => f['lport'] === ts.vars['port'])).toBe(true); // the filter isolated the trigger

    const skb = got.get('skbclone')!;
    if (kprobes) {
      expect(skb, skb.reason).toMatchObject({ outcome: 'pass' });
    } else {
      expect(skb).toMatchObject({ outcome: 'unsupported', exitCode: 3, verifiedInsns: null, timeToFirstEventMs: null });
      expect(skb.reason).toMatch(/unsupported on this kernel .*needs kprobe skb_clone/);
    }
    // Every smoke run ended: a terminal status per run reached the sink.
    for (const r of report.probes) expect(sink.statuses.some((s) => s.runId === r.runId && s.state >= 2)).toBe(true);
  }, 180_000);

  it('a probe the kernel rejects fails with the verifier message; an unknown probe fails saying it is not installed', async () => {
    const sink = new RecordingSink();
    const report = await tester(sink).run({ commandId: 'c2', probes: ['badbtf', 'nosuchprobe'] });
    const [bad, missing] = report.probes;
    expect(bad).toMatchObject({ probe: 'badbtf', outcome: 'fail', exitCode: 4, timeToFirstEventMs: null });
    expect(bad!.reason).toMatch(/^rejected by the kernel verifier: failed to resolve CO-RE relocation .*failed to load BPF programs/);
    expect(bad!.log).toMatch(/BEGIN PROG LOAD LOG/);
    expect(missing).toMatchObject({ probe: 'nosuchprobe', outcome: 'fail' });
    expect(missing!.reason).toMatch(/probe nosuchprobe is not installed/);
  }, 120_000);
});

describe('SmokeTester with the triggers of the other probes', () => {
  it('netstat, loadmon, memleak, xdpping, xdpdrop, kvmexit: a record tied to their trigger (kvmexit: unsupported without KVM or QEMU)', async () => {
    const probes = ['netstat', 'loadmon', 'memleak', 'xdpping', 'xdpdrop', 'kvmexit'];
    const sink = new RecordingSink();
    const report = await tester(sink, probes).run({ commandId: 'c3', probes: [] });
    const got = byProbe(report.probes);
    expect([...got.keys()]).toEqual(probes);
    const triggers = { netstat: 'tcp_loopback', loadmon: 'cpu_load', memleak: 'open_files', xdpping: 'ping_loopback', xdpdrop: 'udp_loopback',
      kvmexit: 'kvm_guest' } as Record<string, string>;
    const kvm = existsSync('/dev/kvm') && findExecutable('qemu-system-x86_64') !== undefined;
    for (const probe of probes) {
      const r = got.get(probe)!;
      expect(r.trigger).toBe(triggers[probe]);
      if (probe === 'kvmexit' && !kvm) {
        expect(r, r.reason).toMatchObject({ outcome: 'unsupported' });
        expect(r.reason).toMatch(/kvm_guest trigger: no (\/dev\/kvm|qemu-system-x86_64)/);
        continue;
      }
      expect(r, `${probe}: ${r.reason}`).toMatchObject({ outcome: 'pass', reason: '' });
      expect(r.timeToFirstEventMs).toBeGreaterThanOrEqual(0);
      expect(r.verifiedInsns).toBeGreaterThan(0);
    }
    // The placeholders that tie the record to the trigger are in the args and the expectation.
    const pid = (p: string) => String(got.get(p)!.vars['pid']);
    expect(got.get('netstat')!.expect).toBe(`group = TcpState, name = SYN_SENT, pid = ${process.pid}`);
    expect(got.get('loadmon')!.args).toEqual(['--pid', pid('loadmon'), '--threshold', '0', '--freq', '999', '--interval', '200']);
    expect(got.get('memleak')!.expect).toBe(`pid = ${pid('memleak')}, count >= 7`);
    const ping = got.get('xdpping')!;
    expect(ping.expect).toBe(`type = 1, daddr = ${ping.vars['addr']}`);
    const drop = got.get('xdpdrop')!;
    expect(drop.args).toContain(`${drop.vars['addr']}/32`);
    expect(drop.expect).toBe(`type = 1, addr = ${drop.vars['addr']}, packets_total >= 5`);
    if (kvm) expect(got.get('kvmexit')!.expect).toBe(`pid = ${pid('kvmexit')}, isa = 4, count >= 1`);
    // The XDP runs left nothing on lo.
    expect(execFileSync('ip', ['-d', 'link', 'show', 'dev', 'lo']).toString()).not.toMatch(/xdp/);
  }, 180_000);

  it('a trigger the device cannot make is unsupported, saying why, and its loader is not started', async () => {
    const sink = new RecordingSink();
    const t = new SmokeTester({
      registry: new ProbeRegistry({ installDir, devDir }),
      manifests: new ManifestCache(),
      deviceId: 'dev-smoke',
      sink,
      installed: async () => ['kvmexit'],
      makeTrigger: () => ({
        prepare: () => Promise.reject(new SmokeUnsupportedError('kvm_guest trigger: no /dev/kvm on this device')),
        fire: () => Promise.reject(new Error('not to be fired')),
        close: () => Promise.resolve(),
      }),
    });
    const report = await t.run({ commandId: 'c4', probes: ['kvmexit'] });
    expect(report.probes[0]).toMatchObject({ probe: 'kvmexit', outcome: 'unsupported', reason: 'kvm_guest trigger: no /dev/kvm on this device',
      trigger: 'kvm_guest', attachMs: null, records: 0 });
    expect(sink.statuses).toEqual([]);
  });
});

describe('describeLoaderFailure', () => {
  it('names the missing feature, the verifier complaint, the attach error', () => {
    expect(describeLoaderFailure(3, 'x: ready?\nskbclone: unsupported on this kernel (5.4 arm): needs kprobe skb_clone\n'))
      .toEqual({ outcome: 'unsupported', reason: 'skbclone: unsupported on this kernel (5.4 arm): needs kprobe skb_clone' });
    const verifier = ['libbpf: -- BEGIN PROG LOAD LOG --', '0: R1=ctx()', 'R2 invalid mem access \'scalar\'',
      'processed 3 insns (limit 1000000)', '-- END PROG LOAD LOG --', 'p: failed to load BPF programs: Permission denied'].join('\n');
    expect(describeLoaderFailure(4, verifier).reason)
      .toBe("rejected by the kernel verifier: R2 invalid mem access 'scalar' (p: failed to load BPF programs: Permission denied)");
    expect(describeLoaderFailure(5, 'p: attach kprobe tcp_set_state: No such file or directory'))
      .toEqual({ outcome: 'fail', reason: 'attach failed: p: attach kprobe tcp_set_state: No such file or directory' });
    expect(describeLoaderFailure(9, '').reason).toBe('loader exited with code 9');
  });
});
