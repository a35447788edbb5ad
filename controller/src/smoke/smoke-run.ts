// `bpfleet smoke`: RunSmokeTest to each selected device, then, for every probe the device says
// passed, the controller's own check that a record meeting the manifest's expectation actually
// arrived and was stored (the device's word is not enough: the event must have travelled the
// whole pipeline). Every device x probe becomes a stored SmokeResultRow. Progress (targets,
// each smoke run ending, each device's result) goes to `emit` as it happens.
import { smokeMismatches } from '@bpfleet/proto';
import type { CommandOutcome, DeviceRef, FleetEvent, PendingCommand } from '../admin/fleet-commands.js';
import type { DeviceSelector } from '../fleet/selector.js';
import type { SmokeResultRow, Store } from '../store/store.js';
import { parseAgentSmokeReport, type AgentSmokeProbe } from './smoke-report.js';

/** What the smoke run needs of the fleet (the Fleet class offers it). */
export interface SmokeFleet {
  smoke(selector: DeviceSelector, probes: string[], opts: { timeoutMs?: number; probeTimeoutMs?: number }): Promise<PendingCommand[]>;
  onEvent?(listener: (e: FleetEvent) => void): () => void;
  sessionsInfo?(): { deviceId: string; installed: { name: string }[] }[];
}

export interface SmokeRequest {
  selector: DeviceSelector;
  /** Empty: every probe installed on each device. */
  probes: string[];
  /** Per probe: trigger until a matching record on the device, and answer until it is stored here (default 10 s). */
  probeTimeoutMs?: number;
}

export type SmokeProgress =
  | { type: 'targets'; devices: (DeviceRef & { probes: number | null })[] }
  | { type: 'progress'; device: DeviceRef; probe: string; state: string; done: number; total: number | null }
  | { type: 'result'; device: DeviceRef; ok: boolean; error?: string; results: SmokeResultRow[] };

export interface SmokeSummary {
  /** No probe failed and every device answered (unsupported is not a failure). */
  ok: boolean;
  results: SmokeResultRow[];
  devices: (DeviceRef & { ok: boolean; commandId?: string; error?: string })[];
}

/** Loader start, at most, before a probe's event clock starts (emulated boards verify slowly). */
const ATTACH_ALLOWANCE_MS = 60_000;
const POLL_MS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface SmokeDeps {
  fleet: SmokeFleet;
  store: Store;
  now?: () => number;
}

/** How long the whole test of one device may take, for the command's timeout. */
export function deviceTimeoutMs(probes: number, probeTimeoutMs: number): number {
  return 30_000 + Math.max(probes, 1) * (probeTimeoutMs + ATTACH_ALLOWANCE_MS + 5_000);
}

interface StoredCheck {
  found: boolean;
  storedRecords: number;
  matchedSeq?: number;
  /** From the device's answer until the matching record was found in the store. */
  waitedMs: number;
  why?: string;
}

/** Waits up to timeoutMs for a stored record of the smoke run that meets the manifest's expectation. */
export async function checkStored(store: Store, p: AgentSmokeProbe, timeoutMs: number, now: () => number = Date.now): Promise<StoredCheck> {
  const t0 = now();
  const manifest = await store.manifest(p.schemaId);
  if (!manifest) {
    return { found: false, storedRecords: 0, waitedMs: 0,
      why: `this controller has no manifest ${p.schemaId}, so it cannot store the run's records: deploy ${p.probe} from this controller ` +
        '(or rebuild bpf/out and restart the controller)' };
  }
  const smoke = manifest.smoke;
  if (!smoke) return { found: false, storedRecords: 0, waitedMs: 0, why: `manifest ${p.schemaId} has no smoke entry` };
  for (;;) {
    const events = await store.events({ streamId: p.streamId, limit: 100_000 });
    const hit = events.find((e) => smokeMismatches(smoke, e.fields, p.vars).length === 0);
    if (hit) return { found: true, storedRecords: events.length, matchedSeq: hit.seq, waitedMs: now() - t0 };
    if (now() - t0 >= timeoutMs) {
      return { found: false, storedRecords: events.length, waitedMs: now() - t0,
        why: `the device saw a record with ${p.expect}, but none arrived in the controller's store within ${timeoutMs} ms ` +
          `(${events.length} records of stream ${p.streamId} stored)` };
    }
    await sleep(POLL_MS);
  }
}

function row(commandId: string, deviceId: string, p: AgentSmokeProbe, check: StoredCheck | undefined, nowMs: number): SmokeResultRow {
  const lost = p.outcome === 'pass' && check !== undefined && !check.found;
  return {
    commandId, deviceId, probe: p.probe, version: p.version, outcome: lost ? 'fail' : p.outcome,
    reason: lost ? check.why ?? 'not stored' : p.reason, runId: p.runId, streamId: p.streamId,
    timeToFirstEventMs: p.timeToFirstEventMs, attachMs: p.attachMs, verifiedInsns: p.verifiedInsns,
    storedRecords: check?.storedRecords ?? 0,
    detail: { ...p, ...(check ? { controller: { stored: check.found, storedRecords: check.storedRecords, matchedSeq: check.matchedSeq ?? null,
      storedWaitMs: check.waitedMs } } : {}) },
    createdAtMs: nowMs,
  };
}

