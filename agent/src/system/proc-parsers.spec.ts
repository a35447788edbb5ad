import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  countCpuList,
  cpuBusyBetween,
  memFromMeminfo,
  mountPoints,
  parseLoadavg,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
} from './proc-parsers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const fixture = (board: string, file: string): string => readFileSync(path.join(fixtures, board, file), 'utf8');

describe('/proc parsers on an armv7 board (Hi3516DV300, OpenHarmony)', () => {
  const board = 'armv7-hi3516dv300';

  it('takes the aggregate cpu line of /proc/stat, busy without idle and iowait', () => {
    expect(parseProcStat(fixture(board, 'proc/stat'))).toEqual({ busy: 18798, total: 432346 });
  });

  it('reads load averages', () => {
    expect(parseLoadavg(fixture(board, 'proc/loadavg'))).toEqual({ load1: 0.52, load5: 0.31, load15: 0.2 });
  });

  it('reads MemAvailable and MemTotal in bytes', () => {
    const mem = memFromMeminfo(parseMeminfo(fixture(board, 'proc/meminfo')));
    expect(mem).toEqual({ totalBytes: 498132n * 1024n, availableBytes: 389004n * 1024n });
  });

  it('sums network bytes over every interface but lo', () => {
    expect(parseNetDev(fixture(board, 'proc/net/dev'))).toEqual({ rxBytes: 4837261n + 1000n, txBytes: 1203388n + 500n });
  });

  it('counts online cpus and finds no tracefs mount (debugfs only)', () => {
    expect(countCpuList('0-1\n')).toBe(2);
    expect(mountPoints(fixture(board, 'proc/mounts'), 'tracefs')).toEqual([]);
    expect(mountPoints(fixture(board, 'proc/mounts'), 'debugfs')).toEqual(['/sys/kernel/debug']);
  });
});

describe('/proc parsers, edge cases', () => {
  it('net/dev counters past 32 bits and a glued "eth0:123..." column stay exact', () => {
    const t = parseNetDev(fixture('arm64-rk3568', 'proc/net/dev'));
    expect(t).toEqual({ rxBytes: 123456789012n, txBytes: 9876543210n });
  });

  it('falls back to MemFree + Buffers + Cached on kernels without MemAvailable (before 3.14)', () => {
    const old = 'MemTotal:  1000 kB\nMemFree:  100 kB\nBuffers:  20 kB\nCached:  300 kB\n';
    expect(memFromMeminfo(parseMeminfo(old))).toEqual({ totalBytes: 1024000n, availableBytes: 420n * 1024n });
  });

  it('cpu busy between two samples is a fraction of the elapsed jiffies', () => {
    const a = parseProcStat('cpu  100 0 100 800 0 0 0 0 0 0\n');
    const b = parseProcStat('cpu  250 0 150 900 100 0 0 0 0 0\n');
    // +200 busy out of +400 total (100 idle, 100 iowait)
    expect(cpuBusyBetween(a, b)).toBeCloseTo(0.5, 10);
    expect(cpuBusyBetween(b, b)).toBe(0);
  });

  it('handles sparse cpu lists and escaped mount points', () => {
    expect(countCpuList('0-3,6,8-9')).toBe(7);
    expect(countCpuList('0')).toBe(1);
    expect(mountPoints('none /mnt/my\\040trace tracefs rw 0 0\n', 'tracefs')).toEqual(['/mnt/my trace']);
  });

  it('rejects text that is not what it should be', () => {
    expect(() => parseProcStat('intr 1 2 3\n')).toThrow(/no aggregate "cpu" line/);
    expect(() => parseLoadavg('')).toThrow(/loadavg/);
    expect(() => memFromMeminfo(parseMeminfo('MemFree: 1 kB\n'))).toThrow(/MemTotal/);
  });
});
