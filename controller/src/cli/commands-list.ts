// Listings: devices, probes, runs, stats.
import type { BuiltProbe } from '../admin/probe-catalog.js';
import type { DeviceRow, PipelineStatsRow, RunRow } from '../store/store.js';
import { str, type Command } from './command.js';
import { formatAgo, formatBytes, renderTable } from './table.js';

export const devicesCommand: Command = {
  name: 'devices',
  summary: 'list enrolled devices',
  help: 'Usage: bpfleet devices [--json]\n\nEvery enrolled device with its labels, board, kernel, whether its agent is connected and over which transport (grpc, mqtt).',
  options: {},
  async run(ctx) {
    const { devices } = await ctx.client().get<{ devices: DeviceRow[] }>('/api/v1/devices');
    if (ctx.values['json']) { ctx.json(devices); return 0; }
    if (!devices.length) { ctx.out('no devices enrolled: create a token with `bpfleet token create` and enroll an agent with it\n'); return 0; }
    const now = ctx.io.now();
    ctx.out(renderTable(devices, [
      { header: 'NAME', value: (d) => d.name },
      { header: 'ID', value: (d) => d.id },
      { header: 'STATE', value: (d) => (d.online ? 'online' : 'offline') },
      { header: 'TRANSPORT', value: (d) => d.transport ?? '-' },
      { header: 'BOARD', value: (d) => String(d.facts['board'] ?? '') || '-' },
      { header: 'ARCH', value: (d) => String(d.facts['arch'] ?? '') || '-' },
      { header: 'KERNEL', value: (d) => String(d.facts['kernelRelease'] ?? d.facts['kernel_release'] ?? '') || '-' },
      { header: 'LAST SEEN', value: (d) => formatAgo(d.lastSeenMs, now) },
      { header: 'LABELS', value: (d) => Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-' },
    ]));
    return 0;
  },
};

export const probesCommand: Command = {
  name: 'probes',
  summary: 'list the probes built on this machine, per architecture',
  help: 'Usage: bpfleet probes [--json]\n\nThe probes the controller can deploy (bpf/out/<arch>/), with version, kind and loader sizes.',
  options: {},
  async run(ctx) {
    const { probes } = await ctx.client().get<{ probes: BuiltProbe[] }>('/api/v1/probes');
    if (ctx.values['json']) { ctx.json(probes); return 0; }
    if (!probes.length) { ctx.out('no probes built: run `make -C bpf all-arches`\n'); return 0; }
    ctx.out(renderTable(probes, [
      { header: 'PROBE', value: (p) => p.probe },
      { header: 'VERSION', value: (p) => p.version },
      { header: 'KIND', value: (p) => p.kind },
      { header: 'ARCHES', value: (p) => p.builds.map((b) => `${b.arch} (${formatBytes(b.loaderBytes)})`).join(', ') },
      { header: 'SUMMARY', value: (p) => p.summary },
    ]));
    return 0;
  },
};

export const runsCommand: Command = {
  name: 'runs',
  summary: 'list probe runs (the run ids `bpfleet stop` takes)',
  help: 'Usage: bpfleet runs [--device D] [--probe P] [--state running|stopped|crashed|failed|starting] [--json]',
  options: { device: { type: 'string' }, probe: { type: 'string' }, state: { type: 'string' } },
  async run(ctx) {
    const [{ runs }, { devices }] = await Promise.all([
      ctx.client().get<{ runs: RunRow[] }>('/api/v1/runs', { device: str(ctx.values, 'device'), probe: str(ctx.values, 'probe'), state: str(ctx.values, 'state') }),
      ctx.client().get<{ devices: DeviceRow[] }>('/api/v1/devices'),
    ]);
    if (ctx.values['json']) { ctx.json(runs); return 0; }
    if (!runs.length) { ctx.out('no runs\n'); return 0; }
    const names = new Map(devices.map((d) => [d.id, d.name]));
    const now = ctx.io.now();
    ctx.out(renderTable(runs, [
      { header: 'RUN', value: (r) => r.runId },
      { header: 'DEVICE', value: (r) => names.get(r.deviceId) ?? r.deviceId },
      { header: 'PROBE', value: (r) => r.probe },
      { header: 'STATE', value: (r) => r.state },
      { header: 'RESTARTS', value: (r) => r.restarts },
      { header: 'UPDATED', value: (r) => formatAgo(r.updatedAtMs, now) },
      { header: 'ARGS', value: (r) => r.args.join(' ') || '-' },
      { header: 'REASON', value: (r) => r.reason || '-' },
    ]));
    return 0;
  },
};

type StatsRow = { [K in keyof PipelineStatsRow]: PipelineStatsRow[K] extends bigint | null ? string | null : PipelineStatsRow[K] } & { probe: string };

export const statsCommand: Command = {
  name: 'stats',
  summary: 'records lost per pipeline stage, per stream',
  help: `Usage: bpfleet stats [--device D] [--probe P] [--json]

Per stream, from the kernel to the store: records the loader WROTE, records STORED, and what each
stage lost: ring buffer full and map full (kernel), LOADER lost, agent QUEUE dropped, SPOOL
evicted and corrupt, and the store's GAPS (open: may still arrive; lost: will not). DUP (replays
dropped) and SAMPLED (rate-limited on purpose) are not losses. Agent counters are as of the last
sample the agent sent.`,
  options: { device: { type: 'string' }, probe: { type: 'string' } },
  async run(ctx) {
    const [{ streams }, { devices }] = await Promise.all([
      ctx.client().get<{ streams: StatsRow[] }>('/api/v1/stats', { device: str(ctx.values, 'device'), probe: str(ctx.values, 'probe') }),
      ctx.client().get<{ devices: DeviceRow[] }>('/api/v1/devices'),
    ]);
    if (ctx.values['json']) { ctx.json(streams); return 0; }
    if (!streams.length) { ctx.out('no streams yet\n'); return 0; }
    const names = new Map(devices.map((d) => [d.id, d.name]));
    const n = (s: string | null) => (s === null ? null : BigInt(s));
    ctx.out(renderTable(streams, [
      { header: 'DEVICE', value: (s) => names.get(s.deviceId) ?? s.deviceId },
      { header: 'PROBE', value: (s) => s.probe },
      { header: 'RUN', value: (s) => s.streamId.split('/')[2] ?? s.streamId },
      { header: 'WROTE', value: (s) => (s.sampleUnixNs === null ? null : n(s.records)) },
      { header: 'STORED', value: (s) => s.storedRecords },
      { header: 'RINGBUF FULL', value: (s) => n(s.kernelRingbufFull) },
      { header: 'MAP FULL', value: (s) => n(s.kernelMapFull) },
      { header: 'LOADER', value: (s) => n(s.loaderLost) },
      { header: 'QUEUE', value: (s) => n(s.agentQueueDropped) },
      { header: 'EVICTED', value: (s) => n(s.spoolEvicted) },
      { header: 'CORRUPT', value: (s) => n(s.spoolCorrupt) },
      { header: 'GAPS OPEN', value: (s) => s.openGapRecords },
      { header: 'GAPS LOST', value: (s) => s.gapRecords - s.openGapRecords },
      { header: 'REJECTED', value: (s) => s.rejectedRecords },
      { header: 'DUP', value: (s) => s.duplicateRecords },
      { header: 'SAMPLED', value: (s) => n(s.kernelSampledOut) },
    ]));
    return 0;
  },
};
