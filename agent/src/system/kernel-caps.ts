// What the running kernel offers to eBPF (KernelCaps). Evidence is gathered from files by
// readKernelCaps; the verdicts are pure so fixtures can test them.
import type { KernelCaps } from '@bpfleet/proto';
import { mountPoints } from './proc-parsers.js';

export interface KernelEvidence {
  /** /sys/kernel/btf/vmlinux exists. */
  btfVmlinux: boolean;
  /** /sys/bus/event_source/devices/kprobe exists (perf kprobe PMU, what libbpf uses first). */
  kprobePmu: boolean;
  /** <tracefs>/kprobe_events exists (legacy kprobe attach). */
  kprobeEvents: boolean;
  /** Entries in <tracefs>/events; undefined when no tracefs is mounted. */
  tracingEvents?: readonly string[];
  /** /proc/sys/net/core/bpf_jit_enable, undefined if absent. */
  jitEnable?: string;
  /** /proc/sys/kernel/unprivileged_bpf_disabled exists: the kernel has CONFIG_BPF_SYSCALL. */
  bpfSysctl: boolean;
  /** CapEff of this process. */
  capEff?: bigint;
  euid?: number;
}

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

const has = (mask: bigint, cap: bigint): boolean => ((mask >> cap) & 1n) === 1n;

/** CapEff from /proc/self/status. */
export function parseCapEff(status: string): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
  return m?.[1] === undefined ? undefined : BigInt(`0x${m[1]}`);
}

/**
 * Where tracefs is: its own mount (/sys/kernel/tracing), else debugfs's tracing directory
 * (older kernels). Undefined when neither is mounted; the agent reports, it does not mount.
 */
export function tracingDir(mounts: string): string | undefined {
  const tfs = mountPoints(mounts, 'tracefs');
  if (tfs.length > 0) return tfs.includes('/sys/kernel/tracing') ? '/sys/kernel/tracing' : tfs[0];
  const dbg = mountPoints(mounts, 'debugfs')[0];
  return dbg === undefined ? undefined : `${dbg}/tracing`;
}

/**
 * Tracing programs need CAP_SYS_ADMIN, or CAP_BPF + CAP_PERFMON (5.8+). Without loading a
 * program this is the closest check that bpf() will work for the loaders the agent starts.
 */
export function canLoadBpf(e: Pick<KernelEvidence, 'bpfSysctl' | 'capEff' | 'euid'>): boolean {
  if (!e.bpfSysctl) return false;
  if (e.capEff === undefined) return e.euid === 0;
  return has(e.capEff, CAP_SYS_ADMIN) || (has(e.capEff, CAP_BPF) && has(e.capEff, CAP_PERFMON));
}

export function kernelCapsFrom(e: KernelEvidence): KernelCaps {
  return {
    btf: e.btfVmlinux,
    kprobes: e.kprobePmu || e.kprobeEvents,
    tracepoints: (e.tracingEvents?.length ?? 0) > 0,
    // 1 = on, 2 = on with debug output; absent = no JIT built in.
    jit: e.jitEnable !== undefined && ['1', '2'].includes(e.jitEnable.trim()),
    bpfSyscall: canLoadBpf(e),
  };
}
