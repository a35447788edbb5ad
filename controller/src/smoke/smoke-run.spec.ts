// The controller's side of smoke tests over a real SqliteStore holding the real tcpstates
// manifest: what a device answers is scripted here (the agent's side is agent/src/smoke, and
// test/fleet/smoke.test.ts runs both for real); what is judged is whether the matching event
// was stored, and what is kept.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { populatedStore, tcpstates, type Populated } from '../admin/admin-fixture.js';
import type { CommandOutcome, FleetEvent, PendingCommand } from '../admin/fleet-commands.js';
import { matchesSelector, type DeviceSelector } from '../admin/selector.js';
import { encodeRecord, makeBatch } from '../store/tcpstates-fixture.js';
import type { AgentSmokeProbe } from './smoke-report.js';
import { checkStored, deviceTimeoutMs, runSmoke, type SmokeFleet, type SmokeProgress } from './smoke-run.js';

let p: Populated;
beforeEach(async () => { p = await populatedStore(); });
afterEach(async () => { await p.cleanup(); });

const PORT = 41234;

function agentProbe(over: Partial<AgentSmokeProbe>): AgentSmokeProbe {
  const probe = over.probe ?? 'tcpstates';
  const runId = over.runId ?? `smoke-c-1-${probe}`;
  return {
    probe, version: '1.0.0', outcome: 'pass', reason: '', runId, streamId: `${p.bench1}/${probe}/${runId}`,
    schemaId: probe === 'tcpstates' ? tcpstates.schemaId : `${probe}@1.0.0:0000000000000000`, trigger: 'tcp_loopback',
    vars: { port: PORT, pid: 4242, bytes: 4096 }, args: ['--lport', String(PORT)], expect: `lport = ${PORT}, newstate = ESTABLISHED`,
    attachMs: 30, timeToFirstEventMs: 200, verifiedInsns: 245, programs: [], records: 3, durationMs: 250, ...over,
  };
}

/** The device side, scripted: answers per device name; devices not listed are offline. */
class ScriptedFleet implements SmokeFleet {
  answers = new Map<string, CommandOutcome>();
  sent: { probes: string[]; probeTimeoutMs?: number }[] = [];
  listeners = new Set<(e: FleetEvent) => void>();
  beforeAnswer: (() => Promise<void>) | undefined;

  async smoke(sel: DeviceSelector, probes: string[], opts: { probeTimeoutMs?: number }): Promise<PendingCommand[]> {
    this.sent.push({ probes, ...(opts.probeTimeoutMs !== undefined ? { probeTimeoutMs: opts.probeTimeoutMs } : {}) });
    return (await p.store.devices()).filter((d) => matchesSelector(sel, d)).map((d) => {
      const a = this.answers.get(d.name);
      return {
        device: { id: d.id, name: d.name },
        ...(a ? { commandId: 'c-1' } : {}),
        result: a ? (this.beforeAnswer?.() ?? Promise.resolve()).then(() => a)
          : Promise.resolve({ ok: false, error: `device ${d.name} (${d.id}) is not connected; nothing was sent` }),
      };
    });
  }

  onEvent(l: (e: FleetEvent) => void) { this.listeners.add(l); return () => { this.listeners.delete(l); }; }
  emit(e: FleetEvent & Record<string, unknown>) { for (const l of this.listeners) l(e); }
}

async function storeTcpstates(streamId: string, values: { lport: number; newstate: number }[]): Promise<void> {
  const { manifest, schemaId } = tcpstates;
  const recs = values.map((v, i) => encodeRecord(manifest, { ts_ns: 6_000_000_000n + BigInt(i), family: 2, saddr: '127.0.0.1',
    daddr: '127.0.0.1', rport: 50000, oldstate: 3, ...v }));
  await p.store.ingestBatch(p.bench1, makeBatch(schemaId, streamId, recs, 1));
}

