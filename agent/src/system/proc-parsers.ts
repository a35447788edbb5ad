// Pure parsers for /proc and /sys text. File reading lives elsewhere so these run on fixtures.

export interface CpuTimes {
  /** Jiffies spent busy (everything but idle and iowait). */
  busy: number;
  total: number;
}

/** The aggregate "cpu" line of /proc/stat. */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (line === undefined) throw new Error('/proc/stat has no aggregate "cpu" line');
  // user nice system idle iowait irq softirq steal guest guest_nice; guest is already in user.
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total };
}

/** Busy fraction between two samples, 0..1; 0 when no time passed. */
export function cpuBusyBetween(prev: CpuTimes, cur: CpuTimes): number {
  const dt = cur.total - prev.total;
  if (dt <= 0) return 0;
  return Math.min(1, Math.max(0, (cur.busy - prev.busy) / dt));
}

export interface LoadAvg {
  load1: number;
  load5: number;
  load15: number;
}

export function parseLoadavg(text: string): LoadAvg {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (a === undefined || b === undefined || c === undefined || [a, b, c].some(Number.isNaN)) {
    throw new Error(`cannot parse /proc/loadavg: ${text.slice(0, 80)}`);
  }
  return { load1: a, load5: b, load15: c };
}

/** /proc/meminfo as bytes per key ("MemTotal: 2029876 kB" -> 2078593024n). */
export function parseMeminfo(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const m = /^([\w()]+):\s+(\d+)(?:\s+(kB))?/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(m[1], BigInt(m[2]) * (m[3] ? 1024n : 1n));
  }
  return out;
}

export interface MemSample {
  totalBytes: bigint;
  /** MemAvailable; kernels before 3.14 lack it: MemFree + Buffers + Cached instead. */
  availableBytes: bigint;
}

export function memFromMeminfo(info: Map<string, bigint>): MemSample {
  const total = info.get('MemTotal');
  if (total === undefined) throw new Error('/proc/meminfo has no MemTotal');
  const avail =
    info.get('MemAvailable') ?? (info.get('MemFree') ?? 0n) + (info.get('Buffers') ?? 0n) + (info.get('Cached') ?? 0n);
  return { totalBytes: total, availableBytes: avail };
}

export interface NetTotals {
  rxBytes: bigint;
  txBytes: bigint;
}

/** Sums /proc/net/dev over every interface but loopback. */
export function parseNetDev(text: string): NetTotals {
  let rx = 0n;
  let tx = 0n;
  for (const line of text.split('\n')) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined || m[1] === 'lo') continue;
    // 8 receive columns, then transmit: bytes are columns 0 and 8.
    const [rxBytes, , , , , , , , txBytes] = m[2].trim().split(/\s+/);
    if (rxBytes === undefined || txBytes === undefined) continue;
    rx += BigInt(rxBytes);
    tx += BigInt(txBytes);
  }
  return { rxBytes: rx, txBytes: tx };
}

/** "0-3,6" (sys/devices/system/cpu/online) -> 5. */
export function countCpuList(text: string): number {
  let n = 0;
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || Number.isNaN(a)) throw new Error(`bad cpu list: ${text}`);
    n += b === undefined ? 1 : b - a + 1;
  }
  return n;
}

/** Mount points of a filesystem type in /proc/mounts (octal escapes like \040 decoded). */
export function mountPoints(mounts: string, fstype: string): string[] {
  const out: string[] = [];
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[2] === fstype && f[1] !== undefined) {
      out.push(f[1].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
    }
  }
  return out;
}
