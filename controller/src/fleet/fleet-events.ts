// What the fleet tells its subscribers (admin API, dashboard, metrics). Every event is emitted
// under its `type` and under 'event' (Fleet.onEvent).
import type { Heartbeat, PipelineStats } from '@bpfleet/proto';
import type { RejectCode } from '../store/errors.js';
import type { RunState } from '../store/store.js';

export type FleetEvent =
  /** A session of the device began (after Welcome was queued). `replaced`: it took over an older one. */
  | { type: 'online'; deviceId: string; name: string; transport: string; peer: string; agentVersion: string; replaced: boolean }
  /** The device's last session ended. */
  | { type: 'offline'; deviceId: string; reason: string }
  /** A ProbeStatus from the device (already stored). */
  | { type: 'status'; deviceId: string; runId: string; probe: string; state: RunState; reason: string; streamId: string;
      exitCode: number; restarts: number }
  /** Records of a stream committed (one event per stream and group commit). */
  | { type: 'stored'; deviceId: string; streamId: string; records: number; duplicate: number; gapRecords: number;
      filled: number; ackedThrough: bigint }
  /** A batch the store refused: nothing stored, nothing acked (the agent keeps it spooled). */
  | { type: 'rejected'; deviceId: string; streamId: string; code: RejectCode; records: number; error: string }
  | { type: 'heartbeat'; deviceId: string; heartbeat: Heartbeat }
  | { type: 'stats'; deviceId: string; stats: PipelineStats }
  | { type: 'commandResult'; deviceId: string; commandId: string; ok: boolean; error: string };

export type FleetEventType = FleetEvent['type'];
export type FleetEventOf<T extends FleetEventType> = Extract<FleetEvent, { type: T }>;

/** Event map for the typed EventEmitter. */
export type FleetEventMap = { [T in FleetEventType]: [FleetEventOf<T>] } & { event: [FleetEvent] };
