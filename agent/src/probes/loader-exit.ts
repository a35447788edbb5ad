// What a loader's exit means for its run (bpf/README.md, "Exit codes").

export const LoaderExitCode = {
  Ok: 0,
  Runtime: 1,
  Usage: 2,
  Unsupported: 3,
  VerifierRejected: 4,
  AttachFailed: 5,
  NotPermitted: 6,
} as const;

/** Exits that will fail the same way on a restart: report and give up. */
const PERMANENT: ReadonlySet<number> = new Set([
  LoaderExitCode.Usage,
  LoaderExitCode.Unsupported,
  LoaderExitCode.VerifierRejected,
  LoaderExitCode.NotPermitted,
]);

export interface LoaderExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type ExitVerdict = 'stopped' | 'failed' | 'crashed';

/**
 * stopped: we asked it to stop, or it ended on its own with 0 (--duration);
 * failed: permanent (usage, unsupported, verifier, permission), no restart;
 * crashed: anything else, including signals we did not send: restart with backoff.
 */
export function classifyExit(exit: LoaderExit, stopRequested: boolean): ExitVerdict {
  if (stopRequested) return 'stopped';
  if (exit.code === LoaderExitCode.Ok) return 'stopped';
  if (exit.code !== null && PERMANENT.has(exit.code)) return 'failed';
  return 'crashed';
}

/** ProbeStatus.exit_code: the code, or -1 when a signal ended the loader. */
export function statusExitCode(exit: LoaderExit): number {
  return exit.code ?? -1;
}

export function describeExit(exit: LoaderExit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
}
