// The ping_loopback smoke trigger: `ping -c {packets}` to {addr}, a 127/8 address of its own
// (loopback-addr.ts), so the echo requests cross lo and nothing else on the device asks for
// {addr}. Node has no raw sockets: the device's ping (busybox or iputils) sends them.
import { spawn, type ChildProcess } from 'node:child_process';
import type { SmokeVars } from '@bpfleet/proto';
import { randomLoopbackAddr } from './loopback-addr.js';
import { exitOf, findExecutable, killChild, SmokeUnsupportedError, spawned } from './trigger-support.js';
import type { SmokeTrigger } from './triggers.js';

export class PingLoopbackTrigger implements SmokeTrigger {
  private ping: string | undefined;
  private addr = '';
  private child: ChildProcess | undefined;

  constructor(private readonly opts: { packets?: number; addr?: string; ping?: string; pathEnv?: string } = {}) {}

  private get packets(): number {
    return this.opts.packets ?? 2;
  }

  async prepare(): Promise<SmokeVars> {
    this.ping = this.opts.ping ?? findExecutable('ping', this.opts.pathEnv);
    if (this.ping === undefined) throw new SmokeUnsupportedError('ping_loopback trigger: no ping in PATH to send ICMP echo requests');
    this.addr = this.opts.addr ?? randomLoopbackAddr();
    return { addr: this.addr, packets: this.packets };
  }

  async fire(): Promise<void> {
    if (this.ping === undefined) throw new Error('ping_loopback trigger: fire() before prepare()');
    // -w: a deadline in seconds in iputils and busybox alike, so a lost reply cannot hang it.
    const child = (this.child = spawn(this.ping, ['-c', String(this.packets), '-w', '5', this.addr], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    await spawned(child, this.ping);
    const code = await exitOf(child);
    // Loopback always answers (the kernel, or a probe in its place): a missing reply is a failure,
    // e.g. an XDP program that counts echoes but does not send the replies back.
    if (code !== 0) {
      throw new Error(`ping_loopback trigger: ${this.ping} -c ${this.packets} ${this.addr} exited ${code}` +
        `${code === 1 ? ' (replies missing)' : ''}${err.trim() ? `: ${err.trim()}` : ''}`);
    }
  }

  async close(): Promise<void> {
    await killChild(this.child);
    this.child = undefined;
  }
}
