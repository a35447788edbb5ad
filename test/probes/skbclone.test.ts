import { describe, expect, it, beforeAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import os from 'node:os';
import { kernelFeatures, probeBinary, requireRoot, runProbe, tcpgen } from '../lib/index.js';
import { loadManifest, pickPort } from './support.js';

const hostHasKprobes = kernelFeatures.kprobes() === true;

describe('skbclone', () => {
  beforeAll(() => {
    requireRoot();
  });

  it('--manifest works without the kernel: an interval record with count and total', () => {
    const m = JSON.parse(execFileSync(probeBinary('skbclone'), ['--manifest']).toString());
    expect(m).toEqual(loadManifest('skbclone'));
    expect(m.kind).toBe('interval');
    expect(m.record).toMatchObject({ name: 'skbclone_event', size: 48 });
    expect(m.record.fields.map((f: { name: string }) => f.name)).toEqual(['ts_ns', 'pid', 'comm', 'count', 'total']);
    expect(m.hooks).toEqual([{ group: 'clone', program: 'skbclone_kprobe', kind: 'kprobe', target: 'skb_clone' }]);
  });

  it('--describe shows the kprobe hook and, without kprobes, why it is unavailable', () => {
    const d = JSON.parse(execFileSync(probeBinary('skbclone'), ['--describe']).toString());
    expect(d.kernel.kprobes).toBe(hostHasKprobes);
    expect(d.hooks).toHaveLength(1);
    const h = d.hooks[0];
    expect(h).toMatchObject({ group: 'clone', kind: 'kprobe', target: 'skb_clone' });
    if (hostHasKprobes) {
      expect(h).toMatchObject({ available: true, selected: true, reason: '' });
    } else {
      expect(h).toMatchObject({ available: false, selected: false });
      expect(h.reason).toMatch(/needs kprobes/);
    }
  });

  if (!hostHasKprobes) {
    it('exits 3 "unsupported on this kernel", naming kprobes, when the kernel has none', () => {
      const r = spawnSync(probeBinary('skbclone'), ['--json', '--duration', '2', '--comm', 'tcpgen'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(r.status).toBe(3);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('skbclone: unsupported on this kernel');
      expect(r.stderr).toContain(os.release());
      expect(r.stderr).toMatch(/needs kprobe skb_clone \(needs kprobes/);
      expect(r.stderr).not.toMatch(/ready/);
    });
  } else {
    // On kernels with kprobes (boards, most distributions) the probe really counts.
    it('counts skb_clone() calls of a loopback transfer for the tcpgen process only', async () => {
      const run = runProbe('skbclone', ['--json', '--comm', 'tcpgen', '--interval', '500'], { waitReady: true });
      await run.ready;
      const gen = await tcpgen({ port: pickPort(), send: 8_000_000, recv: 8_000_000 });
      await new Promise((r) => setTimeout(r, 700)); // one interval past the transfer
      const res = await run.stop();
      expect(res.code).toBe(0);
      expect(res.events.every((e) => e.comm === 'tcpgen')).toBe(true);
      const mine = res.events.filter((e) => e.pid === gen.pid);
      expect(mine.length).toBeGreaterThan(0);
      // Intervals are deltas: totals are the running sum of the counts.
      let sum = 0;
      for (const e of mine) {
        expect(e.count as number).toBeGreaterThan(0);
        sum += e.count as number;
        expect(e.total).toBe(sum);
      }
      // Every data segment leaves through __tcp_transmit_skb(), which clones it.
      expect(sum).toBeGreaterThanOrEqual(16_000_000 / 65536);
    });
  }
});
