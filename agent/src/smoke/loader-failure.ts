// One line a user can act on from a failed loader's exit code and stderr tail (bpf/README.md,
// "Exit codes"): the missing kernel feature for 3, the verifier's complaint for 4, the attach
// error for 5. The whole tail goes along separately as the log.
import { LoaderExitCode } from '../probes/index.js';
import type { SmokeOutcome } from './smoke-types.js';

export interface LoaderFailure {
  outcome: Exclude<SmokeOutcome, 'pass'>;
  reason: string;
}

const lines = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');

/** The verifier's own complaint: the last log line before "processed N insns" (or before END). */
function verifierComplaint(all: string[]): string | undefined {
  const processed = all.findIndex((l) => /^processed \d+ insns/.test(l));
  const end = processed >= 0 ? processed : all.findIndex((l) => l.includes('-- END PROG LOAD LOG --'));
  if (end <= 0) return undefined;
  const line = all[end - 1];
  return line === undefined || line.includes('BEGIN PROG LOAD LOG') ? undefined : line;
}

export function describeLoaderFailure(exitCode: number, tail: string): LoaderFailure {
  const all = lines(tail);
  const last = all[all.length - 1] ?? '';
  switch (exitCode) {
    case LoaderExitCode.Unsupported: {
      const line = all.find((l) => /unsupported/i.test(l)) ?? last;
      return { outcome: 'unsupported', reason: line || 'unsupported on this kernel (the loader said no more)' };
    }
    case LoaderExitCode.VerifierRejected: {
      const complaint = verifierComplaint(all);
      return {
        outcome: 'fail',
        reason: `rejected by the kernel verifier: ${complaint ? `${complaint} (${last})` : last || 'no log on stderr'}`,
      };
    }
    case LoaderExitCode.AttachFailed:
      return { outcome: 'fail', reason: `attach failed: ${last || 'no message on stderr'}` };
    case LoaderExitCode.NotPermitted:
      return { outcome: 'fail', reason: `not permitted: ${last || 'the agent needs root or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN'}` };
    case LoaderExitCode.Usage:
      return { outcome: 'fail', reason: `the loader refused the smoke args (exit 2; a loader older than its manifest?): ${last}` };
    default:
      return { outcome: 'fail', reason: `loader exited with code ${exitCode}${last ? `: ${last}` : ''}` };
  }
}
