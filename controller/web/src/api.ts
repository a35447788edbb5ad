// The page's calls: same-origin fetches carrying the session cookie; a 401 sends the user to the
// login form. Live updates arrive over one EventSource (Server-Sent Events) at a time.
export class ApiError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

let onUnauthorized: () => void = () => undefined;
export function setUnauthorizedHandler(fn: () => void): void { onUnauthorized = fn; }

async function check(res: Response): Promise<Response> {
  if (res.ok) return res;
  let msg = `${res.status} ${res.statusText}`;
  try { msg = ((await res.json()) as { error?: string }).error ?? msg; } catch { /* not JSON */ }
  if (res.status === 401) onUnauthorized();
  throw new ApiError(res.status, msg);
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await check(await fetch(path, { credentials: 'same-origin' }))).json()) as T;
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  const res = await check(await fetch(path, { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body) }));
  return (await res.json()) as T;
}

/** POSTs and calls `line` with each JSON line of a streamed answer as it arrives (deploy progress). */
export async function postJsonLines(path: string, body: unknown, line: (v: Record<string, unknown>) => void): Promise<void> {
  const res = await check(await fetch(path, { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body) }));
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (l) line(JSON.parse(l) as Record<string, unknown>);
    }
  }
}

export interface Device {
  id: string; name: string; labels: Record<string, string>; transport: string | null; online: boolean;
  firstSeenMs: number; lastSeenMs: number;
  facts: { board?: string; arch?: string; kernelRelease?: string; cpus?: number; memoryBytes?: string | number;
    caps?: { btf?: boolean; kprobes?: boolean; jit?: boolean; tracepoints?: boolean; bpfSyscall?: boolean } };
}
export interface ProbeInfo { probe: string; version: string; kind: string; summary: string;
  fields: { name: string; type: string; format?: string; unit?: string; description?: string }[]; builds: { arch: string }[] }
export interface EventRow { time: string; timeUnixNs: string; deviceId: string; probe: string; streamId: string; seq: number;
  fields: Record<string, unknown>; interval?: number }
export interface Run { runId: string; deviceId: string; probe: string; args: string[]; state: string; reason: string; streamId: string | null;
  createdAtMs: number; updatedAtMs: number; restarts: number; exitCode: number | null }
export interface Heartbeat { timeUnixNs: string; receivedAtMs: number; cpuBusy: number; load1: number; load5: number; load15: number;
  memAvailableBytes: string; memTotalBytes: string; netRxBytes: string; netTxBytes: string; spoolBytes: string; agentRssBytes: string }
export interface LiveHeartbeat { t: number; cpuBusy: number; load1: number; load5: number; load15: number; memAvailableBytes: number;
  memTotalBytes: number; netRxBytes: number; netTxBytes: number; agentRssBytes: number; spoolBytes: number }
export interface LiveUpdate {
  t: number; events: number;
  online: { deviceId: string; name: string; transport: string; agentVersion: string }[];
  offline: { deviceId: string; reason: string }[];
  heartbeats: Record<string, LiveHeartbeat>;
  stored: Record<string, number>;
  status: { deviceId: string; runId: string; probe: string; state: string; reason: string; streamId: string; restarts: number }[];
  rejected: { deviceId: string; streamId: string; code: string; records: number; error: string }[];
  commands: { deviceId: string; commandId: string; ok: boolean; error: string }[];
}

export interface LiveHandlers {
  update?: (u: LiveUpdate) => void;
  rows?: (r: { rows: EventRow[]; skipped: number }) => void;
  /** The server dropped messages for us (we were slow): reload what the page shows. */
  resync?: () => void;
  state?: (connected: boolean) => void;
}

/** One EventSource; `params` selects a probe's rows in addition to the fleet updates. */
export function openLive(params: Record<string, string>, on: LiveHandlers): () => void {
  const q = new URLSearchParams(params).toString();
  const es = new EventSource(`/web/live${q ? `?${q}` : ''}`, { withCredentials: true });
  es.addEventListener('update', (e) => on.update?.(JSON.parse((e as MessageEvent<string>).data) as LiveUpdate));
  es.addEventListener('rows', (e) => on.rows?.(JSON.parse((e as MessageEvent<string>).data) as { rows: EventRow[]; skipped: number }));
  es.addEventListener('resync', () => on.resync?.());
  es.addEventListener('hello', () => on.state?.(true));
  es.onerror = () => {
    on.state?.(false);
    // A closed stream after logout/expiry: find out whether the session is gone.
    void fetch('/web/session', { credentials: 'same-origin' }).then((r) => { if (r.status === 401) { es.close(); onUnauthorized(); } });
  };
  return () => es.close();
}
