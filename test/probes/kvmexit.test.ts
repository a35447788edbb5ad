import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import {
  buildCProgram,
  fixturesBinDir,
  fixturesDir,
  kernelFeatures,
  probeBinary,
  requireKernelFeature,
  requireRoot,
  runProbe,
  type JsonEvent,
} from '../lib/index.js';
import { loadManifest, sumField } from './support.js';

const execFileP = promisify(execFile);

/**
 * Hardware-assisted virtualization on this host (VMX or SVM in the CPU flags): then KVM's
 * kvm_exit fires for every exit. Without it (a host that is itself a VM without nested
 * virtualization, running KVM's software vCPU such as PVM) guest code is emulated and only
 * exits to the VMM (kvm_userspace_exit) exist.
 */
const hwVirt = /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));

/** Port-I/O writes per round of the guest's loop (then one HLT). */
const OUTS_PER_ROUND = 1000;

/**
 * A boot sector (BIOS loads it at 0:7c00, real mode) that loops forever:
 *   start: mov cx, 1000        B9 E8 03
 *   again: out 0x80, al        E6 80      -> an I/O exit (VMX IO_INSTRUCTION, SVM IOIO)
 *          loop again          E2 FC
 *          sti                 FB
 *          hlt                 F4         -> an HLT exit; the BIOS's PIT tick (18.2 Hz) wakes it
 *          jmp start           EB F5
 */
function bootSector(): Buffer {
  const code = [0xb9, OUTS_PER_ROUND & 0xff, OUTS_PER_ROUND >> 8, 0xe6, 0x80, 0xe2, 0xfc, 0xfb, 0xf4, 0xeb, 0xf5];
  const b = Buffer.alloc(512);
  Buffer.from(code).copy(b);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

function requireKvm(): void {
  requireKernelFeature('/dev/kvm', () => existsSync('/dev/kvm') || '/dev/kvm is missing (no KVM: load kvm_intel or kvm_amd)');
  requireKernelFeature('tracepoint kvm/kvm_exit', kernelFeatures.tracepoint('kvm', 'kvm_exit'));
  requireKernelFeature('tracepoint kvm/kvm_entry', kernelFeatures.tracepoint('kvm', 'kvm_entry'));
  requireKernelFeature('tracepoint kvm/kvm_userspace_exit', kernelFeatures.tracepoint('kvm', 'kvm_userspace_exit'));
  requireKernelFeature('tracepoint syscalls/sys_enter_ioctl', kernelFeatures.tracepoint('syscalls', 'sys_enter_ioctl'));
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('needs qemu-system-x86_64 (apt-get install qemu-system-x86; toolchains/setup.sh installs it)');
  }
}

