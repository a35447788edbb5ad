// SystemMetrics for heartbeats. CPU busy is a difference, so the sampler keeps the previous
// /proc/stat reading; the first sample covers the time since boot.
import type { SystemMetrics } from '@bpfleet/proto';
import { HostFiles } from './fs-probe.js';
import {
  cpuBusyBetween,
  memFromMeminfo,
  parseLoadavg,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
  type CpuTimes,
} from './proc-parsers.js';

export interface ProcTexts {
  stat: string;
  loadavg: string;
  meminfo: string;
  netDev: string;
}

export interface OwnUsage {
  /** process.cpuUsage(): user + system, microseconds. */
  cpuMicros: number;
  rssBytes: number;
}

/** Pure: one SystemMetrics from /proc texts, the previous CPU reading and the agent's usage. */
export function metricsFrom(t: ProcTexts, prevCpu: CpuTimes | undefined, own: OwnUsage): { metrics: SystemMetrics; cpu: CpuTimes } {
  const cpu = parseProcStat(t.stat);
  const load = parseLoadavg(t.loadavg);
  const mem = memFromMeminfo(parseMeminfo(t.meminfo));
  const net = parseNetDev(t.netDev);
  return {
    cpu,
    metrics: {
      cpuBusy: cpuBusyBetween(prevCpu ?? { busy: 0, total: 0 }, cpu),
      load1: load.load1,
      load5: load.load5,
      load15: load.load15,
      memAvailableBytes: mem.availableBytes,
      memTotalBytes: mem.totalBytes,
      agentCpuNs: BigInt(Math.round(own.cpuMicros)) * 1000n,
      agentRssBytes: BigInt(own.rssBytes),
      netRxBytes: net.rxBytes,
      netTxBytes: net.txBytes,
    },
  };
}

export class SystemMetricsSampler {
  private prevCpu: CpuTimes | undefined;

  constructor(private readonly files = new HostFiles()) {}

  async sample(): Promise<SystemMetrics> {
    // Every heartbeat (5 s): sync reads of /proc, not 4 x 4 trips through the libuv pool.
    const read = (p: string): string => {
      const t = this.files.textSync(p);
      if (t === undefined) throw new Error(`cannot read ${this.files.path(p)}`);
      return t;
    };
    const [stat, loadavg, meminfo, netDev] = [read('/proc/stat'), read('/proc/loadavg'), read('/proc/meminfo'), read('/proc/net/dev')];
    const u = process.cpuUsage();
    const { metrics, cpu } = metricsFrom({ stat, loadavg, meminfo, netDev }, this.prevCpu, {
      cpuMicros: u.user + u.system,
      rssBytes: process.memoryUsage.rss(),
    });
    this.prevCpu = cpu;
    return metrics;
  }
}
