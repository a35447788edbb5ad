import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CPU_LOAD_SCRIPT, CpuLoadTrigger } from './cpu-load-trigger.js';
import { KvmGuestTrigger } from './kvm-guest-trigger.js';
import { randomLoopbackAddr } from './loopback-addr.js';
import { PingLoopbackTrigger } from './ping-loopback-trigger.js';
import { findExecutable, SmokeUnsupportedError } from './trigger-support.js';
import { KNOWN_TRIGGERS, makeTrigger } from './triggers.js';
import { UdpLoopbackTrigger } from './udp-loopback-trigger.js';

/** utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15). */
const cpuTicks = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('smoke triggers', () => {
  it('knows the eight triggers of bpf/README.md, nothing else', () => {
    expect(KNOWN_TRIGGERS).toEqual(['tcp_loopback', 'process_activity', 'page_touch', 'cpu_load', 'open_files', 'ping_loopback',
      'udp_loopback', 'kvm_guest']);
    expect(makeTrigger('toString')).toBeUndefined();
    expect(makeTrigger('fork_bomb')).toBeUndefined();
  });

  it('page_touch: this process faults in at least one page per 4 KiB touched', async () => {
    const t = makeTrigger('page_touch')!;
    const vars = await t.prepare();
    expect(vars).toEqual({ pid: process.pid, bytes: 8 << 20, pages: 2048 });
    const minflt = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[7]);
    const before = minflt();
    await t.fire();
    expect(minflt() - before).toBeGreaterThanOrEqual(2048);
    await t.close();
  });

  it('tcp_loopback: a listening port before the loader starts, an echoed exchange when fired, nothing left after close', async () => {
    const t = makeTrigger('tcp_loopback')!;
    const vars = await t.prepare();
    expect(vars).toEqual({ port: expect.any(Number), pid: process.pid, bytes: 4096 });
    await t.fire();
    await t.close();
    const refused = await new Promise<string>((resolve) => {
      const s = connect(Number(vars['port']), '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve('connected'); });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });

  it('process_activity: the child exists (its pid for --pid) before firing and has exited 0 after', async () => {
    const t = makeTrigger('process_activity')!;
    const vars = await t.prepare();
    expect(existsSync(`/proc/${vars['pid']}`)).toBe(true);
    await t.fire();
    expect(existsSync(`/proc/${vars['pid']}`)).toBe(false);
    await t.close();
  });

  it('cpu_load: an idle child (its pid for --pid) that, fired, is busy until the load is above 0 and then holdMs more', async () => {
    let load = 0;
    const t = new CpuLoadTrigger({ holdMs: 400, readLoad: () => load });
    try {
      const { pid } = await t.prepare() as { pid: number };
      await sleep(100);
      const idle = cpuTicks(pid);
      const fired = t.fire();
      await sleep(300);
      const t0 = Date.now();
      load = 0.01;
      await fired;
      expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
      expect(existsSync(`/proc/${pid}`)).toBe(false); // killed when done
      expect(idle).toBeLessThanOrEqual(2); // waiting in read: no CPU to speak of
    } finally {
      await t.close();
    }
  });

  it('cpu_load: the busy child spends its time mostly in the kernel, and a load that stays 0 fails the trigger', async () => {
    const t = new CpuLoadTrigger({ maxMs: 600, readLoad: () => 0 });
    try {
      const { pid } = await t.prepare() as { pid: number };
      const fired = t.fire();
      await sleep(500);
      const [utime, stime] = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').slice(11, 13).map(Number) as [number, number];
      await expect(fired).rejects.toThrow(/the 1-minute load stayed at 0 during 600 ms of a busy child/);
      // Up to 50 ticks (100/s) on an idle CPU; a busy shared host gives it less.
      expect(utime + stime).toBeGreaterThan(0);
      expect(stime).toBeGreaterThanOrEqual(utime);
    } finally {
      await t.close();
    }
  });

  it('cpu_load: the busy loop ends by itself when the agent (its parent) is gone', async () => {
    // A parent sh stands in for the agent: it starts the trigger's script (stdin at EOF: past
    // "read go" at once, busy) and exits. Its output elsewhere: spawnSync reaps the parent only
    // once its stdout is closed, and /proc/PID of an unreaped parent still exists.
    const r = spawnSync('/bin/sh', ['-c', `/bin/sh -c '${CPU_LOAD_SCRIPT}' bpfleet-smoke $$ </dev/null >/dev/null 2>&1 & echo $!`],
      { encoding: 'utf8', timeout: 5000 });
    const pid = Number(r.stdout.trim());
    expect(pid).toBeGreaterThan(0);
    const running = () => existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z';
    try {
      for (let i = 0; i < 30 && running(); i++) await sleep(100);
      expect(running()).toBe(false);
    } finally {
      if (running()) process.kill(pid, 'SIGKILL');
    }
  });

  it('open_files: the child holds /dev/null on fds 3-9 once fired, and is gone after close', async () => {
    const t = makeTrigger('open_files')!;
    const vars = await t.prepare();
    expect(vars).toEqual({ pid: expect.any(Number), files: 7 });
    const fds = () => readdirSync(`/proc/${vars['pid']}/fd`).map(Number).filter((fd) => fd >= 3 && fd <= 9);
    expect(fds()).toEqual([]);
    await t.fire();
    expect(fds().sort()).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(readlinkSync(`/proc/${vars['pid']}/fd/9`)).toBe('/dev/null');
    await t.close();
    expect(existsSync(`/proc/${vars['pid']}`)).toBe(false);
  });

  it('loopback addresses: in 127.64.0.0-127.191.255.255, never a network or broadcast host', () => {
    expect(randomLoopbackAddr(() => 0)).toBe('127.64.0.1');
    expect(randomLoopbackAddr(() => 0.999999)).toBe('127.191.255.254');
    expect(randomLoopbackAddr()).toMatch(/^127\.(6[4-9]|[7-9]\d|1[0-8]\d|19[01])\.\d+\.\d+$/);
  });

  it('udp_loopback: the datagrams from its own 127/8 address reach the port', async () => {
    const t = new UdpLoopbackTrigger({ packets: 3 });
    const vars = await t.prepare();
    expect(vars).toEqual({ addr: expect.stringMatching(/^127\./), port: expect.any(Number), pid: process.pid, packets: 3, bytes: 64 });
    await t.fire();
    for (let i = 0; i < 20 && t.received < 3; i++) await sleep(25);
    expect(t.received).toBe(3);
    await t.close();
    await t.close();
  });

  it('ping_loopback: the kernel answers the pings to its 127/8 address; no ping in PATH is unsupported', async () => {
    const t = makeTrigger('ping_loopback')!;
    const vars = await t.prepare();
    expect(vars).toEqual({ addr: expect.stringMatching(/^127\./), packets: 2 });
    await t.fire();
    await t.close();
    const none = new PingLoopbackTrigger({ pathEnv: '/nonexistent' });
    await expect(none.prepare()).rejects.toThrow(SmokeUnsupportedError);
    await expect(none.prepare()).rejects.toThrow('ping_loopback trigger: no ping in PATH to send ICMP echo requests');
    const failing = new PingLoopbackTrigger({ ping: '/bin/false' });
    await failing.prepare();
    await expect(failing.fire()).rejects.toThrow(/ping_loopback trigger: \/bin\/false -c 2 127\.[\d.]+ exited 1 \(replies missing\)/);
  });

  it('kvm_guest: unsupported without /dev/kvm, without a guest for the architecture, without QEMU', async () => {
    await expect(new KvmGuestTrigger({ kvmDevice: '/nonexistent/kvm' }).prepare())
      .rejects.toThrow(new SmokeUnsupportedError('kvm_guest trigger: no /nonexistent/kvm on this device (no KVM: the kernel lacks it or its module is not loaded)'));
    await expect(new KvmGuestTrigger({ kvmDevice: '/dev/null', arch: 'arm' }).prepare())
      .rejects.toThrow(new SmokeUnsupportedError('kvm_guest trigger: no guest for arm in this agent (x86_64 only)'));
    await expect(new KvmGuestTrigger({ kvmDevice: '/dev/null', arch: 'x64', qemu: '/nonexistent/qemu' }).prepare())
      .rejects.toThrow(/cannot start kvm_guest trigger: \/nonexistent\/qemu: spawn \/nonexistent\/qemu ENOENT/);
  });

  it('kvm_guest on this host: a paused QEMU ({pid}) whose vCPU runs once fired; unsupported here if the host has no KVM or QEMU', async () => {
    const t = makeTrigger('kvm_guest')!;
    if (!existsSync('/dev/kvm') || process.arch !== 'x64' || findExecutable('qemu-system-x86_64') === undefined) {
      await expect(t.prepare()).rejects.toThrow(SmokeUnsupportedError);
      return;
    }
    try {
      const { pid } = await t.prepare() as { pid: number };
      expect(readFileSync(`/proc/${pid}/comm`, 'utf8')).toMatch(/^qemu-system-x86/);
      const vcpu = () => readdirSync(`/proc/${pid}/task`).find((tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').startsWith('CPU 0/KVM'));
      let tid = vcpu();
      for (let i = 0; i < 50 && tid === undefined; i++) tid = (await sleep(100), vcpu()); // made after the monitor's first prompt
      expect(tid, 'QEMU has a vCPU thread').toBeDefined();
      await t.fire();
      await sleep(500);
      expect(readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8')).toBe('CPU 0/KVM\n'); // still running
      await t.close();
      expect(existsSync(`/proc/${pid}`)).toBe(false);
    } finally {
      await t.close();
    }
  }, 30_000);

  it('kvm_guest: QEMU does not outlive the agent: its watchdog kills it when the agent\'s end of the pipe closes', async () => {
    if (!existsSync('/dev/kvm') || process.arch !== 'x64' || findExecutable('qemu-system-x86_64') === undefined) return; // covered above
    const t = new KvmGuestTrigger();
    try {
      const { pid } = await t.prepare() as { pid: number };
      // What the kernel does to the pipe when the agent dies: its write end closes.
      (t as unknown as { watchdog: ChildProcess }).watchdog.stdin!.destroy();
      for (let i = 0; i < 50 && existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'); i++) await sleep(100);
      expect(existsSync(`/proc/${pid}`) ? readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] : 'gone').toMatch(/gone|Z/);
    } finally {
      await t.close();
    }
  }, 30_000);

  it('fire before prepare says so', async () => {
    for (const name of ['tcp_loopback', 'process_activity', 'cpu_load', 'open_files', 'ping_loopback', 'udp_loopback', 'kvm_guest']) {
      await expect(makeTrigger(name)!.fire(), name).rejects.toThrow(/fire\(\) before prepare\(\)/);
    }
  });
});
