// What RunSmokeTest answers, as CommandResult.detail_json (the controller reads the same shape,
// controller/src/smoke/smoke-report.ts). Field names are the JSON keys.

export type SmokeOutcome = 'pass' | 'fail' | 'unsupported';

export interface SmokeProgram {
  name: string;
  kind: string;
  target: string;
  verifiedInsns: number;
}

export interface SmokeProbeResult {
  probe: string;
  /** From the loader's manifest; '' when it could not be read. */
  version: string;
  outcome: SmokeOutcome;
  /**
   * Why not pass, one line a user can act on: the verifier's or libbpf's error, the missing
   * kernel feature (exit code 3), or what did not arrive. '' on pass.
   */
  reason: string;
  /** The loader's stderr (last lines) for a failure: the verifier log. */
  log?: string;
  /** Loader exit code when it ended on its own (bpf/README.md, "Exit codes"). */
  exitCode?: number;
  /** The smoke run: "smoke-<command_id>-<probe>"; its events are stored as stream streamId. */
  runId: string;
  streamId: string;
  /** Schema of the run's records, so the controller decodes and judges stored ones. */
  schemaId: string;
  trigger: string;
  /** Placeholder values the trigger provided ({port}, {pid}, {bytes}); the controller needs them. */
  vars: Record<string, string | number>;
  /** Loader args used. */
  args: string[];
  /** The expectation with placeholders filled, for people. */
  expect: string;
  /** Loader start until loaded and attached (HELLO + ready), ms. */
  attachMs: number | null;
  /** Trigger fired until the first matching record reached the agent, ms. */
  timeToFirstEventMs: number | null;
  /** Sum of verified_insns over the programs the loader loaded (from HELLO). */
  verifiedInsns: number | null;
  programs: SmokeProgram[];
  /** Records the run produced (matching or not). */
  records: number;
  /** The whole test of this probe, ms. */
  durationMs: number;
}

export interface SmokeReport {
  /** Agent's view of the device. */
  deviceId: string;
  probes: SmokeProbeResult[];
  durationMs: number;
}
