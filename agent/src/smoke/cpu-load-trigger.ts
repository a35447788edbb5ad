// The cpu_load smoke trigger: a child /bin/sh ({pid}, started before the loader, for --pid) that,
// when fired, loops opening /proc/<agent pid>/stat (busy, mostly in the kernel: open, procfs lookup,
// close; ~85% system time here) until the 1-minute load average is above 0 and for {hold_ms} more,
// then is killed. The kernel recomputes the load every 5 s, so on an idle device that takes up to
// ~5 s; a probe that samples only above a load threshold (loadmon --threshold 0) is armed then.
// The loop ends by itself once the agent is gone (the open fails), so an agent killed meanwhile
// leaves no busy process behind; sh builtins only, as on a busybox board.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { SmokeVars } from '@bpfleet/proto';
import { exitOf, killChild, spawned } from './trigger-support.js';
import type { SmokeTrigger } from './triggers.js';

/** What the child runs, $1 the agent's pid ($PPID would be 1 had the agent gone before sh started). For the spec too. */
export const CPU_LOAD_SCRIPT = 'read go; while : </proc/$1/stat; do :; done 2>/dev/null';

function load1(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ', 1)[0]);
}

export class CpuLoadTrigger implements SmokeTrigger {
  private child: ChildProcess | undefined;

  constructor(private readonly opts: { holdMs?: number; maxMs?: number; shell?: string; readLoad?: () => number } = {}) {}

  async prepare(): Promise<SmokeVars> {
    const shell = this.opts.shell ?? '/bin/sh';
    const child = (this.child = spawn(shell, ['-c', CPU_LOAD_SCRIPT, 'bpfleet-smoke', String(process.pid)], { stdio: ['pipe', 'ignore', 'ignore'] }));
    const pid = await spawned(child, `cpu_load trigger: ${shell}`);
    return { pid, hold_ms: this.opts.holdMs ?? 1000 };
  }

  async fire(): Promise<void> {
    const child = this.child;
    if (child?.stdin == null) throw new Error('cpu_load trigger: fire() before prepare()');
    const holdMs = this.opts.holdMs ?? 1000;
    const maxMs = this.opts.maxMs ?? 8000;
    const readLoad = this.opts.readLoad ?? load1;
    const t0 = Date.now();
    let loadedAt: number | undefined;
    let load: number;
    child.stdin.end('go\n');
    const exited = exitOf(child);
    for (;;) {
      const now = Date.now();
      load = readLoad();
      if (load > 0) loadedAt ??= now;
      if ((loadedAt !== undefined && now - loadedAt >= holdMs) || now - t0 >= maxMs) break;
      const code = await Promise.race([exited, new Promise<'busy'>((r) => setTimeout(() => r('busy'), 100))]);
      if (code !== 'busy') throw new Error(`cpu_load trigger: the busy child ${child.pid} ended (exit ${code}) before the load rose`);
    }
    await killChild(child);
    if (loadedAt === undefined) throw new Error(`cpu_load trigger: the 1-minute load stayed at ${load} during ${maxMs} ms of a busy child`);
  }

  async close(): Promise<void> {
    await killChild(this.child);
    this.child = undefined;
  }
}
