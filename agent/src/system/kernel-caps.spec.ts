import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HostFiles } from './fs-probe.js';
import { readKernelCaps } from './device-facts.js';
import { canLoadBpf, kernelCapsFrom, parseCapEff, tracingDir } from './kernel-caps.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

describe('kernel capabilities from evidence', () => {
  it('armv7 Hi3516DV300: no BTF, no kprobes, tracepoints through debugfs, JIT on', async () => {
    const caps = await readKernelCaps(new HostFiles(path.join(fixtures, 'armv7-hi3516dv300')));
    expect(caps).toEqual({ btf: false, kprobes: false, tracepoints: true, jit: true, bpfSyscall: true });
  });

  it('arm64 RK3568: BTF, kprobe PMU, tracefs; CAP_BPF + CAP_PERFMON without root is enough', async () => {
    const caps = await readKernelCaps(new HostFiles(path.join(fixtures, 'arm64-rk3568')));
    expect(caps).toEqual({ btf: true, kprobes: true, tracepoints: true, jit: true, bpfSyscall: true });
  });

  it('prefers tracefs over debugfs/tracing and reports no tracing when neither is mounted', () => {
    const both = 'debugfs /sys/kernel/debug debugfs rw 0 0\ntracefs /sys/kernel/tracing tracefs rw 0 0\n';
    expect(tracingDir(both)).toBe('/sys/kernel/tracing');
    expect(tracingDir('debugfs /sys/kernel/debug debugfs rw 0 0\n')).toBe('/sys/kernel/debug/tracing');
    expect(tracingDir('proc /proc proc rw 0 0\n')).toBeUndefined();
    expect(kernelCapsFrom({ btfVmlinux: false, kprobePmu: false, kprobeEvents: false, bpfSysctl: true }).tracepoints).toBe(false);
  });

  it('JIT: 0 is off, 2 (debug) is on, a missing sysctl is off', () => {
    const base = { btfVmlinux: true, kprobePmu: false, kprobeEvents: false, bpfSysctl: true };
    expect(kernelCapsFrom({ ...base, jitEnable: '0\n' }).jit).toBe(false);
    expect(kernelCapsFrom({ ...base, jitEnable: '2\n' }).jit).toBe(true);
    expect(kernelCapsFrom(base).jit).toBe(false);
  });

  it('bpf(): needs CONFIG_BPF_SYSCALL and CAP_SYS_ADMIN or CAP_BPF + CAP_PERFMON', () => {
    expect(parseCapEff('CapEff:\t000001fffeffffff\n')).toBe(0x1fffeffffffn);
    expect(canLoadBpf({ bpfSysctl: true, capEff: 1n << 21n })).toBe(true);
    expect(canLoadBpf({ bpfSysctl: true, capEff: 1n << 39n })).toBe(false); // CAP_BPF alone: no tracing
    expect(canLoadBpf({ bpfSysctl: true, capEff: 0n, euid: 0 })).toBe(false); // unprivileged container root
    expect(canLoadBpf({ bpfSysctl: false, capEff: 1n << 21n })).toBe(false);
  });
});
