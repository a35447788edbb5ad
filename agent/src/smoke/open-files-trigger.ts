// The open_files smoke trigger: a child /bin/sh ({pid}, started before the loader, for --pid)
// that, when fired, opens /dev/null on fds 3-9 ({files} = 7: the fds every sh can name) and holds
// them until the test ends. The kernel allocates one struct file per open from the same stack,
// kept while the file is open: outstanding allocations for memory probes (memleak --kernel).
import { spawn, type ChildProcess } from 'node:child_process';
import type { SmokeVars } from '@bpfleet/proto';
import { exitOf, killChild, spawned } from './trigger-support.js';
import type { SmokeTrigger } from './triggers.js';

const FDS = [3, 4, 5, 6, 7, 8, 9];
const SCRIPT = `read go; exec ${FDS.map((fd) => `${fd}</dev/null`).join(' ')}; echo held; read stop`;

export class OpenFilesTrigger implements SmokeTrigger {
  private child: ChildProcess | undefined;

  constructor(private readonly opts: { shell?: string; timeoutMs?: number } = {}) {}

  async prepare(): Promise<SmokeVars> {
    const shell = this.opts.shell ?? '/bin/sh';
    const child = (this.child = spawn(shell, ['-c', SCRIPT, 'bpfleet-smoke'], { stdio: ['pipe', 'pipe', 'ignore'] }));
    const pid = await spawned(child, `open_files trigger: ${shell}`);
    return { pid, files: FDS.length };
  }

  async fire(): Promise<void> {
    const child = this.child;
    if (child?.stdin == null || child.stdout === null) throw new Error('open_files trigger: fire() before prepare()');
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    const stdout = child.stdout;
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    const held = new Promise<'held'>((resolve) => stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('held\n')) resolve('held');
    }));
    child.stdin.write('go\n');
    const r = await Promise.race([held, exitOf(child), new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), timeoutMs)))]);
    clearTimeout(timer);
    if (r === 'timeout') throw new Error(`open_files trigger: the child ${child.pid} did not open its files within ${timeoutMs} ms`);
    if (r !== 'held') throw new Error(`open_files trigger: the child ${child.pid} exited (${r}) before holding its files`);
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    // EOF on "read stop": it exits and closes the files; SIGKILL if it does not at once.
    child?.stdin?.end();
    if (child !== undefined) await Promise.race([exitOf(child), new Promise((r) => setTimeout(r, 500))]);
    await killChild(child);
  }
}
