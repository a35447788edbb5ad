import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HostFiles } from './fs-probe.js';
import { SystemMetricsSampler, metricsFrom } from './system-metrics.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

describe('system metrics', () => {
  it('armv7 fixture: one sample from the /proc texts and the agent usage', async () => {
    const s = new SystemMetricsSampler(new HostFiles(path.join(fixtures, 'armv7-hi3516dv300')));
    const m = await s.sample();
    expect(m.cpuBusy).toBeCloseTo(18798 / 432346, 10); // first sample: since boot
    expect(m).toMatchObject({
      load1: 0.52,
      load5: 0.31,
      load15: 0.2,
      memAvailableBytes: 389004n * 1024n,
      memTotalBytes: 498132n * 1024n,
      netRxBytes: 4838261n,
      netTxBytes: 1203888n,
    });
    expect(m.agentRssBytes).toBeGreaterThan(0n);
    expect(m.agentCpuNs).toBeGreaterThan(0n);
    // Same texts again: no CPU time passed.
    expect((await s.sample()).cpuBusy).toBe(0);
  });

  it('cpu busy is measured since the previous sample', () => {
    const texts = {
      loadavg: '0 0 0 1/1 1\n',
      meminfo: 'MemTotal: 4 kB\nMemAvailable: 2 kB\n',
      netDev: '',
    };
    const first = metricsFrom({ ...texts, stat: 'cpu  100 0 0 900 0 0 0 0 0 0\n' }, undefined, { cpuMicros: 5, rssBytes: 1 });
    const second = metricsFrom({ ...texts, stat: 'cpu  190 0 0 910 0 0 0 0 0 0\n' }, first.cpu, { cpuMicros: 5, rssBytes: 1 });
    expect(first.metrics.cpuBusy).toBeCloseTo(0.1, 10);
    expect(second.metrics.cpuBusy).toBeCloseTo(0.9, 10);
    expect(second.metrics.agentCpuNs).toBe(5000n);
  });

  it('samples this host', async () => {
    const s = new SystemMetricsSampler();
    await s.sample();
    await new Promise((r) => setTimeout(r, 50));
    const m = await s.sample();
    expect(m.cpuBusy).toBeGreaterThanOrEqual(0);
    expect(m.cpuBusy).toBeLessThanOrEqual(1);
    expect(m.memTotalBytes).toBe(BigInt(os.totalmem()));
    expect(m.memAvailableBytes).toBeLessThanOrEqual(m.memTotalBytes);
  });
});
