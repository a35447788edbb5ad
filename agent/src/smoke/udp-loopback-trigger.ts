// The udp_loopback smoke trigger: {packets} UDP datagrams of {bytes} bytes from {addr} (a 127/8
// address of its own, loopback-addr.ts) to a socket on 127.0.0.1:{port}, all on lo. For packet
// filters: a rule on {addr} matches these packets and nothing else on the device.
import { createSocket, type Socket } from 'node:dgram';
import type { SmokeVars } from '@bpfleet/proto';
import { randomLoopbackAddr } from './loopback-addr.js';
import type { SmokeTrigger } from './triggers.js';

export class UdpLoopbackTrigger implements SmokeTrigger {
  private receiver: Socket | undefined;
  private sender: Socket | undefined;
  private addr = '';
  private port = 0;
  /** Datagrams the receiver got: 0 when a filter dropped them all. */
  received = 0;

  constructor(private readonly opts: { packets?: number; bytes?: number; addr?: string } = {}) {}

  private bind(s: Socket, addr: string): Promise<void> {
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, addr, () => {
        s.off('error', reject);
        resolve();
      });
    });
  }

  async prepare(): Promise<SmokeVars> {
    this.addr = this.opts.addr ?? randomLoopbackAddr();
    const receiver = (this.receiver = createSocket('udp4'));
    receiver.on('message', () => this.received++);
    await this.bind(receiver, '127.0.0.1');
    this.port = receiver.address().port;
    const sender = (this.sender = createSocket('udp4'));
    try {
      await this.bind(sender, this.addr);
    } catch (err) {
      throw new Error(`udp_loopback trigger: cannot bind to ${this.addr} (lo without 127.0.0.0/8?): ${(err as Error).message}`, { cause: err });
    }
    return { addr: this.addr, port: this.port, pid: process.pid, packets: this.opts.packets ?? 5, bytes: this.opts.bytes ?? 64 };
  }

  async fire(): Promise<void> {
    const sender = this.sender;
    if (sender === undefined) throw new Error('udp_loopback trigger: fire() before prepare()');
    const payload = Buffer.alloc(this.opts.bytes ?? 64, 0x5a);
    for (let i = 0; i < (this.opts.packets ?? 5); i++) {
      await new Promise<void>((resolve, reject) =>
        sender.send(payload, this.port, '127.0.0.1', (err) => (err ? reject(new Error(`udp_loopback trigger: send from ${this.addr} failed: ${err.message}`)) : resolve())));
    }
  }

  async close(): Promise<void> {
    for (const s of [this.sender, this.receiver]) if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
    this.sender = this.receiver = undefined;
  }
}
