// The dashboard's live feed: fleet events coalesced into one `update` message per tick, so what a
// browser receives is bounded by the number of devices and streams, not by the event rate. With
// 500 devices heartbeating every few seconds the page gets two small messages a second, holding
// at most the latest heartbeat of each device, the sum of records stored per stream, and the
// latest state of each run.
import type { FleetEvent } from '../fleet/fleet-events.js';

export interface LiveHeartbeat {
  t: number;
  cpuBusy: number;
  load1: number;
  load5: number;
  load15: number;
  memAvailableBytes: number;
  memTotalBytes: number;
  netRxBytes: number;
  netTxBytes: number;
  agentRssBytes: number;
  spoolBytes: number;
}

export interface LiveUpdate {
  /** Server time of the flush, ms. */
  t: number;
  online: { deviceId: string; name: string; transport: string; agentVersion: string }[];
  offline: { deviceId: string; reason: string }[];
  heartbeats: Record<string, LiveHeartbeat>;
  /** Records stored since the last update, per stream id. */
  stored: Record<string, number>;
  /** Latest status of each run that changed. */
  status: { deviceId: string; runId: string; probe: string; state: string; reason: string; streamId: string; restarts: number }[];
  rejected: { deviceId: string; streamId: string; code: string; records: number; error: string }[];
  commands: { deviceId: string; commandId: string; ok: boolean; error: string }[];
  /** Fleet events folded into this update. */
  events: number;
}

const MAX_LIST = 200; // rejected / command results kept per tick (the rest counted in `events` only)

export class LiveHub {
  private pending: LiveUpdate | undefined;
  private readonly subs = new Set<(u: LiveUpdate) => void>();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Totals since start, for the bench and /web/stats. */
  readonly totals = { events: 0, updates: 0 };

  constructor(private readonly opts: { tickMs?: number; now?: () => number; onEvent?: (l: (e: FleetEvent) => void) => () => void } = {}) {
    if (opts.onEvent) this.unsubscribe = opts.onEvent((e) => this.add(e));
  }

  get tickMs(): number {
    return this.opts.tickMs ?? 500;
  }

  subscribe(fn: (u: LiveUpdate) => void): () => void {
    this.subs.add(fn);
    return () => { this.subs.delete(fn); };
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /** Folds one fleet event into the pending update and makes sure a flush is scheduled. */
  add(e: FleetEvent): void {
    this.totals.events++;
    if (this.subs.size === 0) return; // nobody watching: nothing to keep
    const u = (this.pending ??= { t: 0, online: [], offline: [], heartbeats: {}, stored: {}, status: [], rejected: [], commands: [], events: 0 });
    u.events++;
    switch (e.type) {
      case 'online':
        u.offline = u.offline.filter((x) => x.deviceId !== e.deviceId);
        u.online = u.online.filter((x) => x.deviceId !== e.deviceId);
        u.online.push({ deviceId: e.deviceId, name: e.name, transport: e.transport, agentVersion: e.agentVersion });
        break;
      case 'offline':
        u.online = u.online.filter((x) => x.deviceId !== e.deviceId);
        u.offline = u.offline.filter((x) => x.deviceId !== e.deviceId);
        u.offline.push({ deviceId: e.deviceId, reason: e.reason });
        break;
      case 'heartbeat': {
        const h = e.heartbeat, m = h.metrics;
        u.heartbeats[e.deviceId] = {
          t: Number(h.timeUnixNs / 1_000_000n), cpuBusy: m?.cpuBusy ?? 0, load1: m?.load1 ?? 0, load5: m?.load5 ?? 0, load15: m?.load15 ?? 0,
          memAvailableBytes: Number(m?.memAvailableBytes ?? 0n), memTotalBytes: Number(m?.memTotalBytes ?? 0n),
          netRxBytes: Number(m?.netRxBytes ?? 0n), netTxBytes: Number(m?.netTxBytes ?? 0n), agentRssBytes: Number(m?.agentRssBytes ?? 0n),
          spoolBytes: Number(h.spoolBytes),
        };
        break;
      }
      case 'stored':
        if (e.records > 0) u.stored[e.streamId] = (u.stored[e.streamId] ?? 0) + e.records;
        break;
      case 'status': {
        u.status = u.status.filter((x) => x.runId !== e.runId);
        u.status.push({ deviceId: e.deviceId, runId: e.runId, probe: e.probe, state: e.state, reason: e.reason, streamId: e.streamId, restarts: e.restarts });
        break;
      }
      case 'rejected':
        if (u.rejected.length < MAX_LIST) u.rejected.push({ deviceId: e.deviceId, streamId: e.streamId, code: e.code, records: e.records, error: e.error });
        break;
      case 'commandResult':
        if (u.commands.length < MAX_LIST) u.commands.push({ deviceId: e.deviceId, commandId: e.commandId, ok: e.ok, error: e.error });
        break;
      case 'stats':
        break; // loss counters: the page reads them when it loads (they change slowly)
    }
    this.timer ??= setTimeout(() => this.flush(), this.tickMs);
  }

  /** Sends the pending update to every subscriber now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const u = this.pending;
    this.pending = undefined;
    if (!u) return;
    u.t = (this.opts.now ?? Date.now)();
    this.totals.updates++;
    for (const fn of this.subs) fn(u);
  }

  close(): void {
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
    this.subs.clear();
  }
}
