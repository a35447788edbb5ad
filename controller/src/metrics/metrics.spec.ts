import { describe, expect, it } from 'vitest';
import type { DeviceRow, PipelineStatsRow } from '../store/store.js';
import { Exposition, escapeLabelValue } from './exposition.js';
import { renderFleetMetrics } from './fleet-metrics.js';

const device = (id: string, name: string): DeviceRow => ({
  id, name, labels: {}, facts: {}, transport: 'grpc', firstSeenMs: 1_000, lastSeenMs: 1_750_000_000_500, online: true,
});

const stats: PipelineStatsRow = {
  streamId: 'd-1/tcpstates/r1', deviceId: 'd-1', sampleUnixNs: 2000n, records: 100n, kernelRingbufFull: 11n,
  kernelMapFull: 2n, kernelSampledOut: 3n, kernelReadFailed: 4n, loaderLost: 5n, agentQueueDropped: 6n,
  spoolEvicted: 7n, spoolCorrupt: 8n, storedRecords: 70, duplicateRecords: 5, gapRecords: 9, openGapRecords: 3,
  rejectedBatches: 1, rejectedRecords: 10,
};

describe('exposition', () => {
  it('escapes label values and help text', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const x = new Exposition();
    x.family('m_total', 'counter', 'Help with \\ and\nnewline.')({ name: 'board "7"\nlab\\3' }, 5n);
    expect(x.toString()).toBe(
      '# HELP m_total Help with \\\\ and\\nnewline.\n# TYPE m_total counter\nm_total{name="board \\"7\\"\\nlab\\\\3"} 5\n');
  });

  it('refuses invalid names', () => {
    expect(() => new Exposition().family('bad-name', 'gauge', '')).toThrow(/invalid metric name/);
    expect(() => new Exposition().family('ok', 'gauge', '')({ 'bad-label': 'x' }, 1)).toThrow(/invalid label name/);
  });

  it('writes a duration\'s quantiles as one gauge family, the max as quantile 1', () => {
    const x = new Exposition();
    x.quantiles('d_seconds', 'A duration.', { p50: 0.25, p99: 1.5, max: 2 });
    expect(x.toString()).toBe('# HELP d_seconds A duration.\n# TYPE d_seconds gauge\n'
      + 'd_seconds{quantile="0.5"} 0.25\nd_seconds{quantile="0.99"} 1.5\nd_seconds{quantile="1"} 2\n');
  });
});

describe('fleet metrics', () => {
  const text = renderFleetMetrics({
    devices: [device('d-1', 'dayu "one"'), device('d-2', 'hi3516')], online: new Set(['d-1']), stats: [stats],
    ingest: { batches: 12, commits: 4 },
  });
  const lines = text.split('\n');

  it('counts devices', () => {
    expect(lines).toContain('bpfleet_devices 2');
    expect(lines).toContain('bpfleet_devices_online 1');
    expect(lines).toContain('bpfleet_device_online{device="d-1",name="dayu \\"one\\""} 1');
    expect(lines).toContain('bpfleet_device_online{device="d-2",name="hi3516"} 0');
    expect(lines).toContain('bpfleet_device_last_seen_seconds{device="d-2",name="hi3516"} 1750000000.5');
  });

  it('exposes each stage loss per stream', () => {
    const l = 'device="d-1",probe="tcpstates",stream="d-1/tcpstates/r1"';
    expect(lines.filter((s) => s.startsWith('bpfleet_records_lost_total'))).toEqual([
      `bpfleet_records_lost_total{${l},stage="kernel",reason="ringbuf_full"} 11`,
      `bpfleet_records_lost_total{${l},stage="kernel",reason="map_full"} 2`,
      `bpfleet_records_lost_total{${l},stage="loader",reason="lost"} 5`,
      `bpfleet_records_lost_total{${l},stage="agent",reason="queue_dropped"} 6`,
      `bpfleet_records_lost_total{${l},stage="spool",reason="evicted"} 7`,
      `bpfleet_records_lost_total{${l},stage="spool",reason="corrupt"} 8`,
    ]);
    expect(lines).toContain(`bpfleet_loader_records_total{${l}} 100`);
    expect(lines).toContain(`bpfleet_store_records_total{${l}} 70`);
    expect(lines).toContain(`bpfleet_store_duplicate_records_total{${l}} 5`);
    expect(lines).toContain(`bpfleet_store_gap_records{${l},state="open"} 3`);
    expect(lines).toContain(`bpfleet_store_gap_records{${l},state="lost"} 6`);
    expect(lines).toContain(`bpfleet_store_rejected_batches_total{${l}} 1`);
    expect(lines).toContain(`bpfleet_store_rejected_records_total{${l}} 10`);
    expect(lines).toContain(`bpfleet_kernel_sampled_out_total{${l}} 3`);
    expect(lines).toContain('bpfleet_ingest_batches_total 12');
    expect(lines).toContain('bpfleet_ingest_commits_total 4');
  });

  it('has HELP and TYPE once per family, before its samples', () => {
    expect(text.startsWith('# HELP bpfleet_devices Enrolled devices.\n# TYPE bpfleet_devices gauge\nbpfleet_devices 2\n')).toBe(true);
    const types = lines.filter((s) => s.startsWith('# TYPE '));
    expect(new Set(types).size).toBe(types.length);
    expect(lines).toContain('# TYPE bpfleet_records_lost_total counter');
    expect(text.endsWith('\n')).toBe(true);
  });
});
