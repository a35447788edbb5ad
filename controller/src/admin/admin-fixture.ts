// Test fixture of the admin API and the CLI: a real SqliteStore in a temp dir, populated through
// the store's own API (enrollment, tcpstates batches laid out from the real manifest, pipeline
// stats), and a scripted FleetCommands.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../store/sqlite-store.js';
import type { DeviceRow, Store } from '../store/store.js';
import { encodeRecord, loadTcpstates, makeBatch, seqRecord } from '../store/tcpstates-fixture.js';
import type { CommandOutcome, FleetCommands, FleetEvent, PendingCommand, StartOutcome } from './fleet-commands.js';
import { matchesSelector, type DeviceSelector } from './selector.js';

export const tcpstates = loadTcpstates();

/**
 * What the fake fleet answers per device name; devices not listed succeed. queuedMs: the deploy
 * waits that long for its turn (the fleet's deploy concurrency) before it is sent.
 */
export type Script = Record<string, { deploy?: string; start?: string; hang?: boolean; queuedMs?: number }>;

export class FakeFleet implements FleetCommands {
  readonly online = new Set<string>();
  readonly calls: string[] = [];
  script: Script = {};
  private listeners = new Set<(e: FleetEvent) => void>();
  private runN = 0;

  constructor(private readonly store: Store) {}

  devicesOnline(): ReadonlySet<string> { return this.online; }

  private async select(sel: DeviceSelector): Promise<DeviceRow[]> {
    return (await this.store.devices()).filter((d) => matchesSelector(sel, d));
  }

  private outcome(d: DeviceRow, phase: 'deploy' | 'start'): Promise<CommandOutcome> {
    const s = this.script[d.name];
    if (s?.hang) return new Promise(() => undefined);
    const error = s?.[phase];
    return Promise.resolve(error ? { ok: false, error } : { ok: true });
  }

  async deploy(sel: DeviceSelector, probe: string): Promise<PendingCommand[]> {
    this.calls.push(`deploy ${probe} ${JSON.stringify(sel)}`);
    return (await this.select(sel)).map((d) => {
      const queued = this.script[d.name]?.queuedMs;
      if (queued === undefined) return { device: { id: d.id, name: d.name }, result: this.outcome(d, 'deploy') };
      const sent = new Promise<void>((r) => setTimeout(r, queued));
      return { device: { id: d.id, name: d.name }, sent, result: sent.then(() => this.outcome(d, 'deploy')) };
    });
  }

  async start(sel: DeviceSelector, probe: string, args: string[]): Promise<PendingCommand<StartOutcome>[]> {
    this.calls.push(`start ${probe} ${JSON.stringify(sel)} ${JSON.stringify(args)}`);
    return (await this.select(sel)).map((d) => ({
      device: { id: d.id, name: d.name },
      result: this.outcome(d, 'start').then(async (r) => {
        if (!r.ok) return r;
        const runId = `run-${++this.runN}`;
        await this.store.startRun({ runId, deviceId: d.id, probe, args });
        return { ...r, runId };
      }),
    }));
  }

  async stop(runId: string): Promise<CommandOutcome> {
    this.calls.push(`stop ${runId}`);
    return runId.endsWith('-bad') ? { ok: false, error: 'no such run on the device' } : { ok: true };
  }

  onEvent(listener: (e: FleetEvent) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  emit(e: FleetEvent): void { for (const l of this.listeners) l(e); }
}

export interface Populated {
  dir: string;
  store: SqliteStore;
  fleet: FakeFleet;
  bench1: string;
  bench2: string;
  stream: string;
  /** Ingests `count` more plain records on the bench-1 stream, from `firstSeq`. */
  ingest(firstSeq: number, count: number): Promise<void>;
  cleanup(): Promise<void>;
}

/** Comms that need escaping in CSV and line protocol. */
export const AWKWARD_COMMS = ['my app', 'a,b', 'k=v', 'say "hi"'];

export async function populatedStore(): Promise<Populated> {
  const dir = mkdtempSync(join(tmpdir(), 'bpfleet-admin-'));
  const store = SqliteStore.open(join(dir, 'fleet.db'));
  const { schemaId, manifest } = tcpstates;
  await store.putManifest(schemaId, manifest);

  const enroll = async (name: string, labels: Record<string, string>, arch: string) => {
    const { token } = await store.createEnrollmentToken({ ttlMs: 60_000, labels });
    const e = await store.enroll({ token, deviceName: name, transport: 'grpc', facts: {
      board: labels['board'] ?? '', arch, kernelRelease: '6.1.0-test', libc: 'glibc', memoryBytes: 1n << 30n, cpus: 4, hostname: name,
      caps: { btf: true, kprobes: true, tracepoints: true, jit: true, bpfSyscall: true },
    } });
    return e.deviceId;
  };
  const bench1 = await enroll('bench-1', { board: 'dayu200', lab: '3' }, 'arm64');
  const bench2 = await enroll('bench-2', { board: 'hi3516dv300' }, 'arm');
  const stream = `${bench1}/tcpstates/r1`;

  // Seqs 1..10 (streams number records from 1): plain records, then four with awkward comms (11..14).
  await store.ingestBatch(bench1, makeBatch(schemaId, stream, Array.from({ length: 10 }, (_, i) => seqRecord(manifest, i + 1)), 1));
  const awkward = AWKWARD_COMMS.map((comm, i) => encodeRecord(manifest, {
    ts_ns: 5_000_100_000n + BigInt(i) * 1000n, skaddr: 0xffff_8880_0000_1000n + BigInt(i), pid: 2000 + i, comm, family: 10,
    saddr: '0:0:0:0:0:0:0:1', lport: 8080, daddr: '0:0:0:0:0:0:0:1', rport: 50000 + i, oldstate: 1, newstate: 4, delta_us: 10 * i,
  }));
  await store.ingestBatch(bench1, makeBatch(schemaId, stream, awkward, 11));
  await store.recordPipelineStats(bench1, {
    streamId: stream, records: 20n, kernelRingbufFull: 3n, kernelMapFull: 0n, kernelSampledOut: 0n, kernelReadFailed: 0n,
    loaderLost: 1n, agentQueueDropped: 0n, spoolEvicted: 2n, spoolCorrupt: 0n, timeUnixNs: 1_700_000_010_000_000_000n,
  });

  const fleet = new FakeFleet(store);
  fleet.online.add(bench1);
  return {
    dir, store, fleet, bench1, bench2, stream,
    async ingest(firstSeq, count) {
      const recs = Array.from({ length: count }, (_, i) => seqRecord(manifest, firstSeq + i));
      await store.ingestBatch(bench1, makeBatch(schemaId, stream, recs, firstSeq));
      fleet.emit({ type: 'stored', deviceId: bench1, streamId: stream });
    },
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
