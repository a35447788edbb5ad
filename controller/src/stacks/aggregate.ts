// Stored events of stack probes -> folded stacks. The records are read page by page with the
// export code's iterateEvents and decoded with their stream's manifest (ManifestResolver); the
// contract of a stack probe's record: `stack` (a char array of folded frames, root first),
// `value` (samples, ns or bytes: the manifest field's unit says which), `pid`, `comm`.
import type { Manifest } from '@bpfleet/proto';
import { iterateEvents } from '../export/event-pages.js';
import { ManifestResolver } from '../export/manifest-resolver.js';
import type { Store, StreamRow } from '../store/store.js';
import { addStack, UNKNOWN_STACK, type Folded } from './folded.js';

export type StackStore = Pick<Store, 'events' | 'streams' | 'manifest'>;

/** The request cannot be answered as asked: `status` 400 (wrong probe, bad window) or 404 (no data). */
export class StackError extends Error {
  override name = 'StackError';
  constructor(readonly status: 400 | 404, message: string) {
    super(message);
  }
}

export const STACK_PROBE_EXAMPLES = 'profile, offcputime, wakeuptime, loadmon';

/** The unit of a stack probe's values, or undefined if the manifest has no `stack` field. */
export function stackUnit(m: Manifest): string | undefined {
  const fields = m.record.fields;
  if (!fields.some((f) => f.name === 'stack')) return undefined;
  const value = fields.find((f) => f.name === 'value');
  return value ? value.unit : 'records';
}

export interface StackScope {
  probe: string;
  /** Devices to read; undefined = every device. */
  deviceIds?: string[];
  /** Records with sinceUnixNs <= time < untilUnixNs. */
  sinceUnixNs?: bigint;
  untilUnixNs?: bigint;
}

export interface StackRecord {
  deviceId: string;
  probe: string;
  timeUnixNs: bigint;
  /** Folded frames as the probe sent them ("[unknown]" when empty). */
  stack: string;
  value: number;
  comm: string;
  pid: number | undefined;
}

/** Probes whose stored streams (of these devices) carry stacks, sorted. */
export async function storedStackProbes(store: StackStore, deviceIds?: string[]): Promise<string[]> {
  const resolver = new ManifestResolver(store);
  const probes = new Set<string>();
  for (const s of await resolver.streams()) {
    if (deviceIds && !deviceIds.includes(s.deviceId)) continue;
    const m = await resolver.forStream(s.streamId);
    if (m && stackUnit(m) !== undefined) probes.add(s.probe);
  }
  return [...probes].sort();
}

/** Checks that `probe` is a stack probe with stored streams for the scope; returns its value unit. */
export async function checkStackProbe(store: StackStore, scope: StackScope): Promise<{ unit: string; streams: StreamRow[] }> {
  const resolver = new ManifestResolver(store);
  const all = await resolver.streams({ probe: scope.probe });
  const streams = all.filter((s) => s.schemaId !== null && (!scope.deviceIds || scope.deviceIds.includes(s.deviceId)));
  const where = scope.deviceIds ? ` on ${scope.deviceIds.length === 1 ? 'this device' : 'these devices'}` : '';
  if (streams.length === 0) {
    const probes = await storedStackProbes(store, scope.deviceIds);
    throw new StackError(404, `no stored ${scope.probe} records${where}: ` + (probes.length
      ? `stack probes with stored records: ${probes.join(', ')}`
      : `no stack probe (${STACK_PROBE_EXAMPLES}) has stored records here yet: deploy one with \`bpfleet deploy profile --to ...\``));
  }
  const units = new Set<string>();
  for (const s of streams) {
    const m = await resolver.forStream(s.streamId);
    if (!m) throw new Error(`stream ${s.streamId}: its manifest ${s.schemaId} is not in the store`);
    const unit = stackUnit(m);
    if (unit === undefined) {
      throw new StackError(400, `probe ${scope.probe} has no "stack" field (its fields: ${m.record.fields.map((f) => f.name).join(', ')}): ` +
        `flame graphs and stack anomalies need a stack probe (${STACK_PROBE_EXAMPLES})`);
    }
    units.add(unit);
  }
  if (units.size > 1) {
    throw new StackError(400, `streams of ${scope.probe} disagree on the unit of "value" (${[...units].join(', ')}): ` +
      'choose one device or a window inside one probe version');
  }
  return { unit: [...units][0] ?? 'records', streams };
}

