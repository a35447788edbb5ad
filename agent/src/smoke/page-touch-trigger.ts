// The page_touch smoke trigger: the agent process ({pid}) maps fresh memory ({bytes}, default
// 8 MiB, outside the V8 heap) and writes one byte per page ({pages} page faults at least), then
// lets it go. For probes of page faults and memory allocation.
import type { SmokeVars } from '@bpfleet/proto';
import type { SmokeTrigger } from './triggers.js';

const PAGE = 4096;

export class PageTouchTrigger implements SmokeTrigger {
  constructor(private readonly bytes = 8 << 20) {}

  async prepare(): Promise<SmokeVars> {
    return { pid: process.pid, bytes: this.bytes, pages: Math.floor(this.bytes / PAGE) };
  }

  async fire(): Promise<void> {
    // allocUnsafeSlow: its own allocation (large ones are fresh mmap'd pages), not the pool.
    const buf = Buffer.allocUnsafeSlow(this.bytes);
    for (let i = 0; i < buf.length; i += PAGE) buf[i] = 1;
  }

  async close(): Promise<void> {
    // Nothing held: the buffer is garbage once fire() returns.
  }
}
