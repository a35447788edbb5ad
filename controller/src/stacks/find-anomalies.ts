// Anomalies from stored events: one pass over the records of each stack probe, bucketed into
// windows aligned to multiples of the window length (so two queries see the same windows), one
// detector per device and probe. Only whole windows inside [since, until) are judged.
import { checkStackProbe, scanStackRecords, stackKey, StackError, storedStackProbes, type StackStore } from './aggregate.js';
import { DEFAULT_ANOMALY_PARAMS, StackAnomalyDetector, type AnomalyKind, type AnomalyParams, type StackWindow } from './anomalies.js';
import { countsSamples } from './units.js';

export const MAX_WINDOWS = 10_000;

export interface AnomalyQuery {
  /** undefined = every stack probe with stored records. */
  probe?: string;
  /** undefined = every device. */
  deviceIds?: string[];
  sinceUnixNs: bigint;
  untilUnixNs: bigint;
  windowNs: bigint;
  /** Stacks rooted by their process (comm): seed 001 asks to judge processes apart. Default true. */
  perProcess?: boolean;
  params?: Partial<AnomalyParams>;
}

export interface AnomalyRow {
  deviceId: string;
  probe: string;
  unit: string;
  windowStartUnixNs: bigint;
  windowEndUnixNs: bigint;
  kind: AnomalyKind;
  stack: string;
  share: number;
  baselineShare: number;
  baselineStd: number;
  z: number | null;
  value: number;
  samples: number;
  windowTotal: number;
}

export interface SeriesSummary {
  deviceId: string;
  probe: string;
  unit: string;
  /** Windows that held records (the others were skipped). */
  windowsWithData: number;
  records: number;
}

export interface AnomalyReport {
  firstWindowUnixNs: bigint;
  windows: number;
  windowNs: bigint;
  params: AnomalyParams;
  series: SeriesSummary[];
  anomalies: AnomalyRow[];
}

const ceilDiv = (a: bigint, b: bigint) => (a % b === 0n ? a / b : a / b + (a > 0n ? 1n : 0n));

export async function findAnomalies(store: StackStore, q: AnomalyQuery): Promise<AnomalyReport> {
  if (q.windowNs <= 0n) throw new StackError(400, 'the window must be longer than 0');
  const first = ceilDiv(q.sinceUnixNs, q.windowNs) * q.windowNs;
  const end = (q.untilUnixNs / q.windowNs) * q.windowNs;
  const n = end > first ? Number((end - first) / q.windowNs) : 0;
  if (n < 1) {
    throw new StackError(400, `no whole window of ${Number(q.windowNs) / 1e9}s fits between since and until: ` +
      'look further back (since) or use a shorter window');
  }
  if (n > MAX_WINDOWS) throw new StackError(400, `${n} windows asked for, at most ${MAX_WINDOWS}: use a longer window or a shorter span`);
  const params = { ...DEFAULT_ANOMALY_PARAMS, ...q.params };
  const probes = q.probe !== undefined ? [q.probe] : await storedStackProbes(store, q.deviceIds);
  const perProcess = q.perProcess ?? true;
  const series: SeriesSummary[] = [];
  const anomalies: AnomalyRow[] = [];
  for (const probe of probes) {
    const scope = { probe, ...(q.deviceIds ? { deviceIds: q.deviceIds } : {}), sinceUnixNs: first, untilUnixNs: end };
    const { unit } = await checkStackProbe(store, scope);
    const bySample = countsSamples(unit);
    const perDevice = new Map<string, { windows: Required<StackWindow>[]; records: number }>();
    for await (const r of scanStackRecords(store, scope)) {
      let d = perDevice.get(r.deviceId);
      if (!d) {
        d = { windows: Array.from({ length: n }, () => ({ values: new Map(), samples: new Map() })), records: 0 };
        perDevice.set(r.deviceId, d);
      }
      const w = d.windows[Number((r.timeUnixNs - first) / q.windowNs)];
      if (!w) continue;
      const key = stackKey(r, perProcess);
      w.values.set(key, (w.values.get(key) ?? 0) + r.value);
      w.samples.set(key, (w.samples.get(key) ?? 0) + (bySample ? r.value : 1));
      d.records++;
    }
    for (const [deviceId, d] of [...perDevice].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const det = new StackAnomalyDetector(params);
      d.windows.forEach((w) => {
        for (const a of det.observe(w)) {
          const start = first + BigInt(a.window) * q.windowNs;
          anomalies.push({ deviceId, probe, unit, windowStartUnixNs: start, windowEndUnixNs: start + q.windowNs, kind: a.kind,
            stack: a.stack, share: a.share, baselineShare: a.baselineShare, baselineStd: a.baselineStd, z: a.z, value: a.value,
            samples: a.samples, windowTotal: a.windowTotal });
        }
      });
      series.push({ deviceId, probe, unit, windowsWithData: det.historyWindows, records: d.records });
    }
  }
  anomalies.sort((a, b) => (a.windowStartUnixNs < b.windowStartUnixNs ? -1 : a.windowStartUnixNs > b.windowStartUnixNs ? 1 : 0));
  return { firstWindowUnixNs: first, windows: n, windowNs: q.windowNs, params, series, anomalies };
}