function deviceFailed(commandId: string, deviceId: string, probes: string[], error: string, nowMs: number): SmokeResultRow[] {
  return (probes.length ? probes : ['*']).map((probe) => ({
    commandId, deviceId, probe, version: '', outcome: 'fail' as const, reason: error, runId: '', streamId: '',
    timeToFirstEventMs: null, attachMs: null, verifiedInsns: null, storedRecords: 0, detail: { error }, createdAtMs: nowMs,
  }));
}

export async function runSmoke(deps: SmokeDeps, req: SmokeRequest, emit: (p: SmokeProgress) => void | Promise<void>): Promise<SmokeSummary> {
  const now = deps.now ?? Date.now;
  const probeTimeoutMs = req.probeTimeoutMs ?? 10_000;
  const installed = new Map((deps.fleet.sessionsInfo?.() ?? []).map((s) => [s.deviceId, s.installed.length]));
  const expected = (id: string) => (req.probes.length ? req.probes.length : installed.get(id) ?? null);
  const maxProbes = req.probes.length || Math.max(0, ...installed.values()) || 16;

  // Follow the smoke runs' statuses (runs "smoke-<commandId>-<probe>") for per-device progress.
  const byCommand = new Map<string, { device: DeviceRef; done: Set<string> }>();
  /** Statuses that came before the command ids were known (kept only until then). */
  let early: FleetEvent[] | undefined = [];
  const onStatus = (e: FleetEvent) => {
    const ev = e as FleetEvent & { runId?: string; probe?: string; state?: string; exitCode?: number };
    const runId = ev.runId ?? '';
    if (ev.type !== 'status' || !runId.startsWith('smoke-')) return;
    const cmd = [...byCommand.entries()].find(([id]) => runId.startsWith(`smoke-${id}-`));
    if (!cmd) { early?.push(e); return; }
    if (!['stopped', 'failed', 'crashed'].includes(ev.state ?? '')) return;
    // The loader's exit code says more than the run state (bpf/README.md, "Exit codes").
    const state = ev.state === 'failed' && ev.exitCode === 3 ? 'unsupported' : ev.state === 'failed' && ev.exitCode === 4 ? 'rejected'
      : ev.state === 'crashed' && ev.exitCode === 5 ? 'attach failed' : ev.state ?? '';
    const [id, c] = cmd;
    const probe = ev.probe ?? runId.slice(`smoke-${id}-`.length);
    if (c.done.has(probe)) return;
    c.done.add(probe);
    void emit({ type: 'progress', device: c.device, probe, state, done: c.done.size, total: expected(c.device.id) });
  };
  const unsubscribe = deps.fleet.onEvent?.(onStatus);
  try {
    const pending = await deps.fleet.smoke(req.selector, req.probes, { probeTimeoutMs, timeoutMs: deviceTimeoutMs(maxProbes, probeTimeoutMs) });
    for (const p of pending) if (p.commandId) byCommand.set(p.commandId, { device: p.device, done: new Set() });
    const before = early;
    early = undefined;
    for (const e of before) onStatus(e);
    await emit({ type: 'targets', devices: pending.map((p) => ({ ...p.device, probes: expected(p.device.id) })) });

    const devices = await Promise.all(pending.map(async (p) => {
      const commandId = p.commandId ?? '';
      const outcome: CommandOutcome = await p.result.catch((err: unknown) => ({ ok: false, error: String(err) }));
      let rows: SmokeResultRow[];
      let error: string | undefined;
      if (!outcome.ok) {
        error = outcome.error ?? 'the device did not run the smoke test';
        rows = deviceFailed(commandId, p.device.id, req.probes, error, now());
      } else {
        try {
          const report = parseAgentSmokeReport(outcome.detail);
          rows = await Promise.all(report.probes.map(async (r) =>
            row(commandId, p.device.id, r, r.outcome === 'pass' ? await checkStored(deps.store, r, probeTimeoutMs, now) : undefined, now())));
        } catch (err) {
          error = (err as Error).message;
          rows = deviceFailed(commandId, p.device.id, req.probes, error, now());
        }
      }
      await deps.store.recordSmokeResults?.(rows);
      const ok = error === undefined && rows.every((r) => r.outcome !== 'fail');
      await emit({ type: 'result', device: p.device, ok, ...(error ? { error } : {}), results: rows });
      return { device: p.device, commandId, ok, error, rows };
    }));
    return {
      ok: devices.every((d) => d.ok),
      results: devices.flatMap((d) => d.rows),
      devices: devices.map((d) => ({ ...d.device, ok: d.ok, ...(d.commandId ? { commandId: d.commandId } : {}), ...(d.error ? { error: d.error } : {}) })),
    };
  } finally {
    unsubscribe?.();
  }
}
