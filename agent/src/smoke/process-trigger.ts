// The process_activity smoke trigger: a child shell that exists before the loader starts (its
// pid is {pid}, for --pid) and, when fired, runs on the CPU for a while (a counting loop),
// sleeps twice (off the CPU, woken by the timer), forks and execs `sleep` and waits for it, then
// exits. For probes of scheduling, CPU samples, off-CPU time, wakeups, fork/exec/exit.
// /bin/sh only: a busybox userland on a board has it.
import { spawn, type ChildProcess } from 'node:child_process';
import type { SmokeVars } from '@bpfleet/proto';
import type { SmokeTrigger } from './triggers.js';

const SCRIPT = 'read go; i=0; while [ $i -lt "$1" ]; do i=$((i+1)); done; sleep 0.1; sleep 0.1; exit 0';

export class ProcessActivityTrigger implements SmokeTrigger {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;

  constructor(private readonly opts: { loops?: number; shell?: string; timeoutMs?: number } = {}) {}

  async prepare(): Promise<SmokeVars> {
    const loops = this.opts.loops ?? 20_000;
    const child = spawn(this.opts.shell ?? '/bin/sh', ['-c', SCRIPT, 'bpfleet-smoke', String(loops)], { stdio: ['pipe', 'ignore', 'ignore'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (err) => reject(new Error(`process_activity trigger: cannot start ${this.opts.shell ?? '/bin/sh'}: ${err.message}`)));
    });
    if (child.pid === undefined) throw new Error('process_activity trigger: the child has no pid');
    return { pid: child.pid, loops };
  }

  async fire(): Promise<void> {
    const child = this.child;
    if (child?.stdin === null || child === undefined || this.exited === undefined) throw new Error('process_activity trigger: fire() before prepare()');
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    child.stdin.end('go\n');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([this.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)))]);
    clearTimeout(timer);
    if (code === 'timeout') throw new Error(`process_activity trigger: the child ${child.pid} did not finish within ${timeoutMs} ms`);
    if (code !== 0) throw new Error(`process_activity trigger: the child exited with ${code}`);
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }
}