const num = (v: unknown): number => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : Number(v ?? NaN));

/** Every stack record of the scope, in time order per device. */
export async function* scanStackRecords(store: StackStore, scope: StackScope,
  opts: { pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<StackRecord> {
  const passes = scope.deviceIds === undefined ? [undefined] : scope.deviceIds;
  for (const deviceId of passes) {
    const filter = { probe: scope.probe, ...(deviceId === undefined ? {} : { deviceId }),
      ...(scope.sinceUnixNs === undefined ? {} : { sinceUnixNs: scope.sinceUnixNs }) };
    for await (const ev of iterateEvents(store, filter, opts)) {
      if (scope.untilUnixNs !== undefined && ev.timeUnixNs >= scope.untilUnixNs) break;
      const f = ev.fields;
      if (typeof f['stack'] !== 'string') {
        throw new Error(`stream ${ev.streamId} seq ${ev.seq}: field "stack" decoded as ${typeof f['stack']}, not text: ` +
          'a stack probe\'s manifest must declare it as a char array that decodeRecord reads as a string (type comm)');
      }
      const stack = f['stack'].trim();
      const value = f['value'] === undefined ? 1 : num(f['value']);
      // Records of value 0 carry no samples (loadmon's armed/disarmed state records).
      if (!Number.isFinite(value) || value <= 0) continue;
      yield {
        deviceId: ev.deviceId, probe: ev.probe, timeUnixNs: ev.timeUnixNs, stack: stack === '' ? UNKNOWN_STACK : stack, value,
        comm: typeof f['comm'] === 'string' && f['comm'] !== '' ? f['comm'] : '[unknown]',
        pid: f['pid'] === undefined ? undefined : num(f['pid']),
      };
    }
  }
}

/** The folded key of a record: the stack, under its process (comm) as root frame if asked. */
export function stackKey(r: Pick<StackRecord, 'stack' | 'comm'>, perProcess: boolean): string {
  return perProcess ? `${r.comm.replace(/;/g, ':')};${r.stack}` : r.stack;
}

/**
 * Folds records already in hand (a loader's --json lines, a test): the same rules as the store
 * path (empty stack "[unknown]", records of value 0 skipped, comm as root frame with perProcess).
 */
export function foldRecords(records: Iterable<{ stack?: unknown; value?: unknown; comm?: unknown }>, perProcess = false): { folded: Folded; total: number; records: number } {
  const folded: Folded = new Map();
  let total = 0, n = 0;
  for (const r of records) {
    const value = r.value === undefined ? 1 : num(r.value);
    if (!Number.isFinite(value) || value <= 0) continue;
    const stack = typeof r.stack === 'string' && r.stack.trim() !== '' ? r.stack.trim() : UNKNOWN_STACK;
    const comm = typeof r.comm === 'string' && r.comm !== '' ? r.comm : '[unknown]';
    addStack(folded, stackKey({ stack, comm }, perProcess), value);
    total += value;
    n++;
  }
  return { folded, total, records: n };
}

export interface StackAggregate {
  probe: string;
  unit: string;
  folded: Folded;
  /** Sum of values. */
  total: number;
  records: number;
  /** Devices that contributed records. */
  deviceIds: string[];
}

/** Sums the values of every record of the scope per stack (per process and stack with perProcess). */
export async function aggregateStacks(store: StackStore, scope: StackScope & { perProcess?: boolean },
  opts: { pageSize?: number; signal?: AbortSignal } = {}): Promise<StackAggregate> {
  const { unit } = await checkStackProbe(store, scope);
  const folded: Folded = new Map();
  let total = 0, records = 0;
  const devices = new Set<string>();
  for await (const r of scanStackRecords(store, scope, opts)) {
    addStack(folded, stackKey(r, scope.perProcess ?? false), r.value);
    total += r.value;
    records++;
    devices.add(r.deviceId);
  }
  return { probe: scope.probe, unit, folded, total, records, deviceIds: [...devices].sort() };
}

