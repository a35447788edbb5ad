import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';

/** Error thrown when the environment cannot run a test (never turned into a skip). */
export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
}

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

/** Effective capability mask of this process, or undefined if /proc is unreadable. */
export function effectiveCapabilities(): bigint | undefined {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
    return m?.[1] === undefined ? undefined : BigInt(`0x${m[1]}`);
  } catch {
    return undefined;
  }
}

function hasCap(mask: bigint, cap: bigint): boolean {
  return ((mask >> cap) & 1n) === 1n;
}

/**
 * Throws unless the process can load eBPF programs for real: it must run as root
 * and hold CAP_SYS_ADMIN, or CAP_BPF + CAP_PERFMON (an unprivileged container's
 * "root" does not).
 */
export function requireRoot(): void {
  const uid = process.geteuid?.();
  if (uid !== 0) {
    throw new EnvironmentError(
      `needs root (run as root: eBPF programs are loaded for real); effective uid is ${uid ?? 'unknown'}`,
    );
  }
  const caps = effectiveCapabilities();
  if (caps !== undefined && !hasCap(caps, CAP_SYS_ADMIN) && !(hasCap(caps, CAP_BPF) && hasCap(caps, CAP_PERFMON))) {
    throw new EnvironmentError(
      `needs root with CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON (eBPF programs are loaded for real); ` +
        `running as uid 0 but CapEff=0x${caps.toString(16)} (unprivileged container?)`,
    );
  }
}

/** A check returns true when the feature is present; false or a string (the reason) when not. */
export type FeatureCheck = () => boolean | string;

/**
 * Throws a clear error when `check` says the kernel feature `name` is missing.
 * A check that throws counts as missing, and its message is included.
 */
export function requireKernelFeature(name: string, check: FeatureCheck | boolean): void {
  let verdict: boolean | string;
  try {
    verdict = typeof check === 'boolean' ? check : check();
  } catch (err) {
    verdict = `check failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (verdict === true) return;
  const why = typeof verdict === 'string' && verdict.length > 0 ? `: ${verdict}` : '';
  throw new EnvironmentError(
    `needs kernel feature "${name}"${why} (kernel ${os.release()}, ${os.arch()}); ` +
      `run on a kernel that has it, this test does not skip`,
  );
}

/** Running kernel version as [major, minor, patch]. */
export function kernelVersion(release: string = os.release()): [number, number, number] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  if (!m) throw new Error(`cannot parse kernel release "${release}"`);
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

/** Ready-made checks for requireKernelFeature. */
export const kernelFeatures = {
  /** Kernel BTF (CO-RE relocations need it). */
  btf: (): boolean | string => existsSync('/sys/kernel/btf/vmlinux') || '/sys/kernel/btf/vmlinux is missing',
  /** bpffs mounted (pinning maps). */
  bpffs: (): boolean | string => {
    const mounts = readFileSync('/proc/mounts', 'utf8');
    return /\sbpf\s/.test(mounts) || 'no bpf filesystem mounted (mount -t bpf bpf /sys/fs/bpf)';
  },
  /** tracefs / debugfs tracing directory (tracepoints, kprobes by name). */
  tracefs: (): boolean | string =>
    existsSync('/sys/kernel/tracing/events') ||
    existsSync('/sys/kernel/debug/tracing/events') ||
    'neither /sys/kernel/tracing nor /sys/kernel/debug/tracing is mounted',
  /** A tracepoint category/name, in tracefs or the debugfs mount of it. */
  tracepoint:
    (category: string, name: string) =>
    (): boolean | string =>
      existsSync(`/sys/kernel/tracing/events/${category}/${name}/id`) ||
      existsSync(`/sys/kernel/debug/tracing/events/${category}/${name}/id`) ||
      `no tracepoint ${category}/${name}`,
  /** kprobes, tested as the loaders test them: a kprobe PMU or kprobe_events in tracefs. */
  kprobes: (): boolean | string =>
    existsSync('/sys/bus/event_source/devices/kprobe/type') ||
    existsSync('/sys/kernel/tracing/kprobe_events') ||
    existsSync('/sys/kernel/debug/tracing/kprobe_events') ||
    'no kprobes (CONFIG_KPROBES / CONFIG_KPROBE_EVENTS)',
  /** Kernel at least major.minor (e.g. ringbuf needs 5.8). */
  atLeast:
    (major: number, minor: number) =>
    (): boolean | string => {
      const [ma, mi] = kernelVersion();
      return ma > major || (ma === major && mi >= minor) || `kernel ${os.release()} is older than ${major}.${minor}`;
    },
  /** BPF ring buffer maps (5.8+). */
  ringbuf: (): boolean | string => kernelFeatures.atLeast(5, 8)(),
} as const;