describe('runSmoke', () => {
  it('a pass the device reports is a pass only once the matching event is in the store; results are kept', async () => {
    const fleet = new ScriptedFleet();
    const ts = agentProbe({});
    const skb = agentProbe({ probe: 'skbclone', outcome: 'unsupported', reason: 'skbclone: unsupported on this kernel: needs kprobe skb_clone',
      exitCode: 3, attachMs: null, timeToFirstEventMs: null, verifiedInsns: null });
    // Unsupported by its trigger (the device cannot make the activity): no loader ran, no exit code.
    const kvm = agentProbe({ probe: 'kvmexit', outcome: 'unsupported', trigger: 'kvm_guest', vars: {}, args: [], expect: '',
      reason: 'kvm_guest trigger: no /dev/kvm on this device (no KVM: the kernel lacks it or its module is not loaded)',
      attachMs: null, timeToFirstEventMs: null, verifiedInsns: null, records: 0 });
    fleet.answers.set('bench-1', { ok: true, detail: { deviceId: p.bench1, probes: [ts, skb, kvm], durationMs: 300 } });
    // The event is stored a little after the device answered (it travels behind the answer).
    fleet.beforeAnswer = async () => {
      setTimeout(() => void storeTcpstates(ts.streamId, [{ lport: 9, newstate: 1 }, { lport: PORT, newstate: 1 }]), 150);
    };
    const progress: SmokeProgress[] = [];
    const summary = await runSmoke({ fleet, store: p.store }, { selector: { devices: ['bench-1'] }, probes: [], probeTimeoutMs: 5000 },
      (e) => { progress.push(e); });
    expect(summary.ok).toBe(true);
    expect(summary.results.map((r) => [r.probe, r.outcome, r.reason])).toEqual([
      ['tcpstates', 'pass', ''], ['skbclone', 'unsupported', skb.reason], ['kvmexit', 'unsupported', kvm.reason]]);
    const [passRow] = summary.results;
    expect(passRow).toMatchObject({ commandId: 'c-1', deviceId: p.bench1, storedRecords: 2, verifiedInsns: 245, timeToFirstEventMs: 200 });
    expect(passRow!.detail).toMatchObject({ controller: { stored: true, storedRecords: 2, matchedSeq: 2 } });
    expect(fleet.sent).toEqual([{ probes: [], probeTimeoutMs: 5000 }]);
    expect(progress.map((e) => e.type)).toEqual(['targets', 'result']);

    const kept = await p.store.smokeResults!({});
    expect(kept.map((r) => [r.deviceId, r.probe, r.outcome])).toEqual([[p.bench1, 'kvmexit', 'unsupported'], [p.bench1, 'skbclone', 'unsupported'],
      [p.bench1, 'tcpstates', 'pass']]);
  });

  it('a pass whose event never reaches the store fails, naming what was stored; an offline device fails every named probe', async () => {
    const fleet = new ScriptedFleet();
    const ts = agentProbe({});
    fleet.answers.set('bench-1', { ok: true, detail: { deviceId: p.bench1, probes: [ts], durationMs: 300 } });
    await storeTcpstates(ts.streamId, [{ lport: PORT, newstate: 4 }]); // the right port, the wrong state
    const summary = await runSmoke({ fleet, store: p.store }, { selector: { all: true }, probes: ['tcpstates'], probeTimeoutMs: 300 }, () => undefined);
    expect(summary.ok).toBe(false);
    const byDevice = new Map(summary.results.map((r) => [r.deviceId, r]));
    expect(byDevice.get(p.bench1)).toMatchObject({ outcome: 'fail', storedRecords: 1 });
    expect(byDevice.get(p.bench1)!.reason).toBe(`the device saw a record with lport = ${PORT}, newstate = ESTABLISHED, but none arrived in ` +
      `the controller's store within 300 ms (1 records of stream ${ts.streamId} stored)`);
    expect(byDevice.get(p.bench2)).toMatchObject({ probe: 'tcpstates', outcome: 'fail', commandId: '' });
    expect(byDevice.get(p.bench2)!.reason).toMatch(/bench-2 .* is not connected/);
    expect(summary.devices.map((d) => [d.name, d.ok])).toEqual([['bench-1', false], ['bench-2', false]]);
  });

  it('a malformed report is a failure saying so; progress follows the smoke runs\' statuses', async () => {
    const fleet = new ScriptedFleet();
    fleet.answers.set('bench-1', { ok: true, detail: { probes: [agentProbe({ outcome: 'great' as never })] } });
    fleet.beforeAnswer = async () => {
      fleet.emit({ type: 'status', deviceId: p.bench1, runId: 'smoke-c-1-tcpstates', probe: 'tcpstates', state: 'running' });
      fleet.emit({ type: 'status', deviceId: p.bench1, runId: 'smoke-c-1-tcpstates', probe: 'tcpstates', state: 'stopped' });
      fleet.emit({ type: 'status', deviceId: p.bench1, runId: 'smoke-c-1-skbclone', probe: 'skbclone', state: 'failed', exitCode: 3 });
      fleet.emit({ type: 'status', deviceId: p.bench1, runId: 'r-other', probe: 'tcpstates', state: 'stopped' });
    };
    const progress: SmokeProgress[] = [];
    const summary = await runSmoke({ fleet, store: p.store }, { selector: { devices: ['bench-1'] }, probes: ['tcpstates'] }, (e) => { progress.push(e); });
    expect(summary.results).toHaveLength(1);
    expect(summary.results[0]).toMatchObject({ probe: 'tcpstates', outcome: 'fail' });
    expect(summary.results[0]!.reason).toMatch(/smoke report is malformed .*outcome "great"/);
    expect(progress.filter((e) => e.type === 'progress')).toEqual([
      { type: 'progress', device: { id: p.bench1, name: 'bench-1' }, probe: 'tcpstates', state: 'stopped', done: 1, total: 1 },
      { type: 'progress', device: { id: p.bench1, name: 'bench-1' }, probe: 'skbclone', state: 'unsupported', done: 2, total: 1 }]);
  });

  it('checkStored says why when the controller does not know the schema', async () => {
    const r = await checkStored(p.store, agentProbe({ schemaId: 'tcpstates@9.9.9:ffffffffffffffff' }), 1000);
    expect(r.found).toBe(false);
    expect(r.why).toMatch(/no manifest tcpstates@9.9.9:ffffffffffffffff, .*deploy tcpstates from this controller/);
  });

  it('gives a device time for every probe', () => {
    expect(deviceTimeoutMs(6, 10_000)).toBe(30_000 + 6 * 75_000);
    expect(deviceTimeoutMs(0, 10_000)).toBe(30_000 + 75_000);
  });
});

