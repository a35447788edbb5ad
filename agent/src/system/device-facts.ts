// DeviceFacts and KernelCaps for Enroll and Hello, measured now (a kernel update changes them).
import os from 'node:os';
import type { DeviceFacts, KernelCaps } from '@bpfleet/proto';
import { detectArch } from './arch.js';
import { HostFiles } from './fs-probe.js';
import { kernelCapsFrom, parseCapEff, tracingDir } from './kernel-caps.js';
import { classifyLibc, type Libc } from './libc.js';
import { countCpuList, memFromMeminfo, parseMeminfo } from './proc-parsers.js';

/**
 * TEST ONLY. BPFLEET_FAKE_ARCH=<arch> makes the agent *report* that architecture to the controller
 * (the facts of Enroll and Hello), while its bundle installer keeps checking bundles against the
 * real one (hostArch()). Integration tests use it to drive a wrong-architecture deploy end to end
 * on one machine: the controller refuses an arch it has no build for, the agent refuses a bundle
 * built for another arch. Never set it on a board: the controller would send it loaders it cannot run.
 */
export const FAKE_ARCH_ENV = 'BPFLEET_FAKE_ARCH';

/** The architecture loaders must be built for on this machine (never the test override). */
export function hostArch(): string {
  return detectArch(process.arch, os.machine());
}

/** What the agent reports as its architecture: hostArch(), unless the test-only override is set. */
export function reportedArch(env: NodeJS.ProcessEnv = process.env): string {
  const fake = env[FAKE_ARCH_ENV];
  return fake !== undefined && fake !== '' ? fake : hostArch();
}

export interface DetectOptions {
  /** Board profile name (dayu200, hi3516dv300, ...): configured, not detectable. */
  board?: string;
  /** Filesystem root for /proc, /sys, /lib (tests). */
  files?: HostFiles;
}

export async function readKernelCaps(files = new HostFiles()): Promise<KernelCaps> {
  const tracing = tracingDir((await files.text('/proc/mounts')) ?? '');
  const status = await files.text('/proc/self/status');
  const capEff = status === undefined ? undefined : parseCapEff(status);
  const euid = process.geteuid?.();
  const tracingEvents = tracing === undefined ? undefined : await files.list(`${tracing}/events`);
  return kernelCapsFrom({
    btfVmlinux: await files.exists('/sys/kernel/btf/vmlinux'),
    kprobePmu: await files.exists('/sys/bus/event_source/devices/kprobe'),
    kprobeEvents: tracing !== undefined && (await files.exists(`${tracing}/kprobe_events`)),
    bpfSysctl: await files.exists('/proc/sys/kernel/unprivileged_bpf_disabled'),
    ...(tracingEvents !== undefined ? { tracingEvents } : {}),
    ...(capEff !== undefined ? { capEff } : {}),
    ...(euid !== undefined ? { euid } : {}),
    ...(await files.text('/proc/sys/net/core/bpf_jit_enable').then((j) => (j !== undefined ? { jitEnable: j } : {}))),
  });
}

export async function detectLibc(files = new HostFiles()): Promise<Libc> {
  const report = process.report?.getReport() as
    | { header?: { glibcVersionRuntime?: string }; sharedObjects?: string[] }
    | undefined;
  const glibc = report?.header?.glibcVersionRuntime;
  return classifyLibc({
    ...(glibc !== undefined ? { glibcVersionRuntime: glibc } : {}),
    sharedObjects: report?.sharedObjects ?? [],
    libEntries: (await files.list('/lib')) ?? [],
    androidLinker: await files.exists('/system/bin/linker'),
  });
}

export async function detectDeviceFacts(opts: DetectOptions = {}): Promise<DeviceFacts> {
  const files = opts.files ?? new HostFiles();
  const meminfo = await files.text('/proc/meminfo');
  const online = await files.text('/sys/devices/system/cpu/online');
  return {
    board: opts.board ?? '',
    arch: reportedArch(),
    kernelRelease: os.release(),
    libc: await detectLibc(files),
    caps: await readKernelCaps(files),
    memoryBytes: meminfo !== undefined ? memFromMeminfo(parseMeminfo(meminfo)).totalBytes : BigInt(os.totalmem()),
    cpus: online !== undefined ? countCpuList(online) : os.cpus().length,
    hostname: os.hostname(),
  };
}
