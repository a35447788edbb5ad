// What an agent answers to RunSmokeTest (CommandResult.detail_json): the agent's SmokeReport
// (agent/src/smoke/smoke-types.ts; the controller never imports agent code, so the shape is
// restated here and checked on arrival: a malformed answer is a failure, not a crash).
import type { SmokeOutcome } from '../store/store.js';

export interface AgentSmokeProbe {
  probe: string;
  version: string;
  outcome: SmokeOutcome;
  reason: string;
  log?: string;
  exitCode?: number;
  runId: string;
  streamId: string;
  schemaId: string;
  trigger: string;
  vars: Record<string, string | number>;
  args: string[];
  expect: string;
  attachMs: number | null;
  timeToFirstEventMs: number | null;
  verifiedInsns: number | null;
  programs: { name: string; kind: string; target: string; verifiedInsns: number }[];
  records: number;
  durationMs: number;
}

export interface AgentSmokeReport {
  deviceId: string;
  probes: AgentSmokeProbe[];
  durationMs: number;
}

const OUTCOMES = new Set(['pass', 'fail', 'unsupported']);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const numOrNull = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isFinite(v));

/** The report, or throws saying what is wrong with it (an agent of another version?). */
export function parseAgentSmokeReport(detail: unknown): AgentSmokeReport {
  const bad = (what: string): never => {
    throw new Error(`the device's smoke report is malformed (${what}); is its agent of a different version?`);
  };
  if (!isObj(detail) || !Array.isArray(detail['probes'])) return bad('no probes list');
  const probes = (detail['probes'] as unknown[]).map((p, i) => {
    if (!isObj(p)) return bad(`probes[${i}] is not an object`);
    for (const k of ['probe', 'reason', 'runId', 'streamId', 'schemaId']) if (typeof p[k] !== 'string') bad(`probes[${i}].${k} is not a string`);
    if (!OUTCOMES.has(p['outcome'] as string)) bad(`probes[${i}].outcome "${String(p['outcome'])}"`);
    for (const k of ['attachMs', 'timeToFirstEventMs', 'verifiedInsns']) if (!numOrNull(p[k])) bad(`probes[${i}].${k} is not a number or null`);
    if (!isObj(p['vars'])) bad(`probes[${i}].vars is not an object`);
    return {
      version: '', trigger: '', args: [], expect: '', programs: [], records: 0, durationMs: 0,
      ...p,
    } as unknown as AgentSmokeProbe;
  });
  return { deviceId: String(detail['deviceId'] ?? ''), durationMs: Number(detail['durationMs'] ?? 0), probes };
}
