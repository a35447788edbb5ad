import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { KernelCaps, Manifest } from '@bpfleet/proto';
import { whyNotRunnable } from './runnable.js';

const OUT = fileURLToPath(new URL('../../../bpf/out', import.meta.url));
const manifestOf = (probe: string, arch = 'x86_64') =>
  JSON.parse(readFileSync(`${OUT}/${arch}/${probe}.manifest.json`, 'utf8')) as Manifest;
const caps = (over: Partial<KernelCaps> = {}): KernelCaps =>
  ({ btf: true, kprobes: true, tracepoints: true, jit: true, bpfSyscall: true, ...over });

describe('whyNotRunnable, with the real manifests', () => {
  it('accepts every built probe on a kernel with everything', () => {
    const probes = readdirSync(`${OUT}/x86_64`).filter((f) => f.endsWith('.manifest.json')).map((f) => f.slice(0, -'.manifest.json'.length));
    expect(probes).toEqual(expect.arrayContaining(['tcpstates', 'skbclone', 'memleak', 'kvmexit', 'xdpdrop', 'profile']));
    for (const p of probes) expect([p, whyNotRunnable(manifestOf(p), caps())]).toEqual([p, undefined]);
  });

  it('leaves uprobes to the loader: memleak passes on tracepoints alone (its --kernel mode), not without them', () => {
    expect(whyNotRunnable(manifestOf('memleak'), caps({ kprobes: false, btf: false }))).toBeUndefined();
    expect(whyNotRunnable(manifestOf('memleak'), caps({ tracepoints: false }))).toMatch(/^memleak cannot run on this kernel \(no tracepoints\): hook group "kmalloc"/);
  });

  it('refuses the kprobe-only skbclone without kprobes, naming the group and the missing capability', () => {
    expect(whyNotRunnable(manifestOf('skbclone', 'arm'), caps({ kprobes: false }))).toBe(
      'skbclone cannot run on this kernel (no kprobes): hook group "clone" can only attach by kprobe (needs kprobes)');
  });

  it('lets a probe with a tracepoint alternative run without kprobes, and not without tracepoints and kprobes', () => {
    expect(whyNotRunnable(manifestOf('tcpstates'), caps({ kprobes: false }))).toBeUndefined();
    expect(whyNotRunnable(manifestOf('tcpbytes'), caps({ kprobes: false, tracepoints: false }))).toBe(
      'tcpbytes cannot run on this kernel (no tracepoints, no kprobes): hook group "send" can only attach by tracepoint ' +
      '(needs tracepoints) or kprobe (needs kprobes) or kretprobe (needs kprobes); hook group "recv" can only attach by ' +
      'tracepoint (needs tracepoints) or kprobe (needs kprobes)');
  });

  it('runs tcpwin by raw_tp without BTF, by tp_btf without tracepoints, and not with neither and no kprobes', () => {
    expect(whyNotRunnable(manifestOf('tcpwin'), caps({ btf: false, kprobes: false }))).toBeUndefined();
    expect(whyNotRunnable(manifestOf('tcpwin'), caps({ tracepoints: false, kprobes: false }))).toBeUndefined();
    expect(whyNotRunnable(manifestOf('tcpwin'), caps({ btf: false, tracepoints: false, kprobes: false })))
      .toMatch(/^tcpwin cannot run on this kernel \(no tracepoints, no BTF, no kprobes\): hook group "sample"/);
  });

  it('runs perf_event and xdp probes (profile, loadmon, xdpdrop) without kprobes, tracepoints or BTF', () => {
    for (const p of ['profile', 'loadmon', 'xdpdrop']) {
      expect(whyNotRunnable(manifestOf(p), caps({ kprobes: false, tracepoints: false, btf: false }))).toBeUndefined();
      expect(whyNotRunnable(manifestOf(p), caps({ bpfSyscall: false }))).toMatch(/bpf\(\) syscall/);
    }
  });

  it('refuses without the bpf() syscall or without reported capabilities', () => {
    expect(whyNotRunnable(manifestOf('tcpstates'), caps({ bpfSyscall: false }))).toMatch(/cannot use the bpf\(\) syscall/);
    expect(whyNotRunnable(manifestOf('tcpstates'), undefined)).toMatch(/reported no kernel capabilities/);
  });
});
