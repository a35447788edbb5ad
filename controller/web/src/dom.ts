// Tiny DOM helpers: elements are built with textContent only (device names, comm strings and
// stack frames come from boards and must never be parsed as HTML).
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${u[i]}`;
}

export function fmtAgo(ms: number, now = Date.now()): string {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function badge(text: string, on: boolean | undefined, title = ''): HTMLElement {
  return h('span', { class: `badge ${on === undefined ? 'unknown' : on ? 'on' : 'off'}`, title: title || `${text}: ${on === undefined ? 'unknown' : on ? 'yes' : 'no'}` }, text);
}

export function setLiveState(connected: boolean): void {
  const el = document.getElementById('live-state');
  if (el) { el.classList.add('seen'); el.classList.toggle('up', connected); el.title = connected ? 'live: connected' : 'live: reconnecting'; }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function showError(root: HTMLElement, err: unknown): void {
  root.append(h('p', { class: 'error' }, errorText(err)));
}

/** A page renders into `root` and returns what stops its timers and streams. */
export type Page = (root: HTMLElement, args: string[], query: URLSearchParams) => (() => void) | void;
