// What the admin API needs from the live fleet (the Fleet class owns the agent sessions). Kept
// narrow so the API can be tested with a fake and the Fleet wired in behind an adapter.
import type { IngestCounters } from '../metrics/fleet-metrics.js';
import type { DeviceSelector } from './selector.js';

export interface DeviceRef {
  id: string;
  name: string;
}

/** A device's answer to one command (CommandResult), or why none came. */
export interface CommandOutcome {
  ok: boolean;
  /** Why not, in words a user can act on. */
  error?: string;
  /** Command-specific detail (CommandResult.detail_json, parsed). */
  detail?: unknown;
}

export interface StartOutcome extends CommandOutcome {
  /** The run the device started (its stream id is "<device>/<probe>/<runId>"). */
  runId?: string;
}

/** A command sent to one device; `result` settles when the device answers. */
export interface PendingCommand<T extends CommandOutcome = CommandOutcome> {
  device: DeviceRef;
  /** The command's id once sent (a smoke test's runs are "smoke-<commandId>-<probe>"). */
  commandId?: string;
  /**
   * Resolves when the command is sent: a deploy beyond the controller's deploy concurrency waits
   * its turn, and its answer is only due from then. Absent: sent already.
   */
  sent?: Promise<unknown>;
  result: Promise<T>;
}

/**
 * An event of the fleet (online, offline, status, stored, ...). The admin API only reads `type`:
 * 'stored' (records of a stream were committed) wakes followers before their next poll.
 */
export interface FleetEvent {
  type: string;
  deviceId?: string;
  streamId?: string;
}

export interface FleetCommands {
  /** Ids of devices with a live session. */
  devicesOnline(): ReadonlySet<string>;
  /** Sends the signed bundle of `probe` (for each device's architecture) to the selected devices. */
  deploy(selector: DeviceSelector, probe: string): Promise<PendingCommand[]>;
  /** Starts a run of `probe` with loader `args` on the selected devices. */
  start(selector: DeviceSelector, probe: string, args: string[]): Promise<PendingCommand<StartOutcome>[]>;
  /** Stops one run on the device running it. */
  stop(runId: string): Promise<CommandOutcome>;
  /** Runs the on-device smoke test of `probes` (all installed when empty) on the selected devices. */
  smoke?(selector: DeviceSelector, probes: string[], opts: { timeoutMs?: number; probeTimeoutMs?: number }): Promise<PendingCommand[]>;
  /** Live sessions with the probes each device announced (smoke progress totals). */
  sessionsInfo?(): { deviceId: string; installed: { name: string }[]; transport: string }[];
  /** Subscribes to fleet events; returns the unsubscribe function. */
  onEvent?(listener: (e: FleetEvent) => void): () => void;
  /** Counters of the ingest path, for /metrics. */
  ingestCounters?(): IngestCounters;
  /** Prometheus text the transports add to /metrics (MQTT). */
  transportMetrics?(): string;
}
