// Tables and units for people: aligned columns (numbers to the right), counts with separators,
// sizes in KiB/MiB, times as "3m ago".

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | bigint | null | undefined;
  /** Right-align (default for numbers). */
  right?: boolean;
}

export function renderTable<T>(rows: T[], columns: Column<T>[]): string {
  const cells = rows.map((r) => columns.map((c) => {
    const v = c.value(r);
    return v === null || v === undefined ? '-' : typeof v === 'number' || typeof v === 'bigint' ? formatCount(v) : v;
  }));
  const right = columns.map((c) => c.right ?? rows.some((r) => { const v = c.value(r); return typeof v === 'number' || typeof v === 'bigint'; }));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => width(row[i]!))));
  const line = (vals: string[]) => vals.map((v, i) => {
    const pad = ' '.repeat(widths[i]! - width(v));
    return right[i] ? pad + v : i === vals.length - 1 ? v : v + pad;
  }).join('  ').trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n') + '\n';
}

/** Display width, counting each code point as one column (good enough for names and comms). */
const width = (s: string) => [...s].length;

export function formatCount(n: number | bigint): string {
  const s = n.toString();
  if (typeof n === 'number' && !Number.isInteger(n)) return n.toFixed(2);
  const neg = s.startsWith('-');
  const digits = neg ? s.slice(1) : s;
  return (neg ? '-' : '') + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600) ? `${Math.floor((s % 86400) / 3600)}h` : ''}`;
}

export function formatAgo(ms: number | null | undefined, nowMs: number): string {
  if (ms === null || ms === undefined || ms <= 0) return 'never';
  const d = nowMs - ms;
  return d < 0 ? `in ${formatDuration(d)}` : d < 1000 ? 'just now' : `${formatDuration(d)} ago`;
}