describe('kvmexit', () => {
  let tmp: string;
  let qemu: ChildProcess | undefined;

  beforeAll(() => {
    requireRoot();
    requireKvm();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kvmexit-'));
  });

  afterAll(() => {
    if (qemu?.pid && qemu.exitCode === null) qemu.kill('SIGKILL');
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('--manifest and --describe: four tracepoint hooks, a record per VM, vCPU and reason', () => {
    const m = JSON.parse(execFileSync(probeBinary('kvmexit'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('kvmexit'));
    expect(m.kind).toBe('interval');
    expect(m.record).toMatchObject({ name: 'kvmexit_event', size: 104 });
    expect(m.hooks).toEqual([
      { group: 'exit', program: 'kvmexit_exit', kind: 'tracepoint', target: 'kvm/kvm_exit' },
      { group: 'entry', program: 'kvmexit_entry', kind: 'tracepoint', target: 'kvm/kvm_entry' },
      { group: 'userspace', program: 'kvmexit_user', kind: 'tracepoint', target: 'kvm/kvm_userspace_exit' },
      { group: 'run', program: 'kvmexit_run', kind: 'tracepoint', target: 'syscalls/sys_enter_ioctl' },
    ]);
    const d = JSON.parse(execFileSync(probeBinary('kvmexit'), ['--describe']).toString());
    expect(d.hooks.every((h: { available: boolean; selected: boolean }) => h.available && h.selected)).toBe(true);
  });

  it('a KVM_RUN loop of a known guest: exactly its I/O and HLT exits to the VMM, per vCPU thread', async () => {
    const gen = await buildCProgram(path.join(fixturesDir, 'kvmguest.c'), path.join(fixturesBinDir, 'kvmguest'));
    const run = runProbe('kvmexit', ['--json', '--comm', 'kvmguest', '--interval', '300'], { waitReady: true });
    await run.ready;
    const [R, K] = [25, 400];
    const g = JSON.parse((await execFileP(gen, [String(R), String(K)], { timeout: 30_000 })).stdout) as { pid: number; io: number; hlt: number; other: number };
    expect(g).toMatchObject({ io: R * K, hlt: R, other: 0 });
    await new Promise((r) => setTimeout(r, 700));
    const res = await run.stop();
    expect(res.code).toBe(0);
    const mine = res.events.filter((e) => e.pid === g.pid);
    expect(mine.length).toBe(res.events.length);
    const user = mine.filter((e) => e.isa === 4);
    const of = (name: string) => user.filter((e) => e.reason_name === name);
    expect(sumField(of('USER_IO'), 'count')).toBe(R * K);
    expect(sumField(of('USER_HLT'), 'count')).toBe(R);
    expect(user.every((e) => ['USER_IO', 'USER_HLT'].includes(e.reason_name as string))).toBe(true);
    expect(mine.every((e) => e.tid === g.pid && e.comm === 'kvmguest')).toBe(true);
    // Every exit but the last went back in with KVM_RUN: the VMM's time is measured.
    expect(sumField(of('USER_IO'), 'time_ns')).toBeGreaterThan(0);
    expect(of('USER_IO').at(-1)!.total).toBe(R * K);
    const hw = mine.filter((e) => e.isa !== 4);
    if (hwVirt) {
      // The same port writes and halts, seen as hardware exits (VMX IO_INSTRUCTION / SVM IOIO).
      const io = hw.filter((e) => e.reason_name === 'IO_INSTRUCTION' || e.reason_name === 'IOIO');
      expect(sumField(io, 'count')).toBeGreaterThanOrEqual(R * K);
      expect(sumField(hw.filter((e) => e.reason_name === 'HLT'), 'count')).toBeGreaterThanOrEqual(R);
      expect(new Set(hw.map((e) => e.vcpu))).toEqual(new Set([0]));
    } else {
      expect(hw).toEqual([]);
      console.log('kvmexit: no VMX/SVM on this host: guest code is emulated, kvm_exit never fires; exits to the VMM only');
    }
  });

  it('a QEMU guest (-enable-kvm) looping on out/hlt shows its vCPU thread\'s exits, with time per reason', async () => {
    const img = path.join(tmp, 'boot.img');
    writeFileSync(img, bootSector());
    qemu = spawn(
      'qemu-system-x86_64',
      ['-enable-kvm', '-m', '16', '-smp', '1', '-nodefaults', '-display', 'none', '-no-reboot', '-drive', `file=${img},format=raw,if=ide,index=0`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let qerr = '';
    qemu.stderr!.on('data', (d: Buffer) => (qerr += d.toString()));
    const pid = qemu.pid!;
    const run = runProbe('kvmexit', ['--json', '--pid', String(pid), '--interval', '500'], { waitReady: true });
    await run.ready;
    await new Promise((r) => setTimeout(r, 3000));
    const stillRunning = qemu.exitCode === null;
    const res = await run.stop();
    qemu.kill('SIGKILL');
    expect(stillRunning, `qemu exited early: ${qerr}`).toBe(true);
    expect(res.code).toBe(0);

    const ev = res.events;
    expect(ev.length).toBeGreaterThan(0);
    expect(ev.every((e) => e.pid === pid)).toBe(true);
    const of = (name: string): JsonEvent[] => ev.filter((e) => e.reason_name === name);
    const per = (n: string) => sumField(of(n), 'time_ns') / sumField(of(n), 'count');
    // The firmware and the boot sector write I/O ports QEMU emulates: exits to the VMM.
    expect(sumField(of('USER_IO'), 'count')).toBeGreaterThan(0);
    expect(sumField(of('USER_IO'), 'time_ns')).toBeGreaterThan(0);
    // One vCPU: all exits come from one thread of QEMU.
    expect(new Set(ev.map((e) => e.tid)).size).toBe(1);
    if (hwVirt) {
      // With hardware virtualization the boot sector runs at once: thousands of port writes
      // and HLTs woken by the firmware's timer tick, as VMX or SVM exits of vCPU 0.
      const hw = ev.filter((e) => e.isa === 1 || e.isa === 2);
      const ioName = hw[0]?.isa === 1 ? 'IO_INSTRUCTION' : 'IOIO';
      expect(sumField(of(ioName), 'count')).toBeGreaterThanOrEqual(OUTS_PER_ROUND);
      expect(sumField(of('HLT'), 'count')).toBeGreaterThanOrEqual(3);
      expect(per('HLT')).toBeGreaterThan(per(ioName));
      expect(new Set(hw.map((e) => e.vcpu))).toEqual(new Set([0]));
    }
    const isa = hwVirt ? 'VMX/SVM' : 'no VMX/SVM: emulated vCPU';
    console.log(
      `kvmexit, 3 s of the QEMU out/hlt guest (${isa}):\n` +
        [...new Set(ev.map((e) => String(e.reason_name)))]
          .map((n) => `  ${n.padEnd(22)} ${String(sumField(of(n), 'count')).padStart(8)} exits  ${(per(n) / 1000).toFixed(1).padStart(9)} us/exit`)
          .join('\n'),
    );
  });
});