describe('stored smoke results', () => {
  it('latest per device x probe, or the history newest first', async () => {
    const row = (commandId: string, probe: string, outcome: 'pass' | 'fail', at: number) => ({
      commandId, deviceId: p.bench1, probe, version: '1', outcome, reason: outcome === 'fail' ? 'x' : '', runId: '', streamId: '',
      timeToFirstEventMs: null, attachMs: null, verifiedInsns: null, storedRecords: 0, detail: { n: 1n }, createdAtMs: at });
    await p.store.recordSmokeResults!([row('c-a', 'tcpstates', 'fail', 1), row('c-a', 'tcpwin', 'pass', 1)]);
    await p.store.recordSmokeResults!([row('c-b', 'tcpstates', 'pass', 2)]);
    expect((await p.store.smokeResults!()).map((r) => [r.probe, r.commandId, r.outcome])).toEqual([
      ['tcpstates', 'c-b', 'pass'], ['tcpwin', 'c-a', 'pass']]);
    expect((await p.store.smokeResults!({ probe: 'tcpstates', history: true })).map((r) => r.commandId)).toEqual(['c-b', 'c-a']);
    expect((await p.store.smokeResults!({ commandId: 'c-a' })).map((r) => r.probe)).toEqual(['tcpstates', 'tcpwin']);
    expect((await p.store.smokeResults!())[0]!.detail).toEqual({ n: 1 });
    await expect(p.store.smokeResults!({ limit: 0 })).rejects.toThrow(/limit must be an integer/);
  });
});
