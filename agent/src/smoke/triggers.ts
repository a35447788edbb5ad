// The smoke triggers the agent knows, by the name a manifest's smoke entry gives
// (bpf/README.md, "Smoke tests"). A new kind of probe that needs another kind of activity on the
// device gets a new trigger here and names it in its loader's probe_smoke.
import type { SmokeVars } from '@bpfleet/proto';
import { CpuLoadTrigger } from './cpu-load-trigger.js';
import { KvmGuestTrigger } from './kvm-guest-trigger.js';
import { OpenFilesTrigger } from './open-files-trigger.js';
import { PageTouchTrigger } from './page-touch-trigger.js';
import { PingLoopbackTrigger } from './ping-loopback-trigger.js';
import { ProcessActivityTrigger } from './process-trigger.js';
import { TcpLoopbackTrigger } from './tcp-loopback-trigger.js';
import { UdpLoopbackTrigger } from './udp-loopback-trigger.js';

export interface SmokeTrigger {
  /**
   * Readies what the loader's filter needs (a port, a process) and returns the placeholder values.
   * Throws SmokeUnsupportedError when the device cannot make the activity at all.
   */
  prepare(): Promise<SmokeVars>;
  /** Makes the probe fire; resolves once the activity is done. */
  fire(): Promise<void>;
  /** Releases everything (idempotent). */
  close(): Promise<void>;
}

const TRIGGERS: Record<string, () => SmokeTrigger> = {
  tcp_loopback: () => new TcpLoopbackTrigger(),
  process_activity: () => new ProcessActivityTrigger(),
  page_touch: () => new PageTouchTrigger(),
  cpu_load: () => new CpuLoadTrigger(),
  open_files: () => new OpenFilesTrigger(),
  ping_loopback: () => new PingLoopbackTrigger(),
  udp_loopback: () => new UdpLoopbackTrigger(),
  kvm_guest: () => new KvmGuestTrigger(),
};

export const KNOWN_TRIGGERS = Object.keys(TRIGGERS);

/** The trigger a manifest names, or undefined when this agent does not know it. */
export function makeTrigger(name: string): SmokeTrigger | undefined {
  return Object.hasOwn(TRIGGERS, name) ? TRIGGERS[name]?.() : undefined;
}
