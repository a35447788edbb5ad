// The kvm_guest smoke trigger: QEMU with KVM, started paused (-S) before the loader ({pid}, for
// --pid); fire() lets it run ("cont" on its monitor), and its firmware starts at once, reading
// and writing I/O ports QEMU emulates: exits to the VMM on every host, hardware-assisted or not.
// The VM has no disk and 16 MiB (vCPU thread "CPU 0/KVM"); it runs until the test ends. A device
// without /dev/kvm, or without a QEMU for its architecture in PATH, cannot make the activity:
// unsupported, saying which.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { SmokeVars } from '@bpfleet/proto';
import { findExecutable, killChild, SmokeUnsupportedError, spawned } from './trigger-support.js';
import type { SmokeTrigger } from './triggers.js';

/** QEMU per Node architecture; only x86_64 runs a guest with no firmware image given. */
const QEMU: Partial<Record<string, string>> = { x64: 'qemu-system-x86_64' };
const PROMPT = '(qemu)';

export class KvmGuestTrigger implements SmokeTrigger {
  private child: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private out = '';
  private err = '';
  private waiters = new Set<() => void>();

  constructor(private readonly opts: { kvmDevice?: string; qemu?: string; arch?: string; timeoutMs?: number } = {}) {}

  /** Resolves once the monitor has printed `count` prompts in all; rejects if QEMU ends first. */
  private prompts(count: number, what: string): Promise<void> {
    const child = this.child;
    if (child === undefined) return Promise.reject(new Error('kvm_guest trigger: fire() before prepare()'));
    const timeoutMs = this.opts.timeoutMs ?? 20_000;
    const seen = (): boolean => this.out.split(PROMPT).length - 1 >= count;
    return new Promise((resolve, reject) => {
      const done = (e?: Error): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (e) reject(e);
        else resolve();
      };
      const check = (): void => {
        if (seen()) done();
        else if (child.exitCode !== null || child.signalCode !== null) {
          done(new Error(`kvm_guest trigger: QEMU exited (${child.exitCode ?? child.signalCode}) ${what}: ${this.err.trim() || 'no message'}`));
        }
      };
      const timer = setTimeout(() => done(new Error(`kvm_guest trigger: QEMU did not answer within ${timeoutMs} ms ${what}`)), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  async prepare(): Promise<SmokeVars> {
    const kvm = this.opts.kvmDevice ?? '/dev/kvm';
    if (!existsSync(kvm)) throw new SmokeUnsupportedError(`kvm_guest trigger: no ${kvm} on this device (no KVM: the kernel lacks it or its module is not loaded)`);
    const arch = this.opts.arch ?? process.arch;
    const name = QEMU[arch];
    if (name === undefined) throw new SmokeUnsupportedError(`kvm_guest trigger: no guest for ${arch} in this agent (x86_64 only)`);
    const qemu = this.opts.qemu ?? findExecutable(name);
    if (qemu === undefined) throw new SmokeUnsupportedError(`kvm_guest trigger: no ${name} in PATH to run a KVM guest`);
    const child = (this.child = spawn(qemu,
      ['-enable-kvm', '-S', '-name', 'bpfleet-smoke,debug-threads=on', '-m', '16', '-smp', '1', '-nodefaults', '-display', 'none',
        '-no-reboot', '-monitor', 'stdio'],
      { stdio: ['pipe', 'pipe', 'pipe'] }));
    const wake = (): void => {
      for (const w of [...this.waiters]) w();
    };
    child.stdout?.on('data', (d: Buffer) => { this.out += d.toString(); wake(); });
    child.stderr?.on('data', (d: Buffer) => { this.err += d.toString(); });
    child.once('exit', wake);
    const pid = await spawned(child, `kvm_guest trigger: ${qemu}`);
    // QEMU outlives a killed agent (EOF on its monitor does not end it): a watchdog sh, reading
    // a pipe only the agent writes, kills it when that pipe closes, however the agent ended.
    const dog = (this.watchdog = spawn('/bin/sh', ['-c', 'read x; kill -9 "$1"', 'bpfleet-smoke-watchdog', String(pid)],
      { stdio: ['pipe', 'ignore', 'ignore'] }));
    await spawned(dog, 'kvm_guest trigger: its watchdog /bin/sh');
    // Gone first, its pid could be reused: the watchdog goes with it.
    child.once('exit', () => void killChild(dog));
    await this.prompts(1, 'at start');
    return { pid };
  }

  async fire(): Promise<void> {
    const child = this.child;
    if (child?.stdin == null) throw new Error('kvm_guest trigger: fire() before prepare()');
    child.stdin.write('cont\n');
    // The next prompt: the monitor has run "cont", the vCPU is in KVM_RUN.
    await this.prompts(2, 'after "cont"');
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    // The watchdog first: it must not kill a pid QEMU no longer owns.
    await killChild(this.watchdog);
    this.watchdog = undefined;
    await killChild(child);
  }
}
